import { existsSync } from 'node:fs';
import type { Turn } from './types.ts';

/**
 * Turn 1: delegate to both specialists at once (they run in parallel).
 * Turn 2: the hub hands back both results; merge them, publish, answer.
 */
export default function commander(turn: Turn) {
  // The tour's outage (README): while `.spine/outage` exists every turn fails, so the run is retried, then dead-lettered.
  if (existsSync('.spine/outage')) throw new Error('outage: .spine/outage exists (remove it to end the outage)');
  const question = turn.task.input.text || 'Should we move our agent workflows onto a durable orchestrator?';
  if (turn.task.turn === 1) {
    return {
      actions: [
        { type: 'handoff', agent: 'researcher', id: 'case-for', input: { topic: question } },
        { type: 'handoff', agent: 'critic', id: 'case-against', input: { topic: question } },
      ],
    };
  }
  const part = (id: string) => turn.results.find((r) => r.id === id);
  const pro = part('case-for');
  const con = part('case-against');
  const points = (r: typeof pro): string[] => (r?.ok ? ((r.value as { points: string[] }).points ?? []) : [`(unavailable: ${r?.error?.message ?? 'no result'})`]);
  const brief = {
    question,
    for: points(pro),
    against: points(con),
    recommendation: points(pro).length >= points(con).length ? 'proceed, with the risks below owned by name' : 'hold until the risks are addressed',
  };
  // Returning output together with a tool action: the hub runs the tool, then the task succeeds.
  return {
    actions: [{ type: 'tool', tool: 'brief.publish', input: brief }],
    output: brief,
  };
}
