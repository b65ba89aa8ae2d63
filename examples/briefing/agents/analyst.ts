import type { Turn } from './types.ts';

/**
 * The tour's second agent (README, "Five-minute tour"): a slow step you can kill
 * mid-flight, then a tool that needs a human's approval.
 * Turn 1: run `analysis.run`, which takes `seconds` (default 15) — time to `kill -9` Spine.
 * Turn 2: send the findings with `report.send`; policy rule `reports-need-ok` parks the
 *         task until an operator approves (`spine approvals approve …`).
 * Turn 3: answer with where the report went.
 */
export default function analyst(turn: Turn) {
  const input = turn.task.input as { text?: string; seconds?: number };
  const question = input.text || 'How are we doing?';
  if (turn.task.turn === 1) {
    return { actions: [{ type: 'tool', tool: 'analysis.run', input: { question, seconds: input.seconds ?? 15 } }] };
  }
  const [last] = turn.results;
  if (turn.task.turn === 2) {
    if (!last?.ok) return { output: { question, failed: last?.error?.message ?? 'no result' } };
    return { actions: [{ type: 'tool', tool: 'report.send', input: { to: 'team', question, analysis: last.value } }] };
  }
  return { output: last?.ok ? { question, report: last.value } : { question, notSent: last?.error?.message ?? 'no result' } };
}
