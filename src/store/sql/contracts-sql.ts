import { toJson } from '../../core/json.ts';
import type { Json } from '../../core/types.ts';
import type { ContractStore } from '../store.ts';
import type { SqlBackend } from './backend.ts';

/** Contracts as first used: the exact schema a digest names, kept for the audit trail. */
export function sqlContractStore(db: SqlBackend): ContractStore {
  return {
    async record(id: string, digest: string, schema: Json, now: number): Promise<void> {
      await db.transaction((tx) =>
        tx.run('INSERT INTO contracts (id, digest, schema, first_used_at) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING', [id, digest, toJson(schema), now]),
      );
    },
  };
}
