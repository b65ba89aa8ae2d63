import type { Turn } from './types.ts';

/**
 * The third specialist: answers in claims (contract spine/claims@1), which the hub
 * compares with the other specialists' claims. It disagrees with the researcher on
 * how long the move takes; the commander's synthesis settles it (docs/synthesis.md).
 */
export default function estimator(turn: Turn) {
  const topic = turn.task.input.topic ?? '';
  return {
    output: {
      claims: [
        { key: 'migration.effort', value: 'weeks', confidence: 0.7, evidence: [{ kind: 'quote', ref: 'Two teams moved in 3 and 5 weeks (internal retro).' }] },
        { key: 'audit.trail', value: true, confidence: 0.9, evidence: [{ kind: 'url', ref: 'docs/architecture.md' }] },
      ],
      notes: `Estimates for: ${topic}`,
    },
    usage: { inputTokens: topic.length, outputTokens: 30 },
  };
}
