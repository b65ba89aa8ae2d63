import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import type { AuditStore, Checkpoint } from '../store/audit.ts';
import { canonicalJson, GENESIS, sha256Hex } from './chain.ts';
import { leafHash, merkleRoot } from './merkle.ts';

/**
 * Checkpoints: a sealer builds the Merkle root over the committed events up to a safe
 * horizon and signs {n, fromSeq, toSeq, count, root, prevHash, at, keyId} (its JCS)
 * with an Ed25519 key from config, which never enters the database. Each checkpoint's
 * hash is SHA-256 of that same JCS text; the next one's prevHash is it.
 */

export interface AuditKeys {
  /** Null when only the public key is known (a verifier). */
  privateKey: KeyObject | null;
  publicKey: KeyObject;
  /** First 16 hex chars of SHA-256 of the raw public key. */
  keyId: string;
}

export type CheckpointBody = Omit<Checkpoint, 'signature' | 'hash'>;

export function checkpointBody(cp: Checkpoint | CheckpointBody): CheckpointBody {
  return { n: cp.n, fromSeq: cp.fromSeq, toSeq: cp.toSeq, count: cp.count, root: cp.root, prevHash: cp.prevHash, at: cp.at, keyId: cp.keyId };
}

export function checkpointHash(cp: Checkpoint | CheckpointBody): string {
  return sha256Hex(canonicalJson(checkpointBody(cp)));
}

export function publicKeyPem(k: KeyObject): string {
  return k.export({ type: 'spki', format: 'pem' }).toString();
}

export function keyIdOf(publicKey: KeyObject): string {
  return sha256Hex(publicKey.export({ type: 'spki', format: 'der' })).slice(0, 16);
}

/** Keys from a PEM text: a PKCS#8 private key (the sealer's) or an SPKI public key (a verifier's). */
export function auditKeysFromPem(pem: string): AuditKeys {
  if (pem.includes('PRIVATE KEY')) {
    const privateKey = createPrivateKey(pem);
    if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error(`the audit signing key is ${privateKey.asymmetricKeyType}, not Ed25519`);
    const publicKey = createPublicKey(privateKey);
    return { privateKey, publicKey, keyId: keyIdOf(publicKey) };
  }
  const publicKey = createPublicKey(pem);
  if (publicKey.asymmetricKeyType !== 'ed25519') throw new Error(`the audit key is ${publicKey.asymmetricKeyType}, not Ed25519`);
  return { privateKey: null, publicKey, keyId: keyIdOf(publicKey) };
}

/** A new Ed25519 private key as PKCS#8 PEM (`spine init`). */
export function generateAuditKeyPem(): string {
  return generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

export function signCheckpoint(body: CheckpointBody, keys: AuditKeys): Checkpoint {
  if (!keys.privateKey) throw new Error('sealing needs the audit private key');
  const text = canonicalJson(body);
  return { ...body, signature: sign(null, Buffer.from(text), keys.privateKey).toString('base64'), hash: sha256Hex(text) };
}

export function checkpointSignatureValid(cp: Checkpoint, publicKey: KeyObject): boolean {
  try {
    return verify(null, Buffer.from(canonicalJson(checkpointBody(cp))), publicKey, Buffer.from(cp.signature, 'base64'));
  } catch {
    return false;
  }
}

export type SealOutcome = { sealed: Checkpoint } | { sealed: null; reason: 'nothing-new' | 'lost-race' };

/**
 * Seals the events committed since the last checkpoint. Sealers in several processes
 * may run at once: the horizon waits for in-flight writers, and the checkpoint number
 * is unique, so exactly one sealer's checkpoint n is stored and the others give way.
 */
export async function seal(audit: AuditStore, keys: AuditKeys, now: number): Promise<SealOutcome> {
  const last = (await audit.checkpoints()).at(-1) ?? null;
  const state = await audit.chainState();
  const fromSeq = last ? last.toSeq : state.legacyUntil;
  const horizon = await audit.sealHorizon();
  if (horizon <= fromSeq) return { sealed: null, reason: 'nothing-new' };
  const leaves = await audit.leaves(fromSeq, horizon);
  const body: CheckpointBody = {
    n: (last?.n ?? 0) + 1,
    fromSeq,
    toSeq: horizon,
    count: leaves.length,
    root: merkleRoot(leaves.map(leafHash)),
    prevHash: last ? last.hash : GENESIS,
    at: now,
    keyId: keys.keyId,
  };
  const cp = signCheckpoint(body, keys);
  return (await audit.addCheckpoint(cp)) ? { sealed: cp } : { sealed: null, reason: 'lost-race' };
}
