import { meshLog, type MeshLogEntry } from '../../audit/mesh-log.ts';
import { InvalidInputError } from '../../core/errors.ts';
import { intOption, parse } from '../args.ts';
import { maybeConfig, openCliStore } from '../context.ts';
import { nextCursor, table, when, withMore } from '../format.ts';
import type { CommandResult } from '../command.ts';

/** `spine mesh log`: the direct calls' shadow records (docs/mesh.md), newest first. */
export async function meshCommand(argv: string[]): Promise<CommandResult> {
  const [sub, ...rest] = argv;
  if (sub === 'log') return log(rest);
  throw new InvalidInputError('mesh', sub ? `unknown subcommand "${sub}" (log)` : 'needs a subcommand: log');
}

async function log(argv: string[]): Promise<CommandResult> {
  const { values } = parse(argv, { run: { type: 'string' }, limit: { type: 'string' }, before: { type: 'string' } }, 0);
  const limit = intOption('limit', values.limit) ?? 50;
  const before = intOption('before', values.before);
  const store = await openCliStore(values, await maybeConfig(values));
  try {
    const entries = await meshLog(store, { limit, ...(values.run ? { runId: values.run } : {}), ...(before === undefined ? {} : { before }) });
    if (values.json) return { stdout: JSON.stringify({ entries, next: nextCursor(entries, limit) }, null, 2) };
    if (entries.length === 0) return { stdout: values.run ? `no mesh traffic in run ${values.run}` : 'no mesh traffic' };
    const out = table(
      ['SEQ', 'AT', 'EVENT', 'FROM → TO', 'HOP', 'OUTCOME', 'MS', 'KEY'],
      entries.map((e) => [e.id, when(e.at), e.kind, `${e.from ?? '?'} → ${e.to ?? '?'}`, String(e.hop ?? '-'), outcome(e), e.ms === null ? '-' : String(e.ms), e.key ?? '-']),
    );
    return { stdout: withMore(out, entries, limit) };
  } finally {
    await store.close();
  }
}

function outcome(e: MeshLogEntry): string {
  if (e.kind === 'mesh.refused') return `refused: ${e.reason ?? '?'}${e.code && e.code !== 'MESH_REFUSED' ? ` (${e.code})` : ''}`;
  if (e.kind === 'mesh.reply') return e.ok ? 'ok' : `error ${e.code ?? '?'}`;
  return 'forwarded';
}
