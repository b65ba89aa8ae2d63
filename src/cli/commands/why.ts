import { why, type WhyGraph } from '../../audit/why.ts';
import { InvalidInputError } from '../../core/errors.ts';
import { parse } from '../args.ts';
import type { CommandResult } from '../command.ts';
import { maybeConfig, openCliStore } from '../context.ts';
import { short, when } from '../format.ts';
import { cliAuditKeys } from './audit.ts';

export function describeWhy(g: WhyGraph): string {
  const lines = [`why ${g.target.kind} ${g.target.id}${g.verified ? '' : `   [audit: ${g.verdict.toUpperCase()}]`}`];
  g.steps.forEach((s, i) => {
    lines.push(`${i === 0 ? '' : '← '}${s.kind.padEnd(9)} ${s.id}  ${s.summary}`);
    for (const e of s.events) {
      lines.push(`      #${e.seq} ${e.verified ? '✓' : '✗'} ${when(e.at)} ${e.kind}${e.actor ? ` by ${e.actor}` : ''}${e.data !== null ? ` ${short(e.data, 100)}` : ''}`);
    }
  });
  return lines.join('\n');
}

export async function whyCommand(argv: string[]): Promise<CommandResult> {
  const { values, positionals } = parse(argv, { key: { type: 'string' } }, 1);
  const id = positionals[0];
  if (!id) throw new InvalidInputError('<id>', 'missing: a run, task, effect key, approval or envelope id');
  const config = await maybeConfig(values);
  const store = await openCliStore(values, config);
  try {
    const keys = cliAuditKeys(values.key, config);
    const graph = await why(store, id, { publicKey: keys?.publicKey ?? null, now: Date.now() });
    return { stdout: values.json ? JSON.stringify(graph, null, 2) : describeWhy(graph) };
  } finally {
    await store.close();
  }
}
