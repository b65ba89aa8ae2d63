import { ACCOUNTS, accountOf } from './accounts.ts';
import type { Turn } from './types.ts';

const DEPARTMENTS = ['sales', 'support', 'finance', 'success'] as const;

/**
 * Prepares one renewal, in three turns:
 * 1. asks the four departments at once (they run in parallel, each under its own grants);
 * 2. reads the brief the hub synthesised from their claims (the churn-risk conflict
 *    already settled by the configured chain), records the account summary in
 *    `team/accounts` and asks success to write to the customer;
 * 3. answers with the renewal brief (its `text` is the Slack reply when Slack asked).
 * Each turn is handed what any team learned about the account before (its `recall`).
 */
export default function commander(turn: Turn) {
  const input = turn.task.input;
  if (typeof input.text === 'string' && /^heartbeat\b/i.test(input.text)) return heartbeat(turn);
  const id = accountOf(input) ?? accountOf({ account: payloadAccount(input) });
  if (!id) {
    const known = Object.values(ACCOUNTS).map((a) => a.name).join(', ');
    return { output: { text: `Which account? I prepare renewals for: ${known}.` }, usage: { inputTokens: 20, outputTokens: 12, costUsd: 0.001 } };
  }
  const account = ACCOUNTS[id]!;
  const usage = { inputTokens: 400 * turn.task.turn, outputTokens: 120, costUsd: 0.01 };
  if (turn.task.turn === 1) {
    return {
      actions: DEPARTMENTS.map((agent) => ({ type: 'handoff', agent, id: agent, input: { account: id, renewalDate: account.renewalDate } })),
      usage,
    };
  }
  if (turn.task.turn === 2) {
    const settled = settle(turn.brief);
    const brief = {
      account: account.name,
      renewalDate: account.renewalDate,
      churnRisk: settled['churn.risk'] ?? 'unknown',
      expansionPotential: settled['expansion.potential'] ?? 'unknown',
      invoicesOutstanding: settled['invoices.outstanding'] ?? null,
      resolved: (turn.brief?.conflicts ?? []).map((c) => ({ key: c.key, candidates: c.candidates.map((x) => x.value), decidedBy: c.decision?.strategy ?? null, value: c.decision?.value ?? null })),
      // What the teams knew before this renewal: facts other runs wrote, recalled across the team scopes.
      previously: (turn.memory ?? []).filter((m) => m.writtenBy.run !== turn.task.runId).map((m) => ({ scope: m.scope, key: m.key, version: m.version, fact: m.id, run: m.writtenBy.run })),
      failedDepartments: turn.results.filter((r) => r.type === 'handoff' && !r.ok).map((r) => r.id),
    };
    return {
      actions: [
        // The account summary: what the commander's heartbeat watches (team/accounts).
        { type: 'remember', scope: 'team/accounts', key: id, value: brief, text: `${account.name} renewal ${account.renewalDate}: churn risk ${show(brief.churnRisk)}, expansion ${show(brief.expansionPotential)}` },
        { type: 'handoff', agent: 'success', id: 'email', input: { account: id, renewalDate: account.renewalDate, mode: 'email', brief } },
      ],
      usage,
    };
  }
  const summary = turn.history?.[1]?.actions?.[0] as { value?: Record<string, unknown> } | undefined;
  const brief = summary?.value ?? {};
  const email = turn.results.find((r) => r.id === 'email');
  const outcome = email?.ok ? (email.value as Record<string, unknown>) : { notSent: email?.error?.message ?? 'no result' };
  return {
    output: {
      ...brief,
      email: outcome,
      text: `${account.name} renewal (${account.renewalDate}): churn risk ${show(brief.churnRisk)}, expansion ${show(brief.expansionPotential)}; email ${email?.ok ? 'sent' : 'not sent'}.`,
    },
    usage,
  };
}

/**
 * A heartbeat (a schedule whose text starts with "heartbeat"), in two turns: recall the
 * account summaries in team/accounts, then name the accounts that need a person — high
 * churn risk or open invoices — or answer HEARTBEAT_OK when none do.
 */
function heartbeat(turn: Turn) {
  const usage = { inputTokens: 200, outputTokens: 20, costUsd: 0.005 };
  if (turn.task.turn === 1) return { actions: [{ type: 'recall', scope: 'team/accounts', query: 'renewal churn risk expansion', k: 50 }], usage };
  const [recalled] = turn.results;
  const attention = ((recalled?.ok ? recalled.value : []) as Array<{ value: { account?: string; churnRisk?: unknown; invoicesOutstanding?: { count?: number } | null } }>)
    .map((f) => f.value)
    .filter((v) => v.churnRisk === 'high' || (v.invoicesOutstanding?.count ?? 0) > 0)
    .map((v) => v.account ?? '?');
  if (attention.length === 0) return { output: { text: 'HEARTBEAT_OK' }, usage };
  return { output: { text: `Accounts that need a person: ${attention.join(', ')}.`, attention }, usage };
}

/** The webhook's account field (`{"account": "acme", …}` in the CRM's JSON body). */
function payloadAccount(input: Record<string, unknown>): string | undefined {
  const envelope = input.envelope as { data?: { payload?: { account?: unknown } } } | undefined;
  const a = envelope?.data?.payload?.account;
  return typeof a === 'string' ? a : undefined;
}

/** Each key's value: what the departments agree on, and the conflicts the chain decided. */
function settle(brief: Turn['brief']): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const p of brief?.parts ?? []) out[p.key] = p.value;
  for (const c of brief?.conflicts ?? []) if (c.decision) out[c.key] = c.decision.value;
  return out;
}

const show = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v) ?? 'unknown');
