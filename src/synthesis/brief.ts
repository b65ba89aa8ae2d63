import type { BriefBody, Conflict } from '../core/brief.ts';
import { digest } from '../core/digest.ts';
import type { Json } from '../core/types.ts';
import { comparatorFor, type SynthesisSpec } from './config.ts';
import { detect, normal, type Lane } from './detect.ts';
import { newConflict, ruleFor } from './resolve.ts';

/** A brief's body as detection leaves it: parts, conflicts at the start of their chains, missing keys, failed lanes. */
export function startBrief(lanes: readonly Lane[], spec: SynthesisSpec): BriefBody {
  const d = detect(lanes, (key) => comparatorFor(spec, key), spec.expect);
  const conflicts: Conflict[] = d.conflicts.map((c) => newConflict(c.key, c.candidates, ruleFor(c.key, spec.rules).match));
  return { lanes: d.lanes, claimed: d.claimed, parts: d.parts, conflicts, missing: d.missing, failedLanes: d.failedLanes };
}

/**
 * The digest of a brief: its body (no ids of its own, no times). Detection and
 * resolution build every object in a fixed key order and put values in canonical
 * form, so plain JSON is canonical here: same inputs and decisions, same digest.
 */
export function briefDigest(body: BriefBody): string {
  const { lanes, claimed, parts, conflicts, missing, failedLanes } = body;
  return digest({ lanes, claimed, parts, conflicts, missing, failedLanes: failedLanes.map((l) => ({ agent: l.agent, task: l.task, error: normal(l.error as unknown as Json) })) });
}

/** The value every key settled on: parts, and conflicts a strategy decided (unresolved ones are left out). */
export function briefValues(body: BriefBody): Record<string, Json> {
  const out: Record<string, Json> = {};
  for (const p of body.parts) out[p.key] = p.value;
  for (const c of body.conflicts) if (c.decision) out[c.key] = c.decision.value;
  return out;
}
