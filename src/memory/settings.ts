import { z } from 'zod';
import { CONFLICT_STRATEGIES, SCOPE_KINDS, SEARCH_MODES, type SearchMode, grantPatternProblem, literalPattern, scopeMatches, scopeProblem, type ConflictStrategy, type MemoryGrants } from '../core/memory.ts';
import type { FieldIssue } from '../core/issues.ts';

/**
 * Shared memory's settings (docs/memory.md): per-scope policies (how a lost
 * compare-and-set is resolved, the contract a value must satisfy), size limits, the
 * TTL sweep; per agent, its read/write grants and what it recalls for each turn.
 */

export interface ScopePolicy {
  /** `*`, a scope, or a scope and everything below it (`team/*`). The first match in config order applies. */
  match: string;
  onConflict: ConflictStrategy;
  /** Contract id the value must satisfy; null: unchecked. */
  contract: string | null;
  /** `agent`: the merge agent dispatched for each conflict; null otherwise. */
  mergeAgent: string | null;
}

/** Vector search: an agent (any kind) embeds texts; the core never calls a model. */
export interface EmbedderSettings {
  /** Its contract: task input `{texts: string[]}`, output `{vectors: number[][]}` (one per text, each `dimensions` long). */
  agent: string;
  dimensions: number;
  /** Texts per embedder turn when backfilling. */
  batch: number;
}

/** Whether runs a schedule or a heartbeat started may write durable memory (anything but their own `run/<id>`). */
export interface DurableWritesFrom {
  schedule: boolean;
  heartbeat: boolean;
}

export const ALL_DURABLE_WRITES: DurableWritesFrom = { schedule: true, heartbeat: true };

export interface MemorySettings {
  scopes: readonly ScopePolicy[];
  /** Refused (by policy, at the remember crossing) when false. */
  durableWritesFrom: DurableWritesFrom;
  /** Largest value (its JSON text) a write may carry. */
  maxValueBytes: number;
  maxTextBytes: number;
  /** How often the TTL sweeper runs (0: never). */
  sweepEveryMs: number;
  /** Null: lexical search only. */
  embedder: EmbedderSettings | null;
}

/** A declared recall: searched before each turn, the hits handed in the turn's `memory`. */
export interface RecallSpec {
  /** Narrow to this scope and below (`self`, `run` resolve to the agent's own); null: every scope it may read. */
  scope: string | null;
  /** A template: `{{input.text}}`, `{{input}}`, `{{agent}}`. */
  query: string;
  k: number;
  /** Absent: hybrid when vectors are configured, else lexical. */
  mode?: SearchMode;
}

export const DEFAULT_SCOPE_POLICY: ScopePolicy = { match: '*', onConflict: 'reject', contract: null, mergeAgent: null };
export const DEFAULT_MEMORY: MemorySettings = { scopes: [], durableWritesFrom: ALL_DURABLE_WRITES, maxValueBytes: 64 * 1024, maxTextBytes: 16 * 1024, sweepEveryMs: 60_000, embedder: null };

export function scopePolicyFor(settings: MemorySettings, scope: string): ScopePolicy {
  return settings.scopes.find((p) => scopeMatches(literalPattern(p.match), scope)) ?? DEFAULT_SCOPE_POLICY;
}

