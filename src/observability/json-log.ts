import { pino, type Logger as Pino } from 'pino';
import type { Logger } from '../core/log.ts';
import { redact } from '../core/redact.ts';

/**
 * Structured JSON logs (one object a line) through pino, written synchronously to
 * stderr so stdout stays the command's own output. Every line has `time` (ISO),
 * `level`, `msg`, `pid`, the fields bound by `child` (worker, run, task, agent) and the
 * call's own fields. Secrets never reach a log line: callers log ids, not payloads,
 * and the usual credential fields are redacted anyway.
 */
export function jsonLogger(opts: { name?: string; level?: 'info' | 'warn' | 'error'; fd?: number; destination?: { write(s: string): void } } = {}): Logger {
  const root = pino(
    {
      name: opts.name ?? 'spine',
      level: opts.level ?? 'info',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: ['token', 'secret', 'password', 'authorization', '*.token', '*.secret', '*.password', '*.authorization', '*.apiKey'], censor: '[redacted]' },
    },
    redacting(opts.destination ?? pino.destination({ fd: opts.fd ?? 2, sync: true })),
  );
  return wrap(root);
}

/** Every line passes the one redaction layer (core/redact.ts), like the human lines, store writes and errors. */
function redacting(dest: { write(s: string): unknown }): { write(s: string): void } {
  return { write: (s: string) => void dest.write(redact(s)) };
}

function wrap(p: Pino): Logger {
  return {
    info: (msg, fields) => (fields ? p.info(fields, msg) : p.info(msg)),
    warn: (msg, fields) => (fields ? p.warn(fields, msg) : p.warn(msg)),
    error: (msg, fields) => (fields ? p.error(fields, msg) : p.error(msg)),
    child: (bindings) => wrap(p.child(bindings)),
  };
}
