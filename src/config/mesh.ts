import { z } from 'zod';
import type { FieldIssue } from '../core/errors.ts';
import { MESH_DEFAULTS, type MeshPath } from '../core/mesh.ts';

/** `mesh`: declared direct paths (docs/mesh.md); empty by default, pure hub and spoke. */
export const meshSchema = z.array(
  z.strictObject({
    from: z.string().min(1),
    to: z.string().min(1),
    /** Calls per minute on this pair, shared by every worker (default 60). */
    maxPerMinute: z.number().positive().max(1_000_000).optional(),
    /** The deepest hop this pair may carry (default 1: only a task's own call). */
    maxHops: z.number().int().min(1).max(16).optional(),
  }),
);

/** Checks the paths against the agents: both ends configured, no self-pair, no pair twice. */
export function compileMesh(raw: z.infer<typeof meshSchema> | undefined, agents: readonly string[], issues: FieldIssue[]): MeshPath[] {
  const out: MeshPath[] = [];
  const seen = new Set<string>();
  (raw ?? []).forEach((p, i) => {
    const path = `mesh.${i}`;
    let ok = true;
    for (const end of ['from', 'to'] as const) {
      if (!agents.includes(p[end])) {
        issues.push({ path: `${path}.${end}`, message: `unknown agent "${p[end]}" (configured: ${agents.join(', ') || 'none'})` });
        ok = false;
      }
    }
    // A self-call is a loop, not a path (cycle detection would refuse every call on it).
    if (p.from === p.to) {
      issues.push({ path: `${path}.to`, message: `an agent cannot have a mesh path to itself ("${p.from}")` });
      ok = false;
    }
    const pair = `${p.from}>${p.to}`;
    if (seen.has(pair)) {
      issues.push({ path, message: `the path ${p.from} → ${p.to} is declared twice` });
      ok = false;
    }
    seen.add(pair);
    if (ok) out.push({ from: p.from, to: p.to, maxPerMinute: p.maxPerMinute ?? MESH_DEFAULTS.maxPerMinute, maxHops: p.maxHops ?? MESH_DEFAULTS.maxHops });
  });
  return out;
}
