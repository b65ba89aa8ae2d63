import type { BriefPart, Candidate, Claim, ClaimSource, Comparator, FailedLane, MissingKey } from '../core/brief.ts';
import type { ErrorInfo, Json } from '../core/types.ts';
import { canonical, compareText } from './canonical.ts';

/**
 * Deterministic conflict detection: a pure function of the lanes' claims and the
 * declared comparators. Claims are grouped by key and each key is classified:
 * `agree` (one value, within tolerance), `complementary` (sets that differ: their
 * union), `conflict` (values that disagree: the candidates), or `missing` (an
 * expected key no lane claimed; the failed lanes are named). Nothing depends on
 * the order of lanes or claims, and every input claim lands exactly once: in a
 * part's sources or in one conflict candidate's.
 */

export type Lane = { agent: string; task: string; turn: number; ok: true; claims: Claim[] | null } | { agent: string; task: string; ok: false; error: ErrorInfo };

export interface Detection {
  lanes: number;
  /** Lanes whose output carried claims. */
  claimed: number;
  parts: BriefPart[];
  conflicts: Array<{ key: string; candidates: Candidate[] }>;
  missing: MissingKey[];
  failedLanes: FailedLane[];
}

interface Sourced {
  value: Json;
  text: string;
  source: ClaimSource;
  /** Everything that orders two claims of one key, computed once. */
  order: string;
}

export function detect(lanes: readonly Lane[], comparatorFor: (key: string) => Comparator, expect: readonly string[] = []): Detection {
  const byKey = new Map<string, Sourced[]>();
  const failedLanes: FailedLane[] = [];
  let claimed = 0;
  for (const lane of lanes) {
    if (!lane.ok) {
      failedLanes.push({ agent: lane.agent, task: lane.task, error: lane.error });
      continue;
    }
    if (!lane.claims) continue;
    claimed++;
    for (const c of lane.claims) {
      const effect = c.evidence.find((e) => e.kind === 'effect')?.ref;
      const source: ClaimSource = {
        agent: lane.agent,
        task: lane.task,
        turn: lane.turn,
        ...(effect === undefined ? {} : { effect }),
        ...(c.confidence === undefined ? {} : { confidence: c.confidence }),
        // Rebuilt in a fixed key order: the brief's JSON (and so its digest) does not depend on how an agent ordered its keys.
        evidence: c.evidence.map((e) => ({ kind: e.kind, ref: e.ref })).sort((a, b) => compareText(a.kind, b.kind) || compareText(a.ref, b.ref)),
      };
      const text = canonical(c.value);
      const order = [source.agent, source.task, text, source.confidence ?? -1, ...source.evidence.map((e) => `${e.kind} ${e.ref}`)].join('\u0000');
      let list = byKey.get(c.key);
      if (!list) byKey.set(c.key, (list = []));
      list.push({ value: c.value, text, source, order });
    }
  }
  failedLanes.sort((a, b) => compareText(a.task, b.task));

  const parts: BriefPart[] = [];
  const conflicts: Detection['conflicts'] = [];
  for (const key of [...byKey.keys()].sort(compareText)) {
    const claims = byKey.get(key)!.sort(bySource);
    const cmp = comparatorFor(key);
    const groups = group(claims, cmp);
    if (groups.length === 1) {
      parts.push({ key, status: 'agree', value: groups[0]!.value, from: groups[0]!.from });
    } else if (cmp.kind === 'set') {
      parts.push({ key, status: 'complementary', value: normal(union(claims)), from: claims.map((c) => c.source) });
    } else {
      conflicts.push({ key, candidates: groups });
    }
  }
  const missing: MissingKey[] = [...new Set(expect)]
    .filter((k) => !byKey.has(k))
    .sort(compareText)
    .map((key) => ({ key, lanes: failedLanes.map((l) => l.task) }));
  return { lanes: lanes.length, claimed, parts, conflicts, missing, failedLanes };
}

/** Candidates: claims with the same value (or, numerically, within tolerance of the cluster's first), in value order. */
function group(claims: Sourced[], cmp: Comparator): Candidate[] {
  if (cmp.kind === 'numeric') {
    const nums = claims.filter((c) => typeof c.value === 'number').sort((a, b) => (a.value as number) - (b.value as number) || bySource(a, b));
    const others = claims.filter((c) => typeof c.value !== 'number');
    const clusters: Sourced[][] = [];
    for (const c of nums) {
      const last = clusters.at(-1);
      if (last && (c.value as number) - (last[0]!.value as number) <= cmp.tolerance) last.push(c);
      else clusters.push([c]);
    }
    // A cluster's value is its median (the lower one of an even count): independent of order.
    const numeric = clusters.map((cl) => ({ value: cl[Math.floor((cl.length - 1) / 2)]!.value, from: cl.sort(bySource).map((c) => c.source) }));
    return [...numeric, ...exact(others)];
  }
  if (cmp.kind === 'set') return exact(claims.map((c) => ({ ...c, text: canonical(setOf(c.value)) })));
  return exact(claims);
}

function exact(claims: Sourced[]): Candidate[] {
  const byText = new Map<string, Sourced[]>();
  for (const c of claims) {
    const list = byText.get(c.text);
    if (list) list.push(c);
    else byText.set(c.text, [c]);
  }
  return [...byText.keys()].sort(compareText).map((t) => {
    const list = byText.get(t)!.sort(bySource);
    return { value: normal(list[0]!.value), from: list.map((c) => c.source) };
  });
}

/** A value with its object keys in canonical order (so the brief's plain JSON is canonical). */
export function normal(v: Json): Json {
  return v !== null && typeof v === 'object' ? (JSON.parse(canonical(v)) as Json) : v;
}

function setOf(v: Json): Json[] {
  const items = Array.isArray(v) ? v : [v];
  const byText = new Map(items.map((i) => [canonical(i), i]));
  return [...byText.keys()].sort(compareText).map((k) => byText.get(k)!);
}

function union(claims: Sourced[]): Json {
  return setOf(claims.flatMap((c) => setOf(c.value)));
}

function bySource(a: Sourced, b: Sourced): number {
  return compareText(a.order, b.order);
}

/** A lane's claims, if its output is a `spine/claims@1` shape (anything else joins as today, without detection). */
export function claimsOf(output: Json): Claim[] | null {
  if (output === null || typeof output !== 'object' || Array.isArray(output)) return null;
  const claims = output.claims;
  if (!Array.isArray(claims)) return null;
  const out: Claim[] = [];
  for (const c of claims) {
    if (c === null || typeof c !== 'object' || Array.isArray(c) || typeof c.key !== 'string' || !('value' in c)) return null;
    const evidence = Array.isArray(c.evidence) ? (c.evidence as unknown as Claim['evidence']) : [];
    out.push({ key: c.key, value: c.value!, ...(typeof c.confidence === 'number' ? { confidence: c.confidence } : {}), evidence });
  }
  return out;
}
