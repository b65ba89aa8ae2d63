import { z } from '@hono/zod-openapi';
import { ERROR_CATALOGUE, SpineError } from '../core/errors.ts';
import { newId } from '../core/ids.ts';
import { apiEnvelopeSchema } from '../intake/envelope.ts';
import type { GatewayModule } from './api.ts';
import { toApiError } from './errors.ts';
import { AUTH, BODY, SYSTEM, jsonBody, route } from './route-kit.ts';
import { check } from './schemas.ts';
import { checkSubmitter, submitFromApi } from './submit.ts';
import { envelopeRecord, errorDetail, run } from './wire.ts';
import { IDEMPOTENCY_KEY } from '../core/envelope.ts';

/** Most envelopes in one batch (the body limit, gateway.bodyLimitBytes, applies too). */
export const BATCH_MAX = 1_000;

const batchItem = apiEnvelopeSchema.extend({
  idempotencyKey: z
    .string()
    .regex(IDEMPOTENCY_KEY)
    .optional()
    .openapi({ description: "this envelope's idempotency key (1–255 printable ASCII characters); generated when absent" }),
});

const batchBody = z.strictObject({ envelopes: z.array(batchItem).min(1).max(BATCH_MAX) }).openapi('EnvelopeBatch');

const itemResult = z
  .strictObject({
    status: z.number().int().openapi({ description: 'what `POST /v1/envelopes` would have answered for this envelope: 202, 200 (duplicate), 422, 409, 503…' }),
    idempotencyKey: z.string(),
    idempotencyKeyGenerated: z.literal(true).optional(),
    duplicate: z.literal(true).optional(),
    envelope: envelopeRecord.optional(),
    run: run.nullable().optional(),
    error: errorDetail.optional(),
  })
  .openapi('EnvelopeBatchItem');

const batchResult = z
  .strictObject({
    results: z.array(itemResult).openapi({ description: 'one per envelope, in the order sent' }),
    accepted: z.number().int().openapi({ description: 'envelopes stored now (202)' }),
    duplicates: z.number().int().openapi({ description: 'envelopes whose key was seen before (200): nothing new stored' }),
    refused: z.number().int().openapi({ description: 'envelopes not accepted (unroutable, contract violation, store unavailable…): retry those with the same keys' }),
  })
  .openapi('EnvelopeBatchResult');

export const submitEnvelopeBatch = route({
  method: 'post',
  path: '/v1/envelopes:batch',
  operationId: 'submitEnvelopeBatch',
  summary: 'Submit many envelopes in one request, each with its own idempotency key',
  description: `Up to ${BATCH_MAX} envelopes, each as \`POST /v1/envelopes\` takes it plus its own \`idempotencyKey\`. The whole body is checked first — its shape, and the token's scope for every envelope — and a bad one refuses the batch with nothing stored. Then every envelope goes through the door on its own, concurrently (on SQLite they share group commits), and the answer lists, in order, what \`POST /v1/envelopes\` would have answered for each: accepted, duplicate, or refused with its error. Retrying the whole batch with the same keys is safe: stored envelopes come back as duplicates.`,
  tags: ['intake'],
  'x-spine-permission': 'submit',
  errors: [...BODY, 'INVALID_REQUEST', ...AUTH, ...SYSTEM],
  request: { body: { required: true, content: { 'application/json': { schema: batchBody } } } },
  responses: { 200: jsonBody(batchResult, 'every envelope answered, in order') },
});

export const mountBatch: GatewayModule = (api) => {
  api.app.openapi(api.bind(submitEnvelopeBatch), async (c) => {
    const principal = c.get('principal');
    const input = check(batchBody, await api.readJson(c), 'body');
    input.envelopes.forEach((item, i) => checkSubmitter(principal, item, ` (envelopes[${i}])`));
    const results = await Promise.all(
      input.envelopes.map(async ({ idempotencyKey, ...item }): Promise<z.infer<typeof itemResult>> => {
        const key = idempotencyKey ?? newId('idem');
        const meta = { idempotencyKey: key, ...(idempotencyKey === undefined ? { idempotencyKeyGenerated: true as const } : {}) };
        try {
          const result = await submitFromApi(api.intake, principal, item, key);
          const found = { ...meta, ...(result.created ? {} : { duplicate: true as const }), envelope: result.envelope, run: result.run };
          if (result.envelope.state === 'unroutable') {
            const error = { code: 'UNROUTABLE' as const, message: result.envelope.error?.message ?? 'no binding matches this envelope', envelope: result.envelope.id };
            return { status: ERROR_CATALOGUE.UNROUTABLE.status, ...found, error };
          }
          return { status: result.created ? 202 : 200, ...found };
        } catch (err) {
          // A bug is a bug: only the catalogue's conditions are an item's answer.
          if (!(err instanceof SpineError)) throw err;
          const e = toApiError(err);
          return { status: e.status, ...meta, error: e.body().error as z.infer<typeof errorDetail> };
        }
      }),
    );
    const count = (pred: (r: z.infer<typeof itemResult>) => boolean) => results.filter(pred).length;
    return c.json({ results, accepted: count((r) => r.status === 202), duplicates: count((r) => r.status === 200), refused: count((r) => r.status >= 300) }, 200);
  });
};
