import { spawn } from 'node:child_process';
import { isAbsolute, resolve } from 'node:path';
import type { HealthProbe } from '../core/agent.ts';
import type { FieldIssue } from '../core/issues.ts';
import { parseDuration } from '../policy/duration.ts';
import type { HealthProbeConfig } from './config-common.ts';

/**
 * Health probes per agent kind (docs/health.md): a command agent runs a declared argv
 * (`ping`), an HTTP agent GETs a URL (`http`), an A2A agent fetches its Agent Card
 * (`handshake`), an MCP server answers a ping on its live connection (`handshake`,
 * reconnecting with `initialize` if it dropped). None is a model turn; the workers
 * run them on a schedule (validation/probes.ts) and feed the breakers concerned.
 */
export const PROBE_DEFAULTS = { everyMs: 30_000, timeoutMs: 5_000 } as const;

/** Which probe each agent kind accepts. */
const PROBES_OF: Record<string, ReadonlyArray<HealthProbeConfig['probe']>> = { command: ['ping'], http: ['http'], a2a: ['handshake'], mcp: ['handshake'] };

export interface ProbeTarget {
  kind: string;
  /** The agent's URL (http, a2a). */
  url?: string;
  /** Where relative executables are found (command). */
  dir: string;
  /** An MCP server's check (tools/mcp: ping on its live connection); absent when the process did not connect. */
  handshake?: (signal: AbortSignal) => Promise<string>;
}

export function buildProbe(cfg: HealthProbeConfig, target: ProbeTarget, path: string, issues: FieldIssue[]): HealthProbe | null {
  const allowed = PROBES_OF[target.kind];
  if (!allowed) {
    issues.push({ path, message: `health probes are for command, http and a2a agents and MCP servers (this one is ${target.kind})` });
    return null;
  }
  if (!allowed.includes(cfg.probe)) {
    issues.push({ path: `${path}.probe`, message: `${target.kind === 'mcp' ? 'an MCP server' : `a ${target.kind} agent`}'s probe is ${allowed.join(' or ')}` });
    return null;
  }
  const everyMs = cfg.every === undefined ? PROBE_DEFAULTS.everyMs : parseDuration(cfg.every);
  if (everyMs === null) issues.push({ path: `${path}.every`, message: `not a duration: ${String(cfg.every)} (e.g. 30s, 5m)` });
  const timeoutMs = cfg.timeoutMs ?? PROBE_DEFAULTS.timeoutMs;
  const misplaced = (field: 'command' | 'url' | 'path', probe: string) => {
    if (cfg[field] !== undefined && cfg.probe !== probe) issues.push({ path: `${path}.${field}`, message: `only for the ${probe} probe` });
  };
  misplaced('command', 'ping');
  misplaced('url', 'http');
  misplaced('path', 'http');
  const base = { kind: cfg.probe, everyMs: everyMs ?? PROBE_DEFAULTS.everyMs, timeoutMs };
  switch (cfg.probe) {
    case 'ping': {
      if (!cfg.command) {
        issues.push({ path: `${path}.command`, message: 'the ping probe needs the argv to run, e.g. ["./agent.py", "--ping"]' });
        return null;
      }
      const [exe, ...args] = cfg.command;
      const command = [exe!.startsWith('.') && !isAbsolute(exe!) ? resolve(target.dir, exe!) : exe!, ...args];
      return { ...base, check: (signal) => runCommand(command, target.dir, signal) };
    }
    case 'http': {
      if (cfg.url !== undefined && cfg.path !== undefined) issues.push({ path: `${path}.path`, message: 'give url or path, not both' });
      const url = cfg.url ?? new URL(cfg.path ?? '', target.url).toString();
      if (!/^https?:\/\//.test(url)) issues.push({ path: `${path}.url`, message: `not an http(s) URL: ${url}` });
      return { ...base, check: (signal) => get(url, signal, false) };
    }
    case 'handshake': {
      if (target.kind === 'mcp') {
        const check = target.handshake ?? (() => Promise.reject(new Error('the MCP server is not connected in this process')));
        return { ...base, check };
      }
      const url = target.url!.endsWith('.json') ? target.url! : `${target.url!.replace(/\/$/, '')}/.well-known/agent-card.json`;
      return { ...base, check: (signal) => get(url, signal, true) };
    }
  }
}

/** GETs a URL: a 2xx is healthy; with `card`, the body must be an Agent Card (a JSON object with a name). */
async function get(url: string, signal: AbortSignal, card: boolean): Promise<string> {
  const res = await fetch(url, { signal, redirect: 'manual' });
  const body = await res.text();
  if (res.status < 200 || res.status > 299) throw new Error(`GET ${url}: HTTP ${res.status}`);
  if (!card) return `HTTP ${res.status}`;
  let name: unknown;
  try {
    name = (JSON.parse(body) as { name?: unknown }).name;
  } catch {
    throw new Error(`GET ${url}: not JSON`);
  }
  if (typeof name !== 'string') throw new Error(`GET ${url}: not an Agent Card (no name)`);
  return `card of ${name}`;
}

/** Runs the probe's argv: exit 0 is healthy. Its output is not kept (it may hold anything). */
function runCommand(command: string[], cwd: string, signal: AbortSignal): Promise<string> {
  return new Promise((ok, fail) => {
    const [exe, ...args] = command;
    const child = spawn(exe!, args, { cwd, stdio: 'ignore', signal, killSignal: 'SIGKILL' });
    child.once('error', (err) => fail(signal.aborted ? new Error('no answer within the probe timeout') : err));
    child.once('exit', (code, sig) => {
      if (code === 0) ok('exit 0');
      else fail(new Error(sig ? `killed by ${sig}` : `exit ${code}`));
    });
  });
}
