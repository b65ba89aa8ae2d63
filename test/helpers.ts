import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentFunction, ToolFunction } from '../src/agents/agent.ts';
import { FunctionAgent } from '../src/agents/function-agent.ts';
import type { Run } from '../src/core/types.ts';
import { DEFAULT_LIMITS, DEFAULT_RETRY, type AgentSpec, type EngineLimits, type Registry, type RetryPolicy, type WorkerOptions } from '../src/engine/options.ts';
import { waitForRun } from '../src/engine/runs.ts';
import { Worker } from '../src/engine/worker.ts';
import { openStore } from '../src/store/open-store.ts';
import type { Store } from '../src/store/store.ts';

/** A fresh SQLite store in a temp folder; `cleanup` closes and deletes it. */
export async function tempStore(durability: 'strict' | 'fast' = 'fast'): Promise<{ store: Store; dir: string; url: string; cleanup: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'spine-test-'));
  const url = `sqlite:${join(dir, 'spine.db')}`;
  const store = openStore({ url, durability });
  await store.migrate();
  return {
    store,
    dir,
    url,
    cleanup: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface AgentDef {
  fn: AgentFunction;
  timeoutMs?: number;
  retry?: Partial<RetryPolicy>;
}

/** A registry from in-process functions, with fast retries by default. */
export function registry(
  agents: Record<string, AgentFunction | AgentDef>,
  tools: Record<string, ToolFunction> = {},
  opts: { limits?: Partial<EngineLimits>; retry?: Partial<RetryPolicy> } = {},
): Registry {
  const retry: RetryPolicy = { ...DEFAULT_RETRY, initialMs: 5, maxMs: 20, ...opts.retry };
  const specs = new Map<string, AgentSpec>();
  for (const [name, def] of Object.entries(agents)) {
    const d: AgentDef = typeof def === 'function' ? { fn: def } : def;
    specs.set(name, { name, agent: new FunctionAgent(d.fn), timeoutMs: d.timeoutMs ?? 5_000, retry: { ...retry, ...d.retry } });
  }
  return {
    agents: specs,
    tools: new Map(Object.entries(tools).map(([name, run]) => [name, { name, run }])),
    limits: { ...DEFAULT_LIMITS, ...opts.limits },
    retry,
  };
}

export const FAST_WORKER: Partial<WorkerOptions> = { concurrency: 8, leaseMs: 2_000, heartbeatMs: 500, pollMs: 20, drainMs: 1_000 };

/** Starts a worker; returns it with a stop function. */
export async function startWorker(store: Store, reg: Registry, options: Partial<WorkerOptions> = {}): Promise<Worker> {
  const w = new Worker({ store, registry: reg, options: { ...FAST_WORKER, ...options } });
  await w.start();
  return w;
}

export function finished(store: Store, runId: string, timeoutMs = 10_000): Promise<Run> {
  return waitForRun(store, runId, { pollMs: 10, timeoutMs });
}
