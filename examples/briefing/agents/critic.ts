import type { Turn } from './types.ts';

export default function critic(turn: Turn) {
  const topic = turn.task.input.topic ?? '';
  return {
    output: {
      points: ['One more service to operate and monitor.', 'Agents must be written as stateless turns.'],
    },
    usage: { inputTokens: topic.length, outputTokens: 40 },
  };
}
