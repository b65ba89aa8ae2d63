import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { DEFAULT_CONFIG_FILE } from '../config/file.ts';
import type { CompiledConfig } from '../config/load.ts';
import { consoleLogger } from '../core/log.ts';
import { DEFAULT_DB, loadStore } from '../runtime/store-url.ts';
import type { Durability, Store } from '../store/store.ts';
import { oneOf } from './args.ts';

export interface CommonFlags {
  config?: string | undefined;
  db?: string | undefined;
  durability?: string | undefined;
  json?: boolean | undefined;
  create?: boolean | undefined;
}

/** The file, beside the config file, listing the SQLite store files this project created. */
export const STORE_MARKER = '.spine-stores';

/** The store URL: --db, then SPINE_DB, then the embedded default. */
export function storeUrl(flags: CommonFlags): string {
  return flags.db || process.env.SPINE_DB || DEFAULT_DB;
}

export function configPath(flags: CommonFlags): string {
  return resolve(flags.config || process.env.SPINE_CONFIG || DEFAULT_CONFIG_FILE);
}

/** `connect`: also connect to MCP servers (only commands that run agents need their tools). */
export async function loadCliConfig(flags: CommonFlags, opts: { connect?: boolean } = {}): Promise<CompiledConfig> {
  // Loaded on demand: the compiler brings every agent kind and SDK along.
  const { loadConfig } = await import('../runtime/config.ts');
  return loadConfig(configPath(flags), {}, opts);
}

/**
 * Loads the config if there is one: read-only commands work without a config, but
 * one that is named or present must be valid.
 */
export async function maybeConfig(flags: CommonFlags): Promise<CompiledConfig | null> {
  const path = configPath(flags);
  const named = Boolean(flags.config || process.env.SPINE_CONFIG);
  if (!named && !existsSync(path)) return null;
  const { loadConfig } = await import('../runtime/config.ts');
  return loadConfig(path);
}

/**
 * Opens the store. The embedded SQLite store migrates itself (zero set-up); other
 * backends must be migrated explicitly with `spine migrate`. A schema newer than
 * this build is always refused.
 */
export async function openCliStore(flags: CommonFlags, config?: CompiledConfig | null): Promise<Store> {
  const url = storeUrl(flags);
  const durability: Durability =
    oneOf('durability', flags.durability ?? process.env.SPINE_DURABILITY, ['strict', 'fast'] as const) ?? config?.durability ?? 'strict';
  // Connection losses and reconnects (PostgreSQL) are worth a line on stderr.
  // The marker beside the config file remembers which SQLite stores were created, so a deleted one is an error, not a fresh start.
  const marker = join(dirname(configPath(flags)), STORE_MARKER);
  const create = Boolean(flags.create);
  const store = await loadStore({ url, durability, log: consoleLogger('spine'), marker, create });
  try {
    if (url.startsWith('sqlite:')) await store.migrate();
    else await store.assertSchemaCurrent();
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}
