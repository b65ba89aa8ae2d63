import { writeFileSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import { auditKeysFromPem, seal, type AuditKeys } from '../../audit/checkpoint.ts';
import { exportRun, proofOf } from '../../audit/trail.ts';
import { verifyAudit, type VerifyReport } from '../../audit/verify.ts';
import type { CompiledConfig } from '../../config/load.ts';
import { EXIT, InvalidInputError, NotFoundError } from '../../core/errors.ts';
import type { Json } from '../../core/types.ts';
import { PollLoop } from '../../core/poll-loop.ts';
import { systemClock } from '../../core/clock.ts';
import { silentLogger } from '../../core/log.ts';
import type { AuditEvent, Store } from '../../store/store.ts';
import { intOption, parse } from '../args.ts';
import type { CommandResult } from '../command.ts';
import { maybeConfig, openCliStore, type CommonFlags } from '../context.ts';
import { short, when } from '../format.ts';
import { ShutdownSignals } from '../signals.ts';

export async function auditCommand(argv: string[]): Promise<CommandResult> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'verify':
      return verify(rest);
    case 'tail':
      return tail(rest);
    case 'export':
      return exportCmd(rest);
    case 'proof':
      return proof(rest);
    case 'seal':
      return sealCmd(rest);
    case 'prune':
      return prune(rest);
    default:
      throw new InvalidInputError('audit', sub ? `unknown subcommand "${sub}" (verify, tail, export, proof, seal, prune)` : 'needs a subcommand: verify, tail, export, proof, seal or prune');
  }
}

