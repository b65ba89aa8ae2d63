import { redact } from './redact.ts';

/** Minimal structured logger port; the CLI prints human lines, tests stay quiet. */
export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {} };

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
