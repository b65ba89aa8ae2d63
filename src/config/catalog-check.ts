import type { FieldIssue } from '../core/errors.ts';
import { matches, qualifyAction } from '../core/patterns.ts';

/**
 * Policy and grant patterns are checked against the catalog when a config loads: a
 * pattern that matches no known tool, agent or channel can never apply, and for an
 * approval tier or a grant that is a silent hole (`tool:note.*` when the tools are
 * `notes.*` runs them with no approval). Such a pattern is refused, naming the field
 * and the nearest known names; `allowUnmatched: true` on a rule (or on an agent's
 * `grants`) accepts patterns meant for tools that come later.
 */
export interface Catalog {
  tools: readonly string[];
  agents: readonly string[];
  channels: readonly string[];
  /**
   * False when the tool list is incomplete (MCP servers are configured but were not
   * contacted by this command): tool patterns are then not checked, rather than
   * refused for tools we could not see.
   */
  toolsComplete: boolean;
}

export interface PatternUse {
  /** Field path of the pattern list, e.g. `policy.rules.2.actions`. */
  path: string;
  patterns: readonly string[];
  /** `action`: `kind:name` patterns (bare names are tools); `tool` / `agent`: names of that kind. */
  kind: 'action' | 'tool' | 'agent';
  allowUnmatched?: boolean | undefined;
}

export function checkPatterns(uses: readonly PatternUse[], catalog: Catalog, issues: FieldIssue[]): void {
  for (const use of uses) {
    if (use.allowUnmatched) continue;
    use.patterns.forEach((pattern, i) => {
      const problem = unmatched(use.kind, pattern, catalog);
      if (problem) issues.push({ path: `${use.path}.${i}`, message: `${problem} (set allowUnmatched: true if it is meant for one that comes later)` });
    });
  }
}

function unmatched(kind: PatternUse['kind'], pattern: string, catalog: Catalog): string | null {
  if (kind === 'tool') return checkName('tool', pattern, catalog.tools, catalog.toolsComplete);
  if (kind === 'agent') return checkName('agent', pattern, catalog.agents, true);
  const qualified = qualifyAction(pattern);
  const colon = qualified.indexOf(':');
  const actionKind = qualified.slice(0, colon);
  const rest = qualified.slice(colon + 1);
  if (actionKind === 'tool') return checkName('tool', rest, catalog.tools, catalog.toolsComplete);
  if (actionKind === 'handoff' || actionKind === 'call_agent') return checkName('agent', rest, catalog.agents, true);
  if (actionKind === 'deliver') {
    // deliver:<channel>:<to> — the channel part is checked; any recipient may come.
    const channel = rest.split(':')[0]!;
    return checkName('channel', channel, catalog.channels, true);
  }
  return null; // turn:, remember:, … name things that are not in a catalog
}

function checkName(what: string, pattern: string, known: readonly string[], complete: boolean): string | null {
  if (!complete || pattern === '*' || known.some((n) => matches(pattern, n))) return null;
  const near = nearest(pattern, known);
  return `"${pattern}" matches no known ${what}${near.length ? ` (nearest: ${near.join(', ')})` : known.length ? '' : ` (there are no ${what}s)`}`;
}

/** Up to three known names closest to the pattern (its `*` removed), by edit distance. */
function nearest(pattern: string, known: readonly string[]): string[] {
  const bare = pattern.replaceAll('*', '');
  return known
    // A namespace pattern (`note.*`) is compared with the same-length start of each name too.
    .map((n) => ({ n, d: Math.min(distance(bare, n), distance(bare, n.slice(0, bare.length + 1)), distance(bare, n.slice(0, bare.length))) }))
    .sort((a, b) => a.d - b.d || a.n.localeCompare(b.n))
    .slice(0, 3)
    .filter((x) => x.d <= Math.max(3, Math.floor(bare.length / 2)))
    .map((x) => x.n);
}

function distance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}
