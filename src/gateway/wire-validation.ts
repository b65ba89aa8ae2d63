import { z } from '@hono/zod-openapi';
import { BREAKER_STATES, GATE_CHECK_VERDICTS, GATE_MODES, GATE_OUTCOMES } from '../core/states.ts';
import type { BreakerRecord } from '../store/breakers.ts';
import type { GateVerdictRecord } from '../store/verdicts.ts';
import type { Check, Same } from './wire.ts';
import type { ProbeResult, StuckFinding } from '../store/store.ts';

/** The validation area's answers on the wire (gate verdicts), checked against their interfaces at compile time. */

const ms = z.number().int().min(0).openapi({ description: 'milliseconds since the Unix epoch' });

export const gateVerdict = z
  .strictObject({
    seq: z.number().int(),
    at: ms,
    gate: z.string(),
    crossing: z.string().openapi({ description: 'intake, tool, toolResult, handoff, handoffResult, output, deliver or remember' }),
    name: z.string().openapi({ description: 'what crossed: the tool, the receiving agent, `channel:to`, …' }),
    runId: z.string().nullable(),
    taskId: z.string().nullable(),
    agent: z.string().nullable(),
    key: z.string().openapi({ description: "the crossing's place in the run (its effect key)" }),
    mode: z.enum(GATE_MODES),
    verdict: z.enum(GATE_CHECK_VERDICTS).openapi({ description: 'what the check said' }),
    outcome: z.enum(GATE_OUTCOMES).openapi({ description: 'what the boundary did (a shadow gate only records it)' }),
    reasons: z.array(z.string()),
    inputDigest: z.string(),
    configVersion: z.string(),
  })
  .openapi('GateVerdict');

export const breaker = z
  .strictObject({
    key: z.string().openapi({ description: '`agent:<name>`, `tool:<name>` or `model:<endpoint>`' }),
    state: z.enum(BREAKER_STATES),
    failures: z.number().int(),
    calls: z.number().int(),
    windowStart: ms,
    retryAt: ms.nullable().openapi({ description: 'open: when its half-open probe may go through' }),
    probeOwner: z.string().nullable(),
    probeUntil: ms.nullable(),
    lastError: z.string().nullable(),
    changedAt: ms,
  })
  .openapi('Breaker');

export const probeResult = z
  .strictObject({
    key: z.string().openapi({ description: 'what it checks: `agent:<name>` (the breaker it feeds) or `mcp:<server>` (feeding its tools\' breakers)' }),
    ok: z.boolean().nullable().openapi({ description: 'null: not run yet' }),
    checkedAt: ms.nullable(),
    ms: z.number().int().nullable(),
    detail: z.string().nullable(),
    dueAt: ms,
  })
  .openapi('ProbeResult');

export const stuckFinding = z
  .strictObject({
    kind: z.string().openapi({ description: 'lease-expired, turn-overdue, join-overdue, approval-expiring or run-over-sla' }),
    subject: z.string().openapi({ description: 'the stuck task, approval or run' }),
    runId: z.string(),
    since: ms,
    detail: z.string(),
    action: z.string().openapi({ description: 'report, escalate or cancel' }),
    approvalId: z.string().nullable(),
    foundAt: ms,
  })
  .openapi('StuckFinding');

export type ValidationWireChecks = [
  Check<Same<z.infer<typeof gateVerdict>, GateVerdictRecord>>,
  Check<Same<z.infer<typeof breaker>, BreakerRecord>>,
  Check<Same<z.infer<typeof probeResult>, ProbeResult>>,
  Check<Same<z.infer<typeof stuckFinding>, StuckFinding>>,
];
