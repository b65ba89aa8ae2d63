import type { Turn } from './types.ts';
import { earlierFindings, rememberFindings } from './memory.ts';

const SCOPE = 'team/briefing/research';

export default function researcher(turn: Turn) {
  const topic = turn.task.input.topic ?? '';
  const points = [
    'A crash mid-run loses nothing: every turn is committed before it counts.',
    'Every turn, handoff and tool call lands in one audit trail.',
    'Specialists run in parallel, so the answer comes sooner.',
  ];
  return {
    // What it found goes into shared memory (once, under the action's effect key); earlier runs' findings are cited.
    actions: [rememberFindings(SCOPE, topic, points)],
    output: { points: [...points, ...earlierFindings(turn, SCOPE)] },
    usage: { inputTokens: topic.length, outputTokens: 60 },
  };
}
