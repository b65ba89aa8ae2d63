import { existsSync, readFileSync } from 'node:fs';
import { InvalidInputError } from '../../core/errors.ts';
import { SEARCH_MODES } from '../../core/memory.ts';
import { embedderFor } from '../../engine/memory-actions.ts';
import type { Json } from '../../core/types.ts';
import { CONFLICT_STATES, type FactVersion, type WriteOutcome } from '../../store/memory.ts';
import { factHistory, forgetFacts, getFact, listConflicts, parseAsOf, putFact, resolveConflict, searchFacts } from '../../memory/operator.ts';
import { intOption, jsonOption, oneOf, parse } from '../args.ts';
import { maybeConfig, openCliStore } from '../context.ts';
import { short, table, when } from '../format.ts';
import type { CommandResult } from '../command.ts';

const SUBS = 'search, get, put, history, forget, conflicts';

/** `spine memory …`: shared memory as an operator sees it (every scope of one tenant; writes as trust `owner`). */
export async function memoryCommand(argv: string[]): Promise<CommandResult> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parse(rest, {
    tenant: { type: 'string' },
    scope: { type: 'string' },
    k: { type: 'string' },
    'as-of': { type: 'string' },
    value: { type: 'string' },
    text: { type: 'string' },
    'expected-version': { type: 'string' },
    ttl: { type: 'string' },
    source: { type: 'string', multiple: true },
    run: { type: 'string' },
    agent: { type: 'string' },
    'dry-run': { type: 'boolean' },
    state: { type: 'string' },
    limit: { type: 'string' },
    mode: { type: 'string' },
    pick: { type: 'string' },
  });
  if (!sub) throw new InvalidInputError('memory', `needs a subcommand: ${SUBS}`);
  const config = await maybeConfig(values);
  const store = await openCliStore(values, config);
  const who = { tenant: values.tenant ?? 'default', actor: `cli:${process.env.USER ?? 'operator'}` };
  const now = Date.now();
  const out = (json: Json | object, text: string): CommandResult => ({ stdout: values.json ? JSON.stringify(json, null, 2) : text });
  try {
    switch (sub) {
      case 'search': {
        const query = positionals.join(' ');
        if (!query.trim()) throw new InvalidInputError('<query>', 'missing: spine memory search <words…>');
        const mode = values.mode === undefined ? undefined : oneOf('--mode', values.mode, SEARCH_MODES);
        const embed = config ? embedderFor(config.registry) : null;
        const hits = await searchFacts(store, embed, who, { query, k: intOption('k', values.k) ?? 10, ...(values.scope ? { scope: values.scope } : {}), ...asOf(values['as-of']), ...(mode ? { mode } : {}) }, now);
        return out(
          { hits: hits.map((h) => ({ ...h.fact, score: h.score })) },
          hits.length === 0
            ? 'no facts found'
            : table(
                ['SCOPE', 'KEY', 'V', 'SCORE', 'WRITTEN BY', 'TEXT / VALUE'],
                hits.map((h) => [h.fact.scope, h.fact.key, String(h.fact.version), h.score.toPrecision(3), by(h.fact), short(h.fact.text ?? h.fact.value, 60)]),
              ),
        );
      }
      case 'get': {
        const [scope, key] = scopeKey(positionals);
        const fact = await getFact(store, who, scope, key, parseAsOf(values['as-of']), now);
        if (!fact) return { stdout: values.json ? JSON.stringify({ fact: null }) : `no live fact ${scope} ${key}`, exitCode: 3 };
        return out({ fact }, describe(fact));
      }
      case 'history': {
        const [scope, key] = scopeKey(positionals);
        const versions = await factHistory(store, who, scope, key);
        return out(
          { versions },
          versions.length === 0
            ? `no fact ${scope} ${key}`
            : table(
                ['V', 'FROM', 'TO', 'WRITTEN BY', 'TRUST', 'VALUE'],
                versions.map((f) => [String(f.version), when(f.validFrom), f.validTo === null ? 'current' : when(f.validTo), by(f), f.trust, f.tombstone ? '(forgotten)' : short(f.value, 50)]),
              ),
        );
      }
      case 'put': {
        const [scope, key] = scopeKey(positionals);
        const value = jsonOption('value', values.value);
        if (value === undefined) throw new InvalidInputError('--value', 'missing: the fact’s value as JSON, e.g. --value \'{"usd": 10}\'');
        const outcome = await putFact(
          store,
          config?.registry.memory ?? null,
          who,
          {
            scope,
            key,
            value,
            ...(values.text === undefined ? {} : { text: values.text }),
            ...(values['expected-version'] === undefined ? {} : { expectedVersion: intOption('expected-version', values['expected-version'], 0)! }),
            ...(values.ttl === undefined ? {} : { ttl: values.ttl }),
            ...(values.source ? { sources: values.source } : {}),
          },
          now,
        );
        return putResult(outcome, values.json === true);
      }
      case 'forget': {
        const dryRun = values['dry-run'] === true;
        const facts = await forgetFacts(store, who, { ...(values.run ? { run: values.run } : {}), ...(values.agent ? { agent: values.agent } : {}), ...(values.source?.[0] ? { source: values.source[0] } : {}), dryRun }, now);
        const head = dryRun ? `would forget ${facts.length} fact(s)` : `forgot ${facts.length} fact(s)`;
        return out({ dryRun, facts }, facts.length === 0 ? `${head}` : `${head}:\n${table(['SCOPE', 'KEY', 'V', 'WRITTEN BY', 'SOURCES'], facts.map((f) => [f.scope, f.key, String(f.version), by(f), f.sources.join(',') || '-']))}`);
      }
      case 'conflicts': {
        if (positionals[0] === 'resolve') {
          const id = positionals[1];
          if (!id) throw new InvalidInputError('<id>', 'missing: spine memory conflicts resolve <id> --pick <n> | --value <file.json>');
          const value = values.value === undefined ? undefined : valueFile(values.value);
          const c = await resolveConflict(
            store,
            config?.registry.memory ?? null,
            who,
            id,
            { ...(values.pick === undefined ? {} : { pick: intOption('pick', values.pick) ?? 0 }), ...(value === undefined ? {} : { value }), ...(values.text === undefined ? {} : { text: values.text }) },
            now,
          );
          return out({ conflict: c }, `conflict ${c.id} ${c.state}${c.resolvedVersion === null ? '' : ` as version ${c.resolvedVersion}`} of ${c.scope} ${c.key}`);
        }
        if (positionals.length > 0) throw new InvalidInputError('conflicts', `unknown "${positionals[0]}": spine memory conflicts [--state S] | conflicts resolve <id> --pick <n> | --value <file.json>`);
        const conflicts = await listConflicts(store, who, oneOf('state', values.state, CONFLICT_STATES), intOption('limit', values.limit) ?? 100);
        return out(
          { conflicts },
          conflicts.length === 0
            ? 'no conflicts'
            : table(
                ['CONFLICT', 'SCOPE', 'KEY', 'EXPECTED', 'FOUND', 'STRATEGY', 'STATE', 'RESOLVED AS'],
                conflicts.map((c) => [c.id, c.scope, c.key, String(c.expectedVersion), String(c.currentVersion), c.strategy, c.state, c.resolvedVersion === null ? '-' : `v${c.resolvedVersion}`]),
              ),
        );
      }
      default:
        throw new InvalidInputError('memory', `unknown subcommand "${sub}" (${SUBS})`);
    }
  } finally {
    await store.close();
  }
}

