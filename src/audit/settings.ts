import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { readSecret, type SecretRef } from '../core/secrets.ts';
import type { FieldIssue } from '../core/issues.ts';
import { auditKeysFromPem, type AuditKeys } from './checkpoint.ts';

/**
 * The `audit` section of the config: the Ed25519 key checkpoints are signed with
 * (a PEM given as a file next to the config — `spine init` writes one — or inline /
 * `{env: …}`; never stored in the database), how often the sealer runs, and the
 * witnesses each checkpoint is also sent to.
 */
export interface AuditConfigFile {
  signingKey?: SecretRef | undefined;
  signingKeyFile?: string | undefined;
  sealEveryMs?: number | undefined;
  witness?: { file?: string | undefined; url?: string | undefined } | undefined;
}

export interface AuditSettings {
  /** The keys, or null when none is configured (checkpoints are then neither made nor checked). */
  keys: () => AuditKeys | null;
  sealEveryMs: number;
  witness: { file: string | null; url: string | null };
}

export const DEFAULT_SEAL_EVERY_MS = 60_000;

export function compileAuditSettings(raw: AuditConfigFile | undefined, dir: string, issues: FieldIssue[]): AuditSettings {
  const at = (p: string): string => (isAbsolute(p) ? p : join(dir, p));
  let keys: AuditKeys | null = null;
  let pending: (() => AuditKeys | null) | null = null;
  if (raw?.signingKeyFile && raw.signingKey) issues.push({ path: 'audit.signingKey', message: 'give signingKey or signingKeyFile, not both' });
  if (raw?.signingKeyFile) {
    try {
      keys = auditKeysFromPem(readFileSync(at(raw.signingKeyFile), 'utf8'));
    } catch (err) {
      issues.push({ path: 'audit.signingKeyFile', message: `not a readable Ed25519 PEM key: ${err instanceof Error ? err.message : String(err)}` });
    }
  } else if (raw?.signingKey) {
    const ref = raw.signingKey;
    // An environment variable is read when first needed, like every secret.
    pending = () => {
      const pem = readSecret(ref);
      return pem === undefined ? null : auditKeysFromPem(pem);
    };
  }
  return {
    keys: () => {
      if (pending) {
        keys = pending();
        pending = null;
      }
      return keys;
    },
    sealEveryMs: raw?.sealEveryMs ?? DEFAULT_SEAL_EVERY_MS,
    witness: { file: raw?.witness?.file ? at(raw.witness.file) : null, url: raw?.witness?.url ?? null },
  };
}
