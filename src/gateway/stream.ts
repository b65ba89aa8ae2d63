import type { WebSocket } from 'ws';
import type { Logger } from '../core/log.ts';
import { ApiError } from './errors.ts';
import type { EndReason, EventHub, StreamEvent, Subscription } from './events.ts';

/**
 * The two transports of the live event stream (docs/gateway.md, "Event stream"):
 *
 * SSE  `GET /v1/events`: each audit event is a message whose `id` is its seq and
 *      whose data is the event's JSON; after the backlog one `event: ready`; before
 *      the server ends a stream, `event: end` with the reason. Resume with the
 *      `Last-Event-ID` header (EventSource sends it by itself) or `?after=<seq>`.
 * WS   `GET /v1/ws`: text messages `{"type":"event","seq":N,"event":{…}}`, one
 *      `{"type":"ready","seq":N}` after the backlog, and `{"type":"end",…}` before the
 *      server closes. Resume with `?after=<seq>`.
 */

/** Queued SSE messages (or WS bytes) a client may fall behind by before it is dropped; it resumes from its cursor. */
const SSE_MAX_QUEUED = 10_000;
const WS_MAX_BUFFERED = 16 * 1024 * 1024;
const SSE_KEEPALIVE_MS = 15_000;
const WS_PING_MS = 30_000;

/** The stream's starting point: `?after=`, else (SSE) Last-Event-ID, else null (from now on). */
export function streamCursor(query: { after?: string | undefined }, lastEventId: string | undefined): number | null {
  const raw = query.after ?? lastEventId;
  if (raw === undefined || raw === '') return null;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) {
    const field = query.after !== undefined ? 'query.after' : 'Last-Event-ID';
    throw new ApiError('INVALID_REQUEST', `invalid ${field}: must be an audit seq (an integer ≥ 0), got "${raw}"`, {
      issues: [{ path: field, message: 'must be an integer ≥ 0' }],
    });
  }
  return n;
}

const encoder = new TextEncoder();

/** An SSE response streaming the hub's events from `after`. */
export function sseResponse(hub: EventHub, opts: { after: number | null; runId: string | null; log: Logger }): Response {
  let sub: Subscription | null = null;
  let keepalive: NodeJS.Timeout | null = null;
  let done = false;
  const stream = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        // Messages written in the same tick (a page of events fanned out by the hub) go out as one chunk: one socket write.
        let batch = '';
        const flush = () => {
          const text = batch;
          batch = '';
          if (done || text === '') return;
          try {
            controller.enqueue(encoder.encode(text));
          } catch {
            // the client left
          }
        };
        const write = (text: string): boolean => {
          if (done) return false;
          if (batch === '') queueMicrotask(flush);
          batch += text;
          return true;
        };
        const finish = () => {
          if (done) return;
          flush();
          done = true;
          if (keepalive) clearInterval(keepalive);
          try {
            controller.close();
          } catch {
            // already closed by the client
          }
        };
        write('retry: 2000\n: spine event stream\n\n');
        keepalive = setInterval(() => write(': ping\n\n'), SSE_KEEPALIVE_MS);
        keepalive.unref();
        hub
          .subscribe({
            after: opts.after,
            runId: opts.runId,
            sink: {
              send: (e: StreamEvent) => (controller.desiredSize ?? 0) > -SSE_MAX_QUEUED && write(`id: ${e.seq}\ndata: ${e.json}\n\n`),
              ready: (cursor) => void write(`event: ready\ndata: {"seq":${cursor}}\n\n`),
              // No id: a live-only event must not move the client's resume cursor.
              ephemeral: (kind, json) => void write(`event: ${kind}\ndata: ${json}\n\n`),
              end: (reason: EndReason, cursor) => {
                write(`event: end\ndata: ${JSON.stringify({ reason, seq: cursor })}\n\n`);
                finish();
              },
            },
          })
          .then((s) => {
            sub = s;
            if (done) s.close('client');
          })
          .catch((err: unknown) => {
            opts.log.warn('event stream: subscribe failed', { error: err instanceof Error ? err.message : String(err) });
            write(`event: end\ndata: ${JSON.stringify({ reason: 'shutdown', seq: opts.after })}\n\n`);
            finish();
          });
      },
      cancel() {
        done = true;
        if (keepalive) clearInterval(keepalive);
        sub?.close('client');
      },
    },
    { highWaterMark: 1 },
  );
  return new Response(stream, {
    status: 200,
    headers: {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    },
  });
}

const WS_CLOSE: Record<EndReason, number> = { client: 1000, shutdown: 1001, slow: 1013, error: 1011 };

/** Streams the hub's events to an open WebSocket from `after`; ends when either side closes. */
export function streamToWebSocket(hub: EventHub, ws: WebSocket, opts: { after: number | null; runId: string | null; log: Logger }): void {
  let sub: Subscription | null = null;
  let closed = false;
  let alive = true;
  const ping = setInterval(() => {
    if (!alive) {
      ws.terminate();
      return;
    }
    alive = false;
    ws.ping();
  }, WS_PING_MS);
  ping.unref();
  ws.on('pong', () => (alive = true));
  // Frames sent in the same tick (a page of events fanned out by the hub) leave in one socket write.
  const socket = (ws as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
  let corked = false;
  const send = (text: string): boolean => {
    if (closed || ws.readyState !== ws.OPEN) return false;
    if (socket && !corked) {
      corked = true;
      socket.cork();
      process.nextTick(() => {
        corked = false;
        socket.uncork();
      });
    }
    ws.send(text);
    return true;
  };
  ws.on('close', () => {
    closed = true;
    clearInterval(ping);
    sub?.close('client');
  });
  ws.on('error', () => undefined);
  hub
    .subscribe({
      after: opts.after,
      runId: opts.runId,
      sink: {
        send: (e) => ws.bufferedAmount < WS_MAX_BUFFERED && send(`{"type":"event","seq":${e.seq},"event":${e.json}}`),
        ready: (cursor) => void send(`{"type":"ready","seq":${cursor}}`),
        ephemeral: (kind, json) => void (ws.bufferedAmount < WS_MAX_BUFFERED && send(`{"type":${JSON.stringify(kind)},"event":${json}}`)),
        end: (reason, cursor) => {
          send(JSON.stringify({ type: 'end', reason, seq: cursor }));
          if (!closed) ws.close(WS_CLOSE[reason], reason);
        },
      },
    })
    .then((s) => {
      sub = s;
      if (closed) s.close('client');
    })
    .catch((err: unknown) => {
      opts.log.warn('event stream: subscribe failed', { error: err instanceof Error ? err.message : String(err) });
      if (!closed) ws.close(1001, 'shutdown');
    });
}
