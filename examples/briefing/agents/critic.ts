import type { Turn } from './types.ts';
import { earlierFindings, rememberFindings } from './memory.ts';

const SCOPE = 'team/briefing/risks';

export default function critic(turn: Turn) {
  const topic = turn.task.input.topic ?? '';
  const points = ['One more service to operate and monitor.', 'Agents must be written as stateless turns.'];
  return {
    actions: [rememberFindings(SCOPE, topic, points)],
    output: { points: [...points, ...earlierFindings(turn, SCOPE)] },
    usage: { inputTokens: topic.length, outputTokens: 40 },
  };
}
