/**
 * API tokens for the gateway: stored hashed, with scopes (`admin`, `operator`,
 * `viewer`, `ingress:<channel>`). The plain token is shown once, at creation.
 */
export interface ApiToken {
  id: string;
  name: string;
  scopes: string[];
  createdAt: number;
  lastUsedAt: number | null;
  revokedAt: number | null;
}

export interface TokenStore {
  /** Stores a token by its hash; returns the record. */
  create(token: { id: string; name: string; hash: string; scopes: string[] }, now: number): Promise<ApiToken>;
  /** The live (unrevoked) token with this hash, if any. */
  findByHash(hash: string): Promise<ApiToken | null>;
  list(): Promise<ApiToken[]>;
  revoke(id: string, now: number): Promise<boolean>;
  /** Records that the token was used (the gateway calls it at most once a minute per token). */
  touch(id: string, now: number): Promise<void>;
  /** Whether any live token exists (the gateway refuses a non-loopback bind without one). */
  anyLive(): Promise<boolean>;
}
