import { SEARCH_MODES } from '../core/memory.ts';
import { z } from 'zod';
import { AgentProtocolError } from '../core/errors.ts';
import { formatIssues, zodIssues } from '../core/issues.ts';
import type { TurnResult } from '../core/types.ts';
import { joinPolicySchema } from '../synthesis/schema.ts';

const json: z.ZodType<unknown> = z.unknown();

const toolAction = z.strictObject({
  type: z.literal('tool'),
  tool: z.string().min(1),
  input: json.optional(),
  id: z.string().optional(),
});
const handoffAction = z.strictObject({
  type: z.literal('handoff'),
  agent: z.string().min(1),
  input: json.optional(),
  contract: z.string().min(1).optional(),
  join: joinPolicySchema.optional(),
  id: z.string().optional(),
});
const deliverAction = z.strictObject({
  type: z.literal('deliver'),
  channel: z.string().min(1),
  account: z.string().min(1).optional(),
  to: z.string().min(1),
  thread: z.string().min(1).optional(),
  text: z.string(),
  id: z.string().optional(),
});
const rememberAction = z.strictObject({
  type: z.literal('remember'),
  scope: z.string().min(1),
  key: z.string().min(1),
  value: json.refine((v) => v !== undefined, 'a remember needs a value'),
  text: z.string().optional(),
  expectedVersion: z.number().int().nonnegative().optional(),
  ttl: z.union([z.number().int().positive(), z.string().min(2)]).optional(),
  sources: z.array(z.string().min(1)).max(100).optional(),
  id: z.string().optional(),
});
const recallAction = z
  .strictObject({
    type: z.literal('recall'),
    query: z.string().optional(),
    scope: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
    k: z.number().int().positive().max(100).optional(),
    asOf: z.number().int().nonnegative().optional(),
    mode: z.enum(SEARCH_MODES).optional(),
    id: z.string().optional(),
  })
  .refine((r) => r.query !== undefined || (r.scope !== undefined && r.key !== undefined), { message: 'a recall needs a "query", or a "scope" and "key"' });
/** A direct call over a declared mesh path (docs/mesh.md). */
const callAgentAction = z.strictObject({
  type: z.literal('call_agent'),
  agent: z.string().min(1),
  input: json.optional(),
  contract: z.string().min(1).optional(),
  id: z.string().optional(),
});
const usage = z.strictObject({
  inputTokens: z.number().nonnegative().optional(),
  outputTokens: z.number().nonnegative().optional(),
  costUsd: z.number().nonnegative().optional(),
});

const turnResult = z
  .strictObject({
    actions: z.array(z.discriminatedUnion('type', [toolAction, handoffAction, deliverAction, rememberAction, recallAction, callAgentAction])).optional(),
    output: json.optional(),
    usage: usage.optional(),
    meta: z.record(z.string(), json).optional(),
    join: joinPolicySchema.optional(),
  })
  .refine((r) => r.actions !== undefined || r.output !== undefined, {
    message: 'a turn must return "actions" (possibly empty, to take another turn) or "output"',
  })
  .refine((r) => r.output === undefined || !(r.actions ?? []).some((a) => a.type === 'handoff'), {
    message: 'a turn that returns "output" cannot also hand off: hand off first, then return the output on a later turn',
  });

/** Checks an agent's raw answer against the turn protocol, listing every violation. */
export function parseTurnResult(agent: string, raw: unknown): TurnResult {
  const parsed = turnResult.safeParse(raw);
  if (parsed.success) {
    const r = parsed.data as TurnResult;
    // The turn's join is recorded on its handoffs (the decision the hub replays after a crash).
    if (r.join && r.actions) r.actions = r.actions.map((a) => (a.type === 'handoff' && !a.join ? { ...a, join: r.join! } : a));
    delete r.join;
    return r;
  }
  const issues = zodIssues(parsed.error).map((i) => ({ path: i.path || '(root)', message: i.message }));
  throw new AgentProtocolError(agent, `invalid turn result: ${formatIssues(issues)}`, issues);
}
