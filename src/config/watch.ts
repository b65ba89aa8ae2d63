import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { systemClock, type Clock, type Timer } from '../core/clock.ts';
import { ConfigError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { CompiledConfig } from './load.ts';

export interface WatchOptions {
  /** How a changed file is compiled (the runtime's loadConfig, with its adapters and options). */
  load: (file: string) => Promise<CompiledConfig>;
  /** The debounce between a change and the reload runs on it. */
  clock?: Clock;
}

/** Writes that come this close together reload once (editors write in several steps). */
const DEBOUNCE_MS = 150;

/**
 * Reloads the config when its file changes. A new config is compiled and checked
 * in full first: if it is invalid, the error is reported and the running config
 * stays in force — a typo never takes a running Spine down.
 */
export class ConfigWatcher {
  private readonly file: string;
  private readonly onChange: (config: CompiledConfig) => unknown;
  private readonly log: Logger;
  private watcher: FSWatcher | null = null;
  private timer: Timer | null = null;
  private reloading: Promise<void> = Promise.resolve();
  private generation = 0;
  private readonly load: (file: string) => Promise<CompiledConfig>;
  private readonly clock: Clock;

  /** `options.load` compiles as at start-up (e.g. with `connect`, to keep MCP tools in the reloaded catalog). */
  constructor(file: string, onChange: (config: CompiledConfig) => unknown, log: Logger, options: WatchOptions) {
    this.file = file;
    this.onChange = onChange;
    this.log = log;
    this.load = options.load;
    this.clock = options.clock ?? systemClock;
  }

  start(): void {
    // Watch the folder: editors often replace the file (rename), which a file watch would lose.
    const name = basename(this.file);
    this.watcher = watch(dirname(this.file), (_event, changed) => {
      if (changed === null || changed.toString() === name) this.schedule();
    });
  }

  stop(): void {
    this.watcher?.close();
    this.watcher = null;
    this.timer?.cancel();
    this.timer = null;
  }

  /** Stops watching and waits for a reload in progress (it may touch the store), so the store can close. */
  async close(): Promise<void> {
    this.stop();
    this.generation++; // a queued reload is dropped
    await this.reloading;
  }

  /** Reloads now (also what a change triggers, debounced). Resolves when done. */
  reload(): Promise<void> {
    const gen = ++this.generation;
    this.reloading = this.reloading.then(async () => {
      if (gen !== this.generation) return; // a newer change is queued
      try {
        const config = await this.load(this.file);
        await this.onChange(config);
        this.log.info('config reloaded', { file: this.file });
      } catch (err) {
        const detail = err instanceof ConfigError ? err.issues.map((i) => `${i.path || '(file)'}: ${i.message}`).join('; ') : String(err);
        this.log.error('config change rejected; the previous config stays in force', { file: this.file, error: detail });
      }
    });
    return this.reloading;
  }

  private schedule(): void {
    this.timer?.cancel();
    this.timer = this.clock.timer(DEBOUNCE_MS, () => void this.reload());
  }
}
