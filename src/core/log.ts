import { redact } from './redact.ts';

/**
 * The logger port. Adapters: `consoleLogger` (human lines, the CLI in a terminal),
 * the structured JSON logger (observability/json-log.ts, pino) and `silentLogger`
 * (tests). `child` binds fields every line of a scope carries (run, task, agent,
 * worker); a logger without it just passes the fields given per call.
 */
export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child?(bindings: Record<string, unknown>): Logger;
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {} };

/** A logger with `bindings` on every line (the logger's own child, or merged per call). */
export function withFields(log: Logger, bindings: Record<string, unknown>): Logger {
  if (log === silentLogger) return log;
  if (log.child) return log.child(bindings);
  const merge = (f?: Record<string, unknown>) => ({ ...bindings, ...f });
  return { info: (m, f) => log.info(m, merge(f)), warn: (m, f) => log.warn(m, merge(f)), error: (m, f) => log.error(m, merge(f)) };
}

export function consoleLogger(prefix = 'spine'): Logger {
  const line = (level: string, msg: string, fields?: Record<string, unknown>) =>
    // Log lines pass the one redaction layer (core/redact.ts), like store writes and errors.
    redact(`${prefix} ${level} ${msg}${fields && Object.keys(fields).length ? ' ' + JSON.stringify(fields) : ''}`);
  return {
    info: (m, f) => console.log(line('info', m, f)),
    warn: (m, f) => console.error(line('warn', m, f)),
    error: (m, f) => console.error(line('error', m, f)),
  };
}
