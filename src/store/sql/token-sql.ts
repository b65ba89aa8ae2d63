import type { ApiToken, TokenStore } from '../tokens.ts';
import type { SqlBackend } from './backend.ts';

interface TokenRow {
  id: string;
  name: string;
  hash: string;
  scopes: string;
  created_at: number | string;
  last_used_at: number | string | null;
  revoked_at: number | string | null;
}

function toToken(r: TokenRow): ApiToken {
  return {
    id: r.id,
    name: r.name,
    scopes: JSON.parse(r.scopes) as string[],
    createdAt: Number(r.created_at),
    lastUsedAt: r.last_used_at === null ? null : Number(r.last_used_at),
    revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
  };
}

export function sqlTokenStore(db: SqlBackend): TokenStore {
  return {
    async create(t: { id: string; name: string; hash: string; scopes: string[] }, now: number): Promise<ApiToken> {
      const row = await db.transaction((tx) =>
        tx.get<TokenRow>('INSERT INTO api_tokens (id, name, hash, scopes, created_at) VALUES (?, ?, ?, ?, ?) RETURNING *', [t.id, t.name, t.hash, JSON.stringify(t.scopes), now]),
      );
      return toToken(row!);
    },
    async findByHash(hash: string): Promise<ApiToken | null> {
      const row = await db.read.get<TokenRow>('SELECT * FROM api_tokens WHERE hash = ? AND revoked_at IS NULL', [hash]);
      return row ? toToken(row) : null;
    },
    async list(): Promise<ApiToken[]> {
      return (await db.read.all<TokenRow>('SELECT * FROM api_tokens ORDER BY created_at, id')).map(toToken);
    },
    async revoke(id: string, now: number): Promise<boolean> {
      return (await db.transaction((tx) => tx.run('UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', [now, id]))) === 1;
    },
    async touch(id: string, now: number): Promise<void> {
      await db.transaction((tx) => tx.run('UPDATE api_tokens SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)', [now, id, now]));
    },
    async anyLive(): Promise<boolean> {
      return (await db.read.get('SELECT 1 AS x FROM api_tokens WHERE revoked_at IS NULL LIMIT 1')) !== undefined;
    },
  };
}
