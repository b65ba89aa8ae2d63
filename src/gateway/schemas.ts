import { z } from '@hono/zod-openapi';
import { zodIssues, type FieldIssue } from '../core/issues.ts';
import { APPROVAL_STATES, RUN_STATES, TASK_STATES } from '../core/states.ts';
import { invalidRequest } from './errors.ts';

/** Path parameters, query strings and small bodies of the REST routes; each failure is a 400 listing every bad path. */

const APPROVAL_FILTER = [...APPROVAL_STATES, 'all'] as const;

export const QUERY_DEFAULTS = { runs: 50, tasks: 200, approvals: 50, audit: 100 } as const;

/** A whole number written in decimal digits only: `0x10`, `1e3` or ` 16` are refused, not coerced. */
export const decimal = (min: number, max: number) =>
  z
    .string()
    .regex(/^[0-9]{1,16}$/, 'must be a whole number in decimal digits')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));
const limit = (max: number, def: number) => decimal(1, max).optional().openapi({ type: 'integer', description: `page size (default ${def}, at most ${max})` });
const id = z.string().min(1).max(128);
const runFilter = id.optional().openapi({ description: 'only this run' });

/** `{id}` in a path. */
export const idParam = (what: string) => z.object({ id: z.string().openapi({ description: `the ${what} id` }) });

export const runsQuery = z.strictObject({
  state: z.enum(RUN_STATES).optional(),
  agent: id.optional().openapi({ description: 'only runs of this agent' }),
  limit: limit(200, QUERY_DEFAULTS.runs),
  cursor: id.optional().openapi({ description: 'the `next` of the previous page' }),
});
export const tasksQuery = z.strictObject({
  run: id.optional().openapi({ description: 'only tasks of this run (404 if it does not exist)' }),
  state: z.enum(TASK_STATES).optional(),
  limit: limit(1000, QUERY_DEFAULTS.tasks),
});
export const approvalsQuery = z.strictObject({
  state: z.enum(APPROVAL_FILTER).optional().openapi({ description: 'pending (default), approved, denied, expired or all' }),
  run: runFilter,
  limit: limit(500, QUERY_DEFAULTS.approvals),
});
export const auditQuery = z.strictObject({
  run: runFilter,
  after: decimal(0, Number.MAX_SAFE_INTEGER).optional().openapi({ type: 'integer', description: 'events after this seq (default 0)' }),
  limit: limit(1000, QUERY_DEFAULTS.audit),
});
export const streamQuery = z.strictObject({
  run: runFilter,
  after: z
    .string()
    .optional()
    .openapi({ description: 'resume after this audit seq (the last event id you saw); absent: from now on; 0: from the beginning', type: 'integer', minimum: 0 }),
  access_token: z.string().optional().openapi({ description: 'the bearer token, for clients that cannot set headers (EventSource, browser WebSocket)' }),
});

export const cancelBody = z.strictObject({ reason: z.string().max(2000).optional() });
export const decisionBody = z.strictObject({
  approve: z.boolean(),
  reason: z.string().max(2000).optional(),
  raiseTo: z.number().positive().max(1e9).optional().openapi({ description: "approving an escalation by a per-run cost ceiling: this run's new ceiling in USD, above the rule's" }),
});

/** The issues of a failed parse, each path named (prefixed by where it is, e.g. `query.limit`; a body's paths are bare); unknown keys say so. */
export function requestIssues(error: z.ZodError, where: string): FieldIssue[] {
  return zodIssues(error, where === 'body' ? [] : [where]).map((i) =>
    i.message === 'unknown setting' ? { path: i.path, message: where === 'query' ? 'unknown query parameter' : 'unknown field' } : i,
  );
}

/** Parses with a zod schema; a failure is a 400 whose issues name each path (prefixed by `where`). */
export function check<S extends z.ZodType>(schema: S, value: unknown, where: 'query' | 'body'): z.infer<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw invalidRequest(requestIssues(r.error, where), where === 'query' ? 'query' : 'request body');
}
