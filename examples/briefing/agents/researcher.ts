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
      // Claims the hub compares with the other specialists' (spine/claims@1 shape).
      claims: [
        { key: 'migration.effort', value: 'days', confidence: 0.5, evidence: [] },
        { key: 'audit.trail', value: true, confidence: 0.8, evidence: [{ kind: 'url', ref: 'README.md' }] },
      ],
    },
    usage: { inputTokens: topic.length, outputTokens: 60 },
  };
}
