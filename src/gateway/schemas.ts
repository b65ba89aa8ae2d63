import { z } from 'zod';
import { zodIssues } from '../core/issues.ts';
import { APPROVAL_STATES, RUN_STATES, TASK_STATES } from '../core/states.ts';
import { invalidRequest } from './errors.ts';

/** Query strings and small bodies of the REST routes; each failure is a 400 listing every bad path. */

const APPROVAL_FILTER = [...APPROVAL_STATES, 'all'] as const;

const limit = (max: number) => z.coerce.number().int().min(1).max(max).optional();
const id = z.string().min(1).max(128);
const seq = z.coerce.number().int().min(0).optional();

export const runsQuery = z.strictObject({ state: z.enum(RUN_STATES).optional(), agent: id.optional(), limit: limit(200), cursor: id.optional() });
export const tasksQuery = z.strictObject({ run: id.optional(), state: z.enum(TASK_STATES).optional(), limit: limit(1000) });
export const approvalsQuery = z.strictObject({ state: z.enum(APPROVAL_FILTER).optional(), run: id.optional(), limit: limit(500) });
export const auditQuery = z.strictObject({ run: id.optional(), after: seq, limit: limit(1000) });
export const streamQuery = z.strictObject({ run: id.optional(), after: z.string().optional(), access_token: z.string().optional() });

export const cancelBody = z.strictObject({ reason: z.string().max(2000).optional() });
export const decisionBody = z.strictObject({ approve: z.boolean(), reason: z.string().max(2000).optional() });

export const QUERY_DEFAULTS = { runs: 50, tasks: 200, approvals: 50, audit: 100 } as const;

/** Parses with a zod schema; a failure is a 400 whose issues name each path (prefixed by `where`). */
export function check<S extends z.ZodType>(schema: S, value: unknown, where: 'query' | 'body'): z.infer<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issues = zodIssues(r.error, where === 'query' ? ['query'] : []).map((i) =>
    i.message === 'unknown setting' ? { path: i.path, message: where === 'query' ? 'unknown query parameter' : 'unknown field' } : i,
  );
  throw invalidRequest(issues, where === 'query' ? 'query' : 'request body');
}
