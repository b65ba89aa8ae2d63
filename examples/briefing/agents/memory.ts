import type { Turn } from './types.ts';

/**
 * How the specialists learn (docs/memory.md): each remembers what it found under the
 * topic in its team scope, and cites what earlier runs found on related topics (the
 * hub recalled those facts into the turn's `memory`, searched by the topic's words).
 */

/** `Should we move … onto a durable orchestrator?` → `should-we-move-…-durable-orchestrator` */
export function topicKey(topic: string): string {
  return (topic.toLowerCase().match(/[a-z0-9]+/g) ?? ['topic']).join('-').slice(0, 80) || 'topic';
}

/** Earlier findings from other runs, as points that cite the fact (id, version and run). */
export function earlierFindings(turn: Turn, scope: string): string[] {
  return (turn.memory ?? [])
    .filter((m) => m.scope === scope && m.writtenBy.run !== turn.task.runId)
    .slice(0, 2)
    .map((m) => `Earlier finding (${m.id} v${m.version}, run ${m.writtenBy.run ?? '?'}): ${m.text ?? m.key}`);
}

/** The remember action for what this run found. */
export function rememberFindings(scope: string, topic: string, points: string[]) {
  return { type: 'remember' as const, scope, key: topicKey(topic), value: { topic, points }, text: `${topic} ${points.join(' ')}` };
}
