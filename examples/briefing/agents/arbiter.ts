/**
 * The judge the hub dispatches when a vote ties (contract spine/judgement@1). Offline,
 * a rule of thumb stands in for a model: prefer the claim with evidence you can check
 * and the higher confidence. The LLM variant of the example uses a model here.
 */
interface Candidate {
  value: unknown;
  from: Array<{ agent: string; confidence?: number; evidence: Array<{ kind: string; ref: string }> }>;
}

export default function arbiter(turn: { task: { input: { key: string; candidates: Candidate[] } } }) {
  const { key, candidates } = turn.task.input;
  const score = (c: Candidate) => Math.max(...c.from.map((f) => (f.confidence ?? 0) + (f.evidence.length > 0 ? 0.5 : 0)));
  const ranked = [...candidates].sort((a, b) => score(b) - score(a));
  const best = ranked[0];
  if (!best || (ranked[1] && score(ranked[1]) === score(best))) return { output: { decision: 'abstain', rationale: `no candidate for ${key} is better supported` } };
  return { output: { decision: 'decided', value: best.value, rationale: `${best.from.map((f) => f.agent).join(', ')}: the best-supported claim on ${key}` } };
}
