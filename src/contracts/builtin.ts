import type { Json } from '../core/types.ts';

/**
 * Contracts Spine itself defines, under the reserved `spine/` namespace, known to
 * every registry: an agent declares them as its output like any other contract, and
 * the boundary checks them like any other.
 */

/** Claims: what synthesis compares across the lanes of a join (docs/synthesis.md). */
export const CLAIMS_CONTRACT = 'spine/claims@1';
/** A judge agent's answer about one conflicting key. */
export const JUDGEMENT_CONTRACT = 'spine/judgement@1';

const EVIDENCE_KINDS = ['effect', 'fact', 'url', 'quote'] as const;

const claimsSchema: Json = {
  type: 'object',
  required: ['claims'],
  additionalProperties: false,
  properties: {
    claims: {
      type: 'array',
      items: {
        type: 'object',
        required: ['key', 'value', 'evidence'],
        additionalProperties: false,
        properties: {
          key: { type: 'string', minLength: 1, maxLength: 200 },
          value: {},
          confidence: { type: 'number', minimum: 0, maximum: 1 },
          evidence: {
            type: 'array',
            items: {
              type: 'object',
              required: ['kind', 'ref'],
              additionalProperties: false,
              properties: { kind: { enum: [...EVIDENCE_KINDS] }, ref: { type: 'string', minLength: 1 } },
            },
          },
        },
      },
    },
    notes: { type: 'string' },
  },
};

const judgementSchema: Json = {
  type: 'object',
  required: ['decision', 'rationale'],
  additionalProperties: false,
  properties: {
    /** `decided`: `value` is the key's value; `abstain`: the chain goes on to its next strategy. */
    decision: { enum: ['decided', 'abstain'] },
    value: {},
    rationale: { type: 'string' },
  },
  if: { properties: { decision: { const: 'decided' } } },
  then: { required: ['value'] },
};

export const BUILTIN_CONTRACTS: ReadonlyArray<{ id: string; schema: Json; description: string }> = [
  { id: CLAIMS_CONTRACT, schema: claimsSchema, description: '{claims: [{key, value, confidence?, evidence: [{kind, ref}]}], notes?}' },
  { id: JUDGEMENT_CONTRACT, schema: judgementSchema, description: "a judge's answer: {decision: decided | abstain, value?, rationale}" },
];

export function isBuiltinContract(id: string): boolean {
  return id.startsWith('spine/');
}
