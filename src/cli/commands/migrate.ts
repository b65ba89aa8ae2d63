import { parse } from '../args.ts';
import { storeUrl } from '../context.ts';
import { openStore } from '../../runtime/open-store.ts';
import type { CommandResult } from '../main.ts';

export const MIGRATE_HELP = `spine migrate [--db <url>] [--json]

Applies pending schema migrations, each in its own transaction. Refuses a database
whose schema is newer than this Spine knows.`;

export async function migrateCommand(argv: string[]): Promise<CommandResult> {
  const { values } = parse(argv, {}, 0);
  const store = openStore({ url: storeUrl(values) });
  try {
    const before = await store.schemaStatus();
    const { applied, version } = await store.migrate();
    if (values.json) return { stdout: JSON.stringify({ store: store.description, from: before.current, version, applied }, null, 2) };
    return {
      stdout: applied.length
        ? `${store.description}: migrated from version ${before.current} to ${version} (applied ${applied.join(', ')})`
        : `${store.description}: schema is current (version ${version})`,
    };
  } finally {
    await store.close();
  }
}
