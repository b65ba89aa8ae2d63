import { parse } from '../args.ts';
import { storeUrl } from '../context.ts';
import { loadStore } from '../../runtime/store-url.ts';
import type { CommandResult } from '../command.ts';

export async function migrateCommand(argv: string[]): Promise<CommandResult> {
  const { values } = parse(argv, {}, 0);
  const store = await loadStore({ url: storeUrl(values) });
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
