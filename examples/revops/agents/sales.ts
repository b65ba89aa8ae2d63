import { ACCOUNTS, accountOf, earlier } from './accounts.ts';
import type { Turn } from './types.ts';

const SCOPE = 'team/sales';

/** Pipeline and relationship: the seats, the champion, what was asked for at the last QBR. */
export default function sales(turn: Turn) {
  const id = accountOf(turn.task.input);
  if (!id) return { output: { claims: [], notes: 'no known account in the request' } };
  const a = ACCOUNTS[id]!;
  const s = a.sales;
  const growth = s.seatsRequested / s.seats;
  const findings = { seats: s.seats, seatsRequested: s.seatsRequested, champion: s.champion, lastQbr: s.lastQbr };
  return {
    // What sales learned goes to its team scope, once per renewal (unchanged facts append nothing).
    actions: [{ type: 'remember', scope: SCOPE, key: id, value: findings, text: `${a.name} sales: ${s.seats} seats, asked for ${s.seatsRequested}; champion ${s.champion}; ${s.lastQbr}` }],
    output: {
      claims: [
        { key: 'churn.risk', value: 'low', confidence: 0.6, evidence: [{ kind: 'quote', ref: `${s.champion} is engaged; ${s.lastQbr}` }] },
        { key: 'expansion.potential', value: growth > 1.2 ? 'high' : 'low', confidence: 0.7, evidence: [{ kind: 'quote', ref: s.lastQbr }] },
      ],
      findings,
      earlier: earlier(turn.memory, SCOPE, turn.task.runId),
    },
    usage: { inputTokens: 300, outputTokens: 80, costUsd: 0.02 },
  };
}