const grantPattern = z.string().superRefine((p, ctx) => {
  const problem = grantPatternProblem(p);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** An agent's `memory` grants: denied by default. */
export const memoryGrantsSchema = z.strictObject({
  read: z.array(grantPattern).optional(),
  write: z.array(grantPattern).optional(),
});

export const recallSchema = z.strictObject({
  scope: z.string().min(1).optional(),
  query: z.string().min(1),
  k: z.number().int().positive().max(50).optional(),
  mode: z.enum(SEARCH_MODES).optional(),
});

export const memoryConfigSchema = z.strictObject({
  scopes: z
    .array(
      z.strictObject({
        match: z.string().superRefine((p, ctx) => {
          const base = p === '*' ? 'global' : p.endsWith('/*') ? p.slice(0, -2) : p;
          const kindTree = p.endsWith('/*') && (SCOPE_KINDS as readonly string[]).includes(base);
          const problem = base.includes('*') ? '"*" may only stand alone or end the pattern as "/*"' : kindTree ? null : scopeProblem(base);
          if (problem) ctx.addIssue({ code: 'custom', message: problem });
        }),
        onConflict: z.enum(CONFLICT_STRATEGIES).optional(),
        contract: z.string().min(1).optional(),
        mergeAgent: z.string().min(1).optional(),
      }),
    )
    .optional(),
  maxValueBytes: z.number().int().positive().max(16 * 1024 * 1024).optional(),
  maxTextBytes: z.number().int().positive().max(1024 * 1024).optional(),
  sweepEveryMs: z.number().int().nonnegative().optional(),
  /** `false` refuses durable writes (any scope but the run's own) from runs a schedule / a heartbeat started. */
  durableWritesFrom: z.strictObject({ schedule: z.boolean().optional(), heartbeat: z.boolean().optional() }).optional(),
  embedder: z
    .strictObject({
      agent: z.string().min(1),
      dimensions: z.number().int().min(1).max(16_000),
      batch: z.number().int().min(1).max(1000).optional(),
    })
    .optional(),
});

export type MemoryConfig = z.infer<typeof memoryConfigSchema>;

export function compileMemory(raw: MemoryConfig | undefined, contracts: readonly string[], agents: readonly string[], issues: FieldIssue[]): MemorySettings {
  const unknownAgent = (path: string, name: string) => issues.push({ path, message: `unknown agent ${name} (configured: ${agents.join(', ') || 'none'})` });
  const scopes = (raw?.scopes ?? []).map((s, i): ScopePolicy => {
    if (s.contract !== undefined && !contracts.includes(s.contract)) issues.push({ path: `memory.scopes.${i}.contract`, message: `unknown contract ${s.contract} (declared: ${contracts.join(', ') || 'none'})` });
    if (s.onConflict === 'agent' && s.mergeAgent === undefined) issues.push({ path: `memory.scopes.${i}.mergeAgent`, message: 'onConflict "agent" needs mergeAgent: the agent that merges the two values' });
    if (s.mergeAgent !== undefined && s.onConflict !== 'agent') issues.push({ path: `memory.scopes.${i}.mergeAgent`, message: 'mergeAgent is only used with onConflict "agent"' });
    if (s.mergeAgent !== undefined && !agents.includes(s.mergeAgent)) unknownAgent(`memory.scopes.${i}.mergeAgent`, s.mergeAgent);
    return { match: s.match, onConflict: s.onConflict ?? 'reject', contract: s.contract ?? null, mergeAgent: s.mergeAgent ?? null };
  });
  const e = raw?.embedder;
  if (e && !agents.includes(e.agent)) unknownAgent('memory.embedder.agent', e.agent);
  return {
    embedder: e ? { agent: e.agent, dimensions: e.dimensions, batch: e.batch ?? 32 } : null,
    scopes,
    durableWritesFrom: { schedule: raw?.durableWritesFrom?.schedule ?? true, heartbeat: raw?.durableWritesFrom?.heartbeat ?? true },
    maxValueBytes: raw?.maxValueBytes ?? DEFAULT_MEMORY.maxValueBytes,
    maxTextBytes: raw?.maxTextBytes ?? DEFAULT_MEMORY.maxTextBytes,
    sweepEveryMs: raw?.sweepEveryMs ?? DEFAULT_MEMORY.sweepEveryMs,
  };
}

export function compileMemoryGrants(raw: z.infer<typeof memoryGrantsSchema> | undefined): MemoryGrants {
  return { read: raw?.read ?? [], write: raw?.write ?? [] };
}

export function compileRecall(raw: Array<z.infer<typeof recallSchema>> | undefined): RecallSpec[] {
  return (raw ?? []).map((r) => ({ scope: r.scope ?? null, query: r.query, k: r.k ?? 5, ...(r.mode ? { mode: r.mode } : {}) }));
}
