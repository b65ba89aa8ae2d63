import { ACCOUNTS, accountOf, earlier } from './accounts.ts';
import type { Turn } from './types.ts';

const SCOPE = 'team/success';

/**
 * Customer success, in two roles:
 * - research (the commander's first round): product usage, as claims;
 * - `mode: 'email'`: writes the renewal email from the commander's brief and sends it
 *   with `email.send` — the only agent granted that tool. The send waits for a person
 *   (policy rule customer-email-ok), then for the customer's office hours
 *   (customer-hours), then passes the gate customer-email before it happens.
 */
export default function success(turn: Turn) {
  const input = turn.task.input;
  const id = accountOf(input);
  if (!id) return { output: { claims: [], notes: 'no known account in the request' } };
  const a = ACCOUNTS[id]!;
  if (input.mode === 'email') return email(turn, id);
  const u = a.success;
  const findings = { weeklyActivePct: u.weeklyActivePct, weeklyActivePctQuarterAgo: u.weeklyActivePctQuarterAgo, unusedModules: u.unusedModules };
  return {
    actions: [{ type: 'remember', scope: SCOPE, key: id, value: findings, text: `${a.name} usage: ${u.weeklyActivePct}% weekly active (was ${u.weeklyActivePctQuarterAgo}%); unused: ${u.unusedModules.join(', ') || 'none'}` }],
    output: {
      claims: [
        { key: 'expansion.potential', value: u.unusedModules.length > 0 ? 'high' : 'low', confidence: 0.8, evidence: [{ kind: 'quote', ref: `unused modules: ${u.unusedModules.join(', ') || 'none'}` }] },
        { key: 'usage.trend', value: u.weeklyActivePct < u.weeklyActivePctQuarterAgo ? 'declining' : 'steady', confidence: 0.9, evidence: [{ kind: 'quote', ref: `${u.weeklyActivePctQuarterAgo}% → ${u.weeklyActivePct}% weekly active` }] },
      ],
      findings,
      earlier: earlier(turn.memory, SCOPE, turn.task.runId),
    },
    usage: { inputTokens: 250, outputTokens: 70, costUsd: 0.02 },
  };
}

function email(turn: Turn, id: string) {
  const a = ACCOUNTS[id]!;
  if (turn.task.turn === 1) {
    const brief = (turn.task.input.brief ?? {}) as { churnRisk?: unknown; expansionPotential?: unknown; invoicesOutstanding?: { count?: number; usd?: number } | null };
    const lines = [
      `Hi ${a.contact.name.split(' ')[0]},`,
      '',
      `${a.name}'s subscription renews on ${a.renewalDate}. Before then we would like to set up a short call.`,
    ];
    if (brief.churnRisk === 'high') lines.push('We know the sign-in problems of the last weeks got in your way; our support lead will join the call with the fix plan.');
    if (brief.expansionPotential === 'high') lines.push('We can also walk through the larger-team quote you asked for, and the forecasting module your team has not switched on yet.');
    if (brief.invoicesOutstanding && (brief.invoicesOutstanding.count ?? 0) > 0) lines.push(`One housekeeping item: ${brief.invoicesOutstanding.count} invoices (USD ${brief.invoicesOutstanding.usd}) are still open; our billing team will send the details.`);
    lines.push('', 'Best,', 'Your customer success team');
    return {
      actions: [{ type: 'tool', tool: 'email.send', id: 'send', input: { to: a.contact.email, subject: `Your ${a.name} renewal on ${a.renewalDate}`, body: lines.join('\n'), account: id, renewalDate: a.renewalDate } }],
      usage: { inputTokens: 500, outputTokens: 200, costUsd: 0.02 },
    };
  }
  const [sent] = turn.results;
  return { output: sent?.ok ? { sent: true, ...(sent.value as object) } : { sent: false, reason: sent?.error?.message ?? 'no result', code: sent?.error?.code ?? null } };
}
