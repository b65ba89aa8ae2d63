/**
 * Canned CRM, support-desk and product-analytics data: what the offline department
 * agents "look up". Finance keeps its own books (agents/finance.py).
 */
export interface Account {
  name: string;
  contact: { name: string; email: string };
  renewalDate: string;
  arrUsd: number;
  sales: { seats: number; seatsRequested: number; champion: string; lastQbr: string };
  support: { ticketsLast30d: number; p1: number; topic: string; csat: number };
  success: { weeklyActivePct: number; weeklyActivePctQuarterAgo: number; unusedModules: string[] };
}

export const ACCOUNTS: Record<string, Account> = {
  acme: {
    name: 'ACME',
    contact: { name: 'Dana Reyes', email: 'dana.reyes@acme.example' },
    renewalDate: '2027-01-31',
    arrUsd: 120_000,
    sales: { seats: 80, seatsRequested: 120, champion: 'Dana Reyes (VP Operations)', lastQbr: 'QBR 2026-10-14: Dana asked for a 120-seat quote' },
    support: { ticketsLast30d: 14, p1: 3, topic: 'SSO login failures', csat: 3.1 },
    success: { weeklyActivePct: 62, weeklyActivePctQuarterAgo: 81, unusedModules: ['forecasting'] },
  },
  globex: {
    name: 'Globex',
    contact: { name: 'Hank Scorpio', email: 'hank@globex.example' },
    renewalDate: '2027-03-15',
    arrUsd: 48_000,
    sales: { seats: 30, seatsRequested: 30, champion: 'Hank Scorpio (CEO)', lastQbr: 'QBR 2026-11-02: steady' },
    support: { ticketsLast30d: 2, p1: 0, topic: 'how-to questions', csat: 4.6 },
    success: { weeklyActivePct: 88, weeklyActivePctQuarterAgo: 85, unusedModules: [] },
  },
};

/** The account a request is about: `input.account`, else the first known account named in the text. */
export function accountOf(input: Record<string, unknown>): string | null {
  if (typeof input.account === 'string' && ACCOUNTS[input.account.toLowerCase()]) return input.account.toLowerCase();
  const text = typeof input.text === 'string' ? input.text.toLowerCase() : '';
  return Object.keys(ACCOUNTS).find((id) => new RegExp(`\\b${id}\\b`).test(text)) ?? null;
}

/** What an earlier run of this agent learned about the account (recalled into the turn), to reuse and cite. */
export function earlier(memory: Array<{ id: string; scope: string; version: number; writtenBy: { run: string | null }; value: unknown }> | undefined, scope: string, runId: string) {
  return (memory ?? [])
    .filter((m) => m.scope === scope && m.writtenBy.run !== null && m.writtenBy.run !== runId)
    .map((m) => ({ fact: m.id, version: m.version, run: m.writtenBy.run, value: m.value }));
}
