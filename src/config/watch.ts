import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { ConfigError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { loadConfig, type CompileOptions, type CompiledConfig } from './load.ts';

/**
 * Reloads the config when its file changes. A new config is compiled and checked
 * in full first: if it is invalid, the error is reported and the running config
 * stays in force — a typo never takes a running Spine down.
 */
export class ConfigWatcher {
  private readonly file: string;
  private readonly onChange: (config: CompiledConfig) => void;
  private readonly log: Logger;
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private reloading: Promise<void> = Promise.resolve();
  private generation = 0;
  private readonly options: CompileOptions;

  /** `options` as at start-up (e.g. `connect` to keep MCP tools in the reloaded catalog). */
  constructor(file: string, onChange: (config: CompiledConfig) => void, log: Logger, options: CompileOptions = {}) {
    this.file = file;
    this.onChange = onChange;
    this.log = log;
    this.options = options;
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
    if (this.timer) clearTimeout(this.timer);
  }

  /** Reloads now (also what a change triggers, debounced). Resolves when done. */
  reload(): Promise<void> {
    const gen = ++this.generation;
    this.reloading = this.reloading.then(async () => {
      if (gen !== this.generation) return; // a newer change is queued
      try {
        const config = await loadConfig(this.file, {}, this.options);
        this.onChange(config);
        this.log.info('config reloaded', { file: this.file });
      } catch (err) {
        const detail = err instanceof ConfigError ? err.issues.map((i) => `${i.path || '(file)'}: ${i.message}`).join('; ') : String(err);
        this.log.error('config change rejected; the previous config stays in force', { file: this.file, error: detail });
      }
    });
    return this.reloading;
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.reload(), 150);
  }
}
