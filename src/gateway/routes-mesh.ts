import { z } from '@hono/zod-openapi';
import { meshLog, type MeshLogEntry } from '../audit/mesh-log.ts';
import { MESH_CALL_PATH, MESH_EVENTS } from '../core/mesh.ts';
import { MeshRefusedError } from '../core/errors.ts';
import type { GatewayModule } from './api.ts';
import { AUTH, BODY, SYSTEM, jsonBody, route } from './route-kit.ts';
import { check, decimal } from './schemas.ts';
import { actionResult, json, type Same } from './wire.ts';

/** The mesh's traffic (docs/mesh.md): the direct calls' shadow records, newest first (`spine mesh log`, the dashboard's Mesh panel). */

const DEFAULT_LIMIT = 50;
const str = z.string();

export const meshLogEntry = z
  .strictObject({
    id: str.openapi({ description: "the event's seq, as the page cursor" }),
    seq: z.number().int(),
    at: z.number().int(),
    kind: z.enum(MESH_EVENTS),
    runId: str.nullable(),
    taskId: str.nullable(),
    key: str.nullable().openapi({ description: "the call's idempotency key: run/task/turn/action (nested calls deeper)" }),
    call: str.nullable(),
    from: str.nullable(),
    to: str.nullable(),
    hop: z.number().int().nullable(),
    ok: z.boolean().nullable(),
    reason: str.nullable().openapi({ description: 'mesh.refused: undeclared, hops, cycle, rate, effects, capability or boundary' }),
    code: str.nullable(),
    ms: z.number().nullable(),
  })
  .openapi('MeshLogEntry');

export type MeshWireCheck = Same<z.infer<typeof meshLogEntry>, MeshLogEntry> extends true ? true : never;
const wireCheck: MeshWireCheck = true;
void wireCheck;

export const listMeshCalls = route({
  method: 'get',
  path: '/v1/mesh/calls',
  operationId: 'listMeshCalls',
  summary: 'Direct agent-to-agent calls (mesh.call, mesh.reply, mesh.refused), newest first',
  tags: ['events'],
  'x-spine-permission': 'read',
  errors: ['INVALID_REQUEST', ...AUTH, ...SYSTEM],
  request: {
    query: z.strictObject({
      run: z.string().min(1).max(128).optional().openapi({ description: 'only this run' }),
      limit: z.coerce.number().int().min(1).max(500).optional().openapi({ description: `page size (default ${DEFAULT_LIMIT}, at most 500)` }),
      // A seq: decimal digits within the safe range (a 20-digit cursor overflowed PostgreSQL's bigint into a 500).
      cursor: decimal(0, Number.MAX_SAFE_INTEGER).optional().openapi({ type: 'integer', description: 'the `next` of the previous page' }),
    }),
  },
  responses: { 200: jsonBody(z.strictObject({ entries: z.array(meshLogEntry), next: z.string().nullable() }), 'the mesh log') },
});

export const meshCallBody = z
  .strictObject({
    token: z.string().min(1).max(200).openapi({ description: "the turn's capability: `mesh.token` of its turn input" }),
    agent: z.string().min(1).max(200).openapi({ description: 'the callee: one of the turn input\'s `grants.mesh`' }),
    input: json.optional().openapi({ description: "the callee's task input" }),
    contract: z.string().min(1).max(200).optional().openapi({ description: 'the contract the input is declared as (default: the callee\'s input contract)' }),
    id: z.string().min(1).max(200).optional().openapi({ description: 'echoed in the result' }),
  })
  .openapi('MeshCall');

export const callMeshAgent = route({
  method: 'post',
  path: MESH_CALL_PATH,
  operationId: 'callMeshAgent',
  summary: "The mesh shim: an external agent calls a declared mesh path during its turn, with the turn's capability (docs/mesh.md)",
  description:
    'Authorised by the per-turn capability in the body (no bearer token). The call runs the same checks as a `call_agent` action (pair, hops, cycle, boundary, the pair rate) with `mesh.call` committed before forwarding and `mesh.reply` before this answer. 200 carries the action result, `ok: false` with the error when the mesh, the boundary or the callee refused; 403 MESH_REFUSED (reason `capability`) when the capability is unknown or its turn has ended.',
  tags: ['events'],
  'x-spine-permission': 'public',
  errors: [...BODY, 'INVALID_REQUEST', 'MESH_REFUSED', ...SYSTEM],
  request: { body: { required: true, content: { 'application/json': { schema: meshCallBody } } } },
  responses: { 200: jsonBody(actionResult, "the call's result, as a `call_agent` action's") },
});

export const meshRoutes: GatewayModule = (api) => {
  api.app.openapi(api.bind(callMeshAgent), async (c) => {
    const { token, ...req } = check(meshCallBody, await api.readJson(c), 'body');
    if (!api.shim) throw new MeshRefusedError('capability', 'no worker runs in this gateway\'s process, so it holds no mesh capability: call the gateway of the process running the turn', { to: req.agent });
    return c.json(await api.shim.call(token, req), 200);
  });

  api.app.openapi(api.bind(listMeshCalls), async (c) => {
    const q = c.req.valid('query');
    const limit = q.limit ?? DEFAULT_LIMIT;
    const rows = await meshLog(api.store, { limit: limit + 1, ...(q.run ? { runId: q.run } : {}), ...(q.cursor !== undefined ? { before: q.cursor } : {}) });
    const entries = rows.slice(0, limit);
    return c.json({ entries, next: rows.length > limit ? entries.at(-1)!.id : null }, 200);
  });
};
