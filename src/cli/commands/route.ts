import { InvalidInputError } from '../../core/errors.ts';
import type { Envelope } from '../../core/envelope.ts';
import { route } from '../../routing/bindings.ts';
import { parse } from '../args.ts';
import { loadCliConfig } from '../context.ts';
import { table } from '../format.ts';
import type { CommandResult } from '../command.ts';

export async function routeCommand(argv: string[]): Promise<CommandResult> {
  const [sub, ...rest] = argv;
  if (sub !== 'explain') throw new InvalidInputError('route', sub ? `unknown subcommand "${sub}" (explain)` : 'needs a subcommand: explain');
  const { values } = parse(
    rest,
    {
      channel: { type: 'string' },
      account: { type: 'string' },
      peer: { type: 'string' },
      'peer-kind': { type: 'string' },
      'parent-peer': { type: 'string' },
      thread: { type: 'string' },
      sender: { type: 'string' },
      role: { type: 'string', multiple: true },
    },
    0,
  );
  const kind = values['peer-kind'] ?? (values.peer ? 'group' : 'dm');
  if (kind !== 'dm' && kind !== 'group' && kind !== 'channel') throw new InvalidInputError('--peer-kind', `must be dm, group or channel, got "${kind}"`);
  const config = await loadCliConfig(values);
  const e: Envelope = {
    channel: values.channel ?? 'api',
    account: values.account ?? 'default',
    peer: { kind, id: values.peer ?? values.sender ?? 'anonymous' },
    parentPeer: values['parent-peer'] ?? null,
    sender: values.sender || values.role ? { id: values.sender ?? 'anonymous', ...(values.role ? { roles: values.role } : {}) } : null,
    thread: values.thread ?? null,
    text: '',
    data: null,
    idempotencyKey: 'explain',
    replyTo: null,
  };
  // Routing is pure: no store is opened.
  const decision = route(config.routing.bindings, e);
  if (values.json) return { stdout: JSON.stringify(decision, (k, v: unknown) => (k === 'binding' && v && typeof v === 'object' ? (v as { id: string }).id : v), 2), exitCode: decision.ok ? 0 : 1 };
  const lines = [
    table(
      ['BINDING', 'TIER', 'MATCHED', 'WHY'],
      decision.candidates.map((c) => [c.binding, c.tier, c.matched ? 'yes' : 'no', c.why]),
    ),
    '',
    decision.ok ? `→ ${decision.agent} via ${decision.why}` : `→ unroutable: ${decision.why}`,
  ];
  return { stdout: lines.join('\n'), exitCode: decision.ok ? 0 : 1 };
}
