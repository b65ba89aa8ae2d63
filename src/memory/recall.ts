import type { FactVersion, SearchHit } from '../store/memory.ts';
import type { Json } from '../core/types.ts';

/**
 * What a turn is handed from memory: each fact with its version and provenance, so
 * the agent can cite it (`sources: [fact.id]` in a later `remember`).
 */
export function factForTurn(f: FactVersion, score?: number): Json {
  return {
    id: f.id,
    scope: f.scope,
    key: f.key,
    version: f.version,
    value: f.value,
    text: f.text,
    trust: f.trust,
    writtenBy: { agent: f.writtenBy.agent, run: f.writtenBy.run, task: f.writtenBy.task, turn: f.writtenBy.turn },
    sources: f.sources,
    validFrom: f.validFrom,
    ...(f.expiresAt === null ? {} : { expiresAt: f.expiresAt }),
    ...(score === undefined ? {} : { score }),
  };
}

export function hitsForTurn(hits: readonly SearchHit[]): Json[] {
  return hits.map((h) => factForTurn(h.fact, Math.round(h.score * 1e4) / 1e4));
}

/** Fills a recall query template: `{{input.text}}` (a path into the task input), `{{input}}`, `{{agent}}`. */
export function renderQuery(template: string, vars: { input: Json; agent: string }): string {
  return template.replace(/\{\{\s*([\w.]+)\s*\}\}/g, (_, path: string) => {
    if (path === 'agent') return vars.agent;
    if (path !== 'input' && !path.startsWith('input.')) return '';
    let cur: Json | undefined = vars.input;
    for (const seg of path.split('.').slice(1)) {
      cur = cur !== null && typeof cur === 'object' && !Array.isArray(cur) ? cur[seg] : undefined;
    }
    if (cur === undefined || cur === null) return '';
    return typeof cur === 'string' ? cur : JSON.stringify(cur);
  });
}
