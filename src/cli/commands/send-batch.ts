import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { InvalidInputError, SpineError } from '../../core/errors.ts';
import { formatIssues } from '../../core/issues.ts';
import type { Json } from '../../core/types.ts';
import { cliIntake, sendFromCli } from '../../runtime/cli-door.ts';
import type { CommandResult } from '../command.ts';
import type { CompiledConfig } from '../../config/load.ts';
import type { Store } from '../../store/store.ts';
import { IDEMPOTENCY_KEY } from '../../core/envelope.ts';

/** Most lines in one `spine send --batch` file; split bigger files. */
const BATCH_MAX = 100_000;
/** Lines in flight at once. */
const CHUNK = 1_000;

const line = z.strictObject({
  agent: z.string().min(1).max(128).optional(),
  text: z.string().max(1_000_000).optional(),
  input: z.unknown().optional(),
  idempotencyKey: z.string().regex(IDEMPOTENCY_KEY).optional(),
});

interface Item {
  agent: string;
  text: string;
  input?: Json;
  idempotencyKey: string | null;
}

/**
 * Reads a JSON Lines file (`-` is stdin): one `{agent?, text?, input?, idempotencyKey?}`
 * per line, `agent` defaulting to the command's. Every line is checked before any is
 * sent; a bad one names its line number and nothing is submitted.
 */
export function readBatch(file: string, defaultAgent: string | undefined): Item[] {
  let raw: string;
  try {
    raw = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new InvalidInputError('--batch', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const items: Item[] = [];
  const lines = raw.split('\n');
  for (const [i, text] of lines.entries()) {
    if (text.trim() === '') continue;
    const where = `${file}:${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new InvalidInputError('--batch', `${where}: not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
    }
    const r = line.safeParse(value);
    if (!r.success) throw new InvalidInputError('--batch', `${where}: ${formatIssues(r.error.issues.map((x) => ({ path: x.path.join('.') || '(line)', message: x.message })))}`);
    const agent = r.data.agent ?? defaultAgent;
    if (!agent) throw new InvalidInputError('--batch', `${where}: no "agent", and none given on the command line`);
    if (r.data.text !== undefined && r.data.input !== undefined) throw new InvalidInputError('--batch', `${where}: give either "text" or "input", not both`);
    items.push({ agent, text: r.data.text ?? '', ...(r.data.input === undefined ? {} : { input: r.data.input as Json }), idempotencyKey: r.data.idempotencyKey ?? null });
    if (items.length > BATCH_MAX) throw new InvalidInputError('--batch', `more than ${BATCH_MAX} lines; split the file`);
  }
  if (items.length === 0) throw new InvalidInputError('--batch', `${file} has no envelopes (one JSON object per line)`);
  return items;
}

/**
 * `spine send --batch file.jsonl`: every line through the CLI door at once (on SQLite
 * they share group commits), answered per line in order. Exit 0 when every line
 * started (or found) its run; otherwise the first refusal's exit code, after all.
 */
export async function sendBatch(items: Item[], config: CompiledConfig, store: Store, opts: { json: boolean; tenant?: string }): Promise<CommandResult> {
  const intake = cliIntake(config, store);
  const send = async (item: Item, i: number): Promise<LineResult> => {
    try {
      const sent = await sendFromCli(intake, { ...item, ...(opts.tenant ? { tenant: opts.tenant } : {}) });
      return { line: i + 1, run: sent.run.id, envelope: sent.envelope.id, created: sent.created };
    } catch (err) {
      if (!(err instanceof SpineError)) throw err;
      return { line: i + 1, error: { code: err.code, message: err.message }, exitCode: err.exitCode };
    }
  };
  // A chunk at a time keeps memory flat for big files; each chunk shares a few commits.
  const results: LineResult[] = [];
  for (let at = 0; at < items.length; at += CHUNK) results.push(...(await Promise.all(items.slice(at, at + CHUNK).map((item, k) => send(item, at + k)))));
  const refused = results.filter((r) => r.error !== undefined);
  const exitCode = refused[0]?.exitCode ?? 0;
  if (opts.json) return { stdout: JSON.stringify({ results: results.map(({ exitCode: _, ...r }) => r), sent: results.length - refused.length, refused: refused.length }, null, 2), exitCode };
  const out = results.map((r) => (r.error ? `line ${r.line}: refused: ${r.error.code}: ${r.error.message}` : `${r.run}${r.created ? '' : ' (existing run for this idempotency key)'}`));
  out.push(`${results.length - refused.length} of ${results.length} sent${refused.length ? `, ${refused.length} refused` : ''}`);
  return { stdout: out.join('\n'), exitCode };
}

interface LineResult {
  line: number;
  run?: string;
  envelope?: string;
  created?: boolean;
  error?: { code: string; message: string };
  exitCode?: number;
}
