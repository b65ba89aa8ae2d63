import { ACCOUNTS, accountOf, earlier } from './accounts.ts';
import type { Turn } from './types.ts';

const SCOPE = 'team/support';

/** Ticket patterns. Also answers Slack questions about tickets directly (the classifier sends them here). */
export default function support(turn: Turn) {
  const id = accountOf(turn.task.input);
  if (!id) return { output: { claims: [], text: 'Which account? Name one and I will summarise its tickets.' } };
  const a = ACCOUNTS[id]!;
  const t = a.support;
  const findings = { ticketsLast30d: t.ticketsLast30d, p1: t.p1, topic: t.topic, csat: t.csat };
  const risk = t.p1 >= 2 || t.csat < 3.5 ? 'high' : 'low';
  const text = `${a.name} support: ${t.ticketsLast30d} tickets in 30 days, ${t.p1} P1 (${t.topic}), CSAT ${t.csat}`;
  return {
    actions: [{ type: 'remember', scope: SCOPE, key: id, value: findings, text }],
    output: {
      claims: [{ key: 'churn.risk', value: risk, confidence: 0.85, evidence: [{ kind: 'quote', ref: `${t.p1} P1 tickets on ${t.topic}; CSAT ${t.csat}` }] }],
      findings,
      earlier: earlier(turn.memory, SCOPE, turn.task.runId),
      text,
    },
    usage: { inputTokens: 900, outputTokens: 60, costUsd: 0.03 },
  };
}
