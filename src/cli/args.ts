import { parseArgs, type ParseArgsConfig } from 'node:util';
import { InvalidInputError } from '../core/errors.ts';
import type { Json } from '../core/types.ts';

/** Options every command accepts. */
export const GLOBAL_OPTIONS = {
  config: { type: 'string', short: 'c' },
  db: { type: 'string' },
  durability: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  'allow-insecure-files': { type: 'boolean' },
  create: { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

export type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs with strict checking; a bad argument becomes an InvalidInputError naming it. */
export function parse<O extends Options>(argv: string[], options: O, maxPositionals = Infinity) {
  let parsed;
  const all = { ...GLOBAL_OPTIONS, ...options };
  try {
    parsed = parseArgs({ args: attachNegativeValues(argv, all), options: all, allowPositionals: true, strict: true });
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    const m = /'(-[^']+)'/.exec(msg);
    throw new InvalidInputError(m?.[1] ?? 'arguments', msg.replace(/\. To specify a positional argument.*$/, ''));
  }
  if (parsed.positionals.length > maxPositionals) {
    throw new InvalidInputError('arguments', `unexpected argument "${parsed.positionals[maxPositionals]}"`);
  }
  return parsed;
}

/**
 * `--limit -5`: parseArgs takes `-5` for an option and answers "argument is ambiguous".
 * A value that looks like a negative number is attached (`--limit=-5`), so the option's
 * own check names what is wrong with it.
 */
function attachNegativeValues(argv: string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    const name = arg.startsWith('--') ? arg.slice(2) : arg.length === 2 && arg.startsWith('-') ? Object.keys(options).find((k) => options[k]?.short === arg[1]) : undefined;
    if (name !== undefined && options[name]?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      out.push(`--${name}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}

export function intOption(name: string, value: string | undefined, min = 1): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new InvalidInputError(`--${name}`, `must be an integer ≥ ${min}, got "${value}"`);
  return n;
}

export function oneOf<T extends string>(name: string, value: string | undefined, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) throw new InvalidInputError(`--${name}`, `must be one of ${allowed.join(', ')}, got "${value}"`);
  return value as T;
}

/** A JSON-valued option, e.g. `--input '{"to": "acme"}'`. */
export function jsonOption(name: string, value: string | undefined): Json | undefined {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value) as Json;
  } catch (err) {
    throw new InvalidInputError(`--${name}`, `not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}
