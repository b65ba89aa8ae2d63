import { randomUUID } from 'node:crypto';
import type { Agent, AgentContext } from '../../core/agent.ts';
import { AgentError, AgentProtocolError } from '../../core/errors.ts';
import { backoffMs } from '../../core/backoff.ts';
import type { TurnInput } from '../../core/types.ts';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, signSpineRequest } from './signature.ts';

export interface HttpAgentOptions {
  name: string;
  url: string;
  /** Resolves the signing secret (read per turn, so a rotated env var applies); null: unsigned. */
  secret: (() => string) | null;
  /** Extra request headers (e.g. an API gateway's key), each read per turn. */
  headers?: Record<string, () => string>;
  /** Further attempts within one turn after a 5xx, 408, 429 or a network error. */
  retries: number;
  /** First backoff between those attempts; doubles each time, capped at `maxDelayMs`. */
  retryDelayMs: number;
  maxDelayMs?: number;
  /** Largest answer accepted, in bytes. */
  maxOutputBytes?: number;
  /** For tests: the clock used for the signature timestamp (ms). */
  now?: () => number;
}

const DEFAULT_MAX_OUTPUT = 16 * 1024 * 1024;
const BODY_SNIPPET = 300;

/** A failure worth another attempt within the same turn. */
class Transient extends Error {
  readonly retryAfterMs: number | null;
  readonly details: Record<string, string | number | null>;
  constructor(message: string, details: Record<string, string | number | null>, retryAfterMs: number | null = null) {
    super(message);
    this.details = details;
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * The turn protocol over HTTP (docs/http-agents.md): each turn is one signed
 * `POST <url>` with the turn as the JSON body; the 2xx answer's body is the agent's
 * answer. 5xx, 408, 429 and network errors are retried within the turn with
 * exponential backoff (bounded by `retries` and by the turn's timeout, whose signal
 * aborts everything); other 4xx fail the task without retries; an answer that is
 * not JSON is a protocol error.
 */
export class HttpAgent implements Agent {
  readonly kind = 'http';
  private readonly opts: HttpAgentOptions;
  constructor(opts: HttpAgentOptions) {
    this.opts = opts;
  }

  async turn(input: TurnInput, ctx: AgentContext): Promise<unknown> {
    const { name, retries } = this.opts;
    const body = JSON.stringify(input);
    const secret = this.opts.secret?.() ?? null;
    const extra = Object.fromEntries(Object.entries(this.opts.headers ?? {}).map(([k, fn]) => [k.toLowerCase(), fn()]));
    const deadline = Date.now() + ctx.timeoutMs;
    let last: Transient | null = null;
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) {
        const backoff = backoffMs({ maxAttempts: retries + 1, initialMs: this.opts.retryDelayMs, maxMs: this.opts.maxDelayMs ?? 5_000, factor: 2, jitter: 'none' }, attempt);
        const wait = Math.max(backoff, last?.retryAfterMs ?? 0);
        // No point sleeping past the turn's deadline: give the engine's retry policy the failure now.
        if (Date.now() + wait >= deadline) break;
        await sleep(wait, ctx.signal);
      }
      try {
        return await this.post(input, body, secret, extra, attempt + 1, ctx.signal);
      } catch (err) {
        if (!(err instanceof Transient)) throw err;
        last = err;
      }
    }
    throw new AgentError(name, `${last!.message} (after ${retries + 1} attempt${retries === 0 ? '' : 's'} in this turn)`, { details: last!.details });
  }

  private async post(input: TurnInput, body: string, secret: string | null, extra: Record<string, string>, attempt: number, signal: AbortSignal): Promise<unknown> {
    const { name, url } = this.opts;
    const headers: Record<string, string> = {
      ...extra,
      'content-type': 'application/json',
      accept: 'application/json',
      'user-agent': 'spine-http-agent/1',
      'x-spine-agent': name,
      'x-spine-run': input.task.runId,
      'x-spine-task': input.task.id,
      // The same turn asked again (a retry here, or by the engine) carries the same key.
      'idempotency-key': `${input.task.id}/${input.task.turn}`,
      'x-spine-delivery': `${randomUUID()}:${attempt}`,
    };
    if (secret !== null) {
      const ts = Math.floor((this.opts.now?.() ?? Date.now()) / 1000);
      headers[TIMESTAMP_HEADER] = String(ts);
      headers[SIGNATURE_HEADER] = signSpineRequest(secret, ts, body);
    }
    let res: Response;
    try {
      // A signed POST is never replayed to another address: redirects are refused, not followed.
      res = await fetch(url, { method: 'POST', headers, body, signal, redirect: 'manual' });
    } catch (err) {
      if (signal.aborted) throw abortReason(signal, name);
      const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : err instanceof Error ? err.message : String(err);
      throw new Transient(`POST ${url} failed: ${cause}`, { url, status: null });
    }
    let text: string;
    try {
      text = await readLimited(res, this.opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT);
    } catch (err) {
      if (signal.aborted) throw abortReason(signal, name);
      if (err instanceof TooLarge) throw new AgentProtocolError(name, `answer exceeds ${err.limit} bytes`);
      throw new Transient(`reading the answer of POST ${url} failed: ${err instanceof Error ? err.message : String(err)}`, { url, status: res.status });
    }
    const status = res.status;
    const details = { url, status, body: text.slice(0, BODY_SNIPPET) };
    if (status >= 500 || status === 408 || status === 429) {
      throw new Transient(`POST ${url} answered ${status}${snippet(text)}`, details, retryAfter(res.headers.get('retry-after')));
    }
    if (status >= 300 && status < 400) {
      throw new AgentError(name, `POST ${url} answered a redirect (${status} to ${res.headers.get('location') ?? '?'}); configure the final URL`, { retryable: false, details });
    }
    if (status >= 400) {
      // The agent refused the turn (bad signature, unknown route, bad request): asking again will not help.
      throw new AgentError(name, `POST ${url} answered ${status}${snippet(text)}`, { retryable: false, details });
    }
    const trimmed = text.trim();
    if (!trimmed) throw new AgentProtocolError(name, `POST ${url} answered ${status} with an empty body`);
    try {
      return JSON.parse(trimmed);
    } catch {
      throw new AgentProtocolError(name, `answer is not valid JSON: ${JSON.stringify(trimmed.slice(0, 200))}`, { status, contentType: res.headers.get('content-type') });
    }
  }
}

class TooLarge extends Error {
  readonly limit: number;
  constructor(limit: number) {
    super(`body exceeds ${limit} bytes`);
    this.limit = limit;
  }
}

async function readLimited(res: Response, limit: number): Promise<string> {
  if (!res.body) return '';
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > limit) {
    await res.body.cancel();
    throw new TooLarge(limit);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > limit) throw new TooLarge(limit);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function snippet(text: string): string {
  const t = text.trim();
  return t ? `: ${t.slice(0, BODY_SNIPPET)}` : '';
}

/** `Retry-After` in seconds or as an HTTP date, in ms; null when absent or unreadable. */
function retryAfter(value: string | null): number | null {
  if (value === null) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - Date.now());
}

function abortReason(signal: AbortSignal, name: string): Error {
  return signal.reason instanceof Error ? signal.reason : new AgentError(name, 'turn aborted');
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(abortReason(signal, 'http'));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal, 'http'));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
