import { consoleLogger, type Logger } from '../core/log.ts';
import { jsonLogger } from '../observability/json-log.ts';

/**
 * The CLI's logger: human lines in a terminal, structured JSON (one object a line, on
 * stderr) when stderr is not a terminal — a service manager, a container, a pipe.
 * SPINE_LOG_FORMAT=json|pretty overrides the guess.
 */
export function cliLogger(prefix = 'spine'): Logger {
  const format = process.env.SPINE_LOG_FORMAT;
  const json = format === 'json' || (format !== 'pretty' && !process.stderr.isTTY);
  return json ? jsonLogger({ name: prefix }) : consoleLogger(prefix);
}