/** `--value` for a resolution: a JSON file (as documented), or JSON given inline. */
function valueFile(arg: string): Json {
  let text = arg;
  if (existsSync(arg)) {
    try {
      text = readFileSync(arg, 'utf8');
    } catch (err) {
      throw new InvalidInputError('--value', `cannot read ${arg}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const v = jsonOption('value', text);
  if (v === undefined) throw new InvalidInputError('--value', 'missing: a JSON file or JSON text');
  return v;
}

function asOf(v: string | undefined): { asOf?: number } {
  const n = parseAsOf(v);
  return n === undefined ? {} : { asOf: n };
}

function scopeKey(p: string[]): [string, string] {
  if (p.length !== 2) throw new InvalidInputError('<scope> <key>', `expected a scope and a key, e.g. team/research pricing (got ${p.length} argument(s))`);
  return [p[0]!, p[1]!];
}

function by(f: FactVersion): string {
  const w = f.writtenBy;
  return w.agent ? `${w.agent}${w.run ? ` (${w.run})` : ''}` : w.actor;
}

function describe(f: FactVersion): string {
  return [
    `fact      ${f.scope} ${f.key}  v${f.version}  (${f.id})`,
    `value     ${JSON.stringify(f.value)}`,
    ...(f.text ? [`text      ${f.text}`] : []),
    `written   ${when(f.validFrom)} by ${by(f)}  trust ${f.trust}`,
    ...(f.sources.length ? [`sources   ${f.sources.join(', ')}`] : []),
    ...(f.expiresAt !== null ? [`expires   ${when(f.expiresAt)}`] : []),
  ].join('\n');
}

function putResult(o: WriteOutcome, json: boolean): CommandResult {
  if (json) return { stdout: JSON.stringify(o, null, 2), exitCode: o.kind === 'conflict' ? 3 : 0 };
  switch (o.kind) {
    case 'written':
      return { stdout: `wrote ${o.fact.scope} ${o.fact.key} v${o.fact.version}${o.conflict ? ` (conflict ${o.conflict.id} resolved by ${o.conflict.strategy})` : ''}` };
    case 'unchanged':
      return { stdout: `unchanged: ${o.fact.scope} ${o.fact.key} is already that (v${o.fact.version})` };
    case 'conflict':
      return { stdout: `conflict ${o.conflict.id}: expected v${o.conflict.expectedVersion}, found v${o.conflict.currentVersion} (${o.conflict.strategy}: ${o.conflict.state})`, exitCode: 3 };
    case 'replayed':
      return { stdout: 'replayed' };
  }
}
