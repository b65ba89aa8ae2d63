import { registerSecret } from './redact.ts';

/**
 * Secrets in config are given inline or as `{env: 'NAME'}`. An environment variable
 * is read when the secret is first needed, so a command that never uses it (listing
 * runs, say) does not need it set, and an unset one fails only what needs it.
 */
export type SecretRef = string | { env: string };

/** The secret's value, or undefined when its environment variable is unset or empty. */
export function readSecret(ref: SecretRef, env: NodeJS.ProcessEnv = process.env): string | undefined {
  // Whatever is read as a secret is registered, so no exit lets it out (core/redact.ts).
  if (typeof ref === 'string') {
    registerSecret(ref);
    return ref;
  }
  const v = env[ref.env];
  if (v === undefined || v === '') return undefined;
  registerSecret(v);
  return v;
}

/** A reader for a secret that throws `missing(variable)` when it is needed but unset. */
export function lazySecret(ref: SecretRef, missing: (variable: string) => Error): () => string {
  return () => {
    const v = readSecret(ref);
    if (v === undefined) throw missing(typeof ref === 'string' ? '' : ref.env);
    return v;
  };
}
