import type { Turn } from './types.ts';

export default function researcher(turn: Turn) {
  const topic = turn.task.input.topic ?? '';
  return {
    output: {
      points: [
        'A crash mid-run loses nothing: every turn is committed before it counts.',
        'Every turn, handoff and tool call lands in one audit trail.',
        'Specialists run in parallel, so the answer comes sooner.',
      ],
    },
    usage: { inputTokens: topic.length, outputTokens: 60 },
  };
}
