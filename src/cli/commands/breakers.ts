import { InvalidInputError, NotFoundError } from '../../core/errors.ts';
import { resetChange } from '../../validation/breakers.ts';
import { parse } from '../args.ts';
import { maybeConfig, openCliStore } from '../context.ts';
import { table, when } from '../format.ts';
import type { CommandResult } from '../command.ts';

/** `spine breakers list | reset <key>` (docs/validation.md). */
export async function breakersCommand(argv: string[]): Promise<CommandResult> {
  const [sub, ...rest] = argv;
  if (sub !== 'list' && sub !== 'reset') throw new InvalidInputError('breakers', sub ? `unknown subcommand "${sub}" (list, reset)` : 'needs a subcommand: list or reset');
  const { values, positionals } = parse(rest, {}, sub === 'reset' ? 1 : 0);
  const store = await openCliStore(values, await maybeConfig(values));
  try {
    if (sub === 'list') {
      const breakers = await store.breakers.list();
      if (values.json) return { stdout: JSON.stringify({ breakers }, null, 2) };
      if (breakers.length === 0) return { stdout: 'no breakers yet (they appear with the first failure)' };
      return {
        stdout: table(
          ['BREAKER', 'STATE', 'FAILURES', 'CALLS', 'PROBE AT', 'LAST ERROR', 'CHANGED'],
          breakers.map((b) => [b.key, b.state, String(b.failures), String(b.calls), b.state === 'closed' ? '' : when(b.retryAt), b.lastError ?? '', when(b.changedAt)]),
        ),
      };
    }
    const key = positionals[0];
    if (!key) throw new InvalidInputError('<breaker>', 'missing, e.g. agent:triage or tool:email.send');
    const actor = process.env.SPINE_OPERATOR ?? process.env.USER ?? 'cli';
    const after = await store.breakers.update(key, resetChange(Date.now(), { actor: `cli:${actor}` }), Date.now());
    if (!after) throw new NotFoundError('breaker', key);
    return { stdout: values.json ? JSON.stringify({ breaker: after }, null, 2) : `breaker ${key} closed by hand (audited)` };
  } finally {
    await store.close();
  }
}