/** The audit keys: --key <pem file> (a private or public key), else the config's. */
export function cliAuditKeys(keyFile: string | undefined, config: CompiledConfig | null): AuditKeys | null {
  if (keyFile) {
    try {
      return auditKeysFromPem(readFileSync(keyFile, 'utf8'));
    } catch (err) {
      throw new InvalidInputError('--key', `not a readable Ed25519 PEM key: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return config?.audit.keys() ?? null;
}

async function withStore<T>(values: CommonFlags, fn: (store: Store, config: CompiledConfig | null) => Promise<T>): Promise<T> {
  const config = await maybeConfig(values);
  const store = await openCliStore(values, config);
  try {
    return await fn(store, config);
  } finally {
    await store.close();
  }
}

/** --since: an ISO time or epoch milliseconds. */
function timeOption(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const t = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(t)) throw new InvalidInputError(`--${name}`, `not a time (ISO 8601 or epoch ms): "${value}"`);
  return t;
}

export const VERDICT_EXIT = { clean: EXIT.ok, tampered: EXIT.tampered, unverifiable: EXIT.unverifiable } as const;

export function describeReport(r: VerifyReport): string {
  const scope = r.scope.runId ? ` (run ${r.scope.runId})` : r.scope.since !== null ? ` (since ${when(r.scope.since)})` : '';
  const head = `audit${scope}: ${r.verdict.toUpperCase()} — ${r.events} events in ${r.streams} streams, ${r.checkpoints} checkpoints`;
  const lines = [head];
  if (r.first) lines.push(`first bad: ${r.first.kind}${r.first.seq !== null ? ` at seq ${r.first.seq}` : ''}${r.first.checkpoint !== null ? ` (checkpoint ${r.first.checkpoint})` : ''}: ${r.first.message}`);
  if (r.findings.length > 1) lines.push(`${r.findings.length - 1} more finding${r.findings.length === 2 ? '' : 's'}: ${r.findings.slice(1, 6).map((f) => `${f.kind}@${f.seq ?? `cp${f.checkpoint}`}`).join(', ')}${r.findings.length > 6 ? ', …' : ''}`);
  for (const u of r.unverifiable) lines.push(`not verified: ${u}`);
  return lines.join('\n');
}

/** Verifies and records the outcome (for `spine doctor`). */
export async function verifyAndRecord(store: Store, opts: { runId?: string; since?: number; publicKey: KeyObject | null }): Promise<VerifyReport> {
  const report = await verifyAudit(store.audit, { ...opts, now: Date.now() });
  await store.audit.recordVerification({
    at: report.at,
    status: report.verdict,
    events: report.events,
    report: { first: report.first as unknown as Json, findings: report.findings.length, unverifiable: report.unverifiable, scope: report.scope },
  });
  return report;
}

async function verify(argv: string[]): Promise<CommandResult> {
  const { values } = parse(argv, { run: { type: 'string' }, since: { type: 'string' }, key: { type: 'string' } }, 0);
  const since = timeOption('since', values.since);
  return withStore(values, async (store, config) => {
    const keys = cliAuditKeys(values.key, config);
    const report = await verifyAndRecord(store, { ...(values.run ? { runId: values.run } : {}), ...(since !== undefined ? { since } : {}), publicKey: keys?.publicKey ?? null });
    return { stdout: values.json ? JSON.stringify(report, null, 2) : describeReport(report), exitCode: VERDICT_EXIT[report.verdict] };
  });
}

function line(e: AuditEvent): string {
  return `${String(e.seq).padStart(8)}  ${when(e.at)}  ${e.kind.padEnd(20)} ${e.runId ?? ''} ${e.agent ?? ''} ${e.actor ?? ''} ${e.data === undefined ? '' : short(e.data, 100)}`.trimEnd();
}

async function tail(argv: string[]): Promise<CommandResult> {
  const { values } = parse(argv, { run: { type: 'string' }, limit: { type: 'string' }, once: { type: 'boolean' } }, 0);
  const limit = intOption('limit', values.limit) ?? 20;
  return withStore(values, async (store) => {
    const print = (e: AuditEvent) => process.stdout.write(`${values.json ? JSON.stringify(e) : line(e)}\n`);
    const latest = await store.audit.latestSeq();
    let cursor = Math.max(0, latest - limit * 4);
    const backlog = (await store.audit.list({ afterSeq: cursor, limit: 100_000, ...(values.run ? { runId: values.run } : {}) })).slice(-limit);
    backlog.forEach(print);
    cursor = Math.max(latest, backlog.at(-1)?.seq ?? 0);
    if (values.once) return {};
    // Live: new events as they commit, until Ctrl-C.
    const signals = new ShutdownSignals();
    const loop = new PollLoop({
      name: 'audit-tail',
      clock: systemClock,
      log: silentLogger,
      pass: async () => {
        const page = await store.audit.list({ afterSeq: cursor, limit: 1_000, ...(values.run ? { runId: values.run } : {}) });
        page.forEach(print);
        if (page.length) cursor = page.at(-1)!.seq;
        else cursor = Math.max(cursor, await store.audit.latestSeq());
        return page.length === 1_000 ? 0 : 250;
      },
    });
    loop.start();
    await signals.received;
    signals.dispose();
    await loop.stop();
    return {};
  });
}

async function exportCmd(argv: string[]): Promise<CommandResult> {
  const { values } = parse(argv, { run: { type: 'string' }, out: { type: 'string' }, key: { type: 'string' } }, 0);
  if (!values.run) throw new InvalidInputError('--run', 'missing: which run to export');
  return withStore(values, async (store, config) => {
    if (!(await store.runs.get(values.run!))) throw new NotFoundError('run', values.run!);
    const lines = await exportRun(store.audit, values.run!, cliAuditKeys(values.key, config));
    const text = `${lines.join('\n')}\n`;
    if (values.out) {
      writeFileSync(values.out, text);
      return { stdout: values.json ? JSON.stringify({ file: values.out, lines: lines.length }) : `wrote ${lines.length} lines to ${values.out}` };
    }
    return { stdout: text.trimEnd() };
  });
}

async function proof(argv: string[]): Promise<CommandResult> {
  const { values, positionals } = parse(argv, {}, 1);
  const seq = intOption('<seq>', positionals[0]);
  if (seq === undefined) throw new InvalidInputError('<seq>', 'missing: the audit seq of the event');
  return withStore(values, async (store) => {
    const p = await proofOf(store.audit, seq);
    if (!p) throw new NotFoundError('audit event', String(seq));
    if (values.json) return { stdout: JSON.stringify(p, null, 2) };
    if (!p.proof) return { stdout: `event ${seq} (${p.event.stream}#${p.event.streamSeq}, hash ${p.event.hash}) is not sealed by a checkpoint yet` };
    return {
      stdout: [
        `event      ${seq} ${p.event.kind} (${p.event.stream}#${p.event.streamSeq})`,
        `hash       ${p.event.hash}`,
        `checkpoint ${p.proof.checkpoint}: seq (${p.checkpoint!.fromSeq}, ${p.checkpoint!.toSeq}], root ${p.proof.root}`,
        `leaf       ${p.proof.index} of ${p.proof.size}`,
        `path       ${p.proof.path.join('\n           ') || '(the leaf is the root)'}`,
      ].join('\n'),
    };
  });
}

async function sealCmd(argv: string[]): Promise<CommandResult> {
  const { values } = parse(argv, { key: { type: 'string' } }, 0);
  return withStore(values, async (store, config) => {
    const keys = cliAuditKeys(values.key, config);
    if (!keys?.privateKey) throw new InvalidInputError('audit.signingKeyFile', 'sealing needs the audit private key (config audit.signingKeyFile or audit.signingKey, or --key)');
    const out = await seal(store.audit, keys, Date.now());
    if (values.json) return { stdout: JSON.stringify(out, null, 2) };
    return { stdout: out.sealed ? `checkpoint ${out.sealed.n}: ${out.sealed.count} events, seq (${out.sealed.fromSeq}, ${out.sealed.toSeq}], root ${out.sealed.root}` : `nothing sealed (${out.reason})` };
  });
}

/** Deletes the events a checkpoint sealed (and all before it); the checkpoints stay, and verify still passes. */
async function prune(argv: string[]): Promise<CommandResult> {
  const { values } = parse(argv, { checkpoint: { type: 'string' } }, 0);
  const n = intOption('checkpoint', values.checkpoint);
  if (n === undefined) throw new InvalidInputError('--checkpoint', 'missing: prune the events up to which checkpoint');
  return withStore(values, async (store) => {
    const cp = (await store.audit.checkpoints()).find((c) => c.n === n);
    if (!cp) throw new NotFoundError('checkpoint', String(n));
    const deleted = await store.audit.prune(cp.toSeq);
    return { stdout: values.json ? JSON.stringify({ checkpoint: n, throughSeq: cp.toSeq, deleted }) : `pruned ${deleted} events up to seq ${cp.toSeq} (checkpoint ${n}); the checkpoints are kept` };
  });
}
