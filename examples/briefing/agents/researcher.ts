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
    output: {
      points: [...points, ...earlierFindings(turn, SCOPE)],
      // Claims the hub compares with the other specialists' (spine/claims@1 shape).
      claims: [
        { key: 'migration.effort', value: 'days', confidence: 0.5, evidence: [] },
        { key: 'audit.trail', value: true, confidence: 0.8, evidence: [{ kind: 'url', ref: 'README.md' }] },
      ],
    },
    usage: { inputTokens: topic.length, outputTokens: 60 },
  };
}
