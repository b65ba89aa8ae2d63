import type { CompiledConfig } from '../config/load.ts';

/**
 * A background service of a Spine process: the gateway, the worker, the outbox
 * dispatcher, the scheduler, the routing sweep, MCP tool clients, the config watcher,
 * and whatever a command adds (the live log of `spine up`). One lifecycle for all:
 * the runtime starts them in order, hands each a reloaded config, and stops them in
 * reverse order before it closes the store.
 */
export interface Service {
  readonly name: string;
  start(): Promise<void>;
  /** Stops and waits until the service no longer touches the store. Idempotent. */
  stop(): Promise<void>;
  /** A reloaded config (already compiled and checked). */
  reconfigure?(config: CompiledConfig): void | Promise<void>;
}
