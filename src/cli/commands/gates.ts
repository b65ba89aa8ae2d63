import { readFileSync } from 'node:fs';
import { InvalidInputError, NotFoundError } from '../../core/errors.ts';
import { systemClock } from '../../core/clock.ts';
import { GATE_MODES, GATE_OUTCOMES } from '../../core/states.ts';
import type { Json } from '../../core/types.ts';
import { Boundary } from '../../engine/boundary.ts';
import { gateSettings } from '../../validation/gate.ts';
import { intOption, oneOf, parse } from '../args.ts';
import { loadCliConfig, maybeConfig, openCliStore } from '../context.ts';
import { table, verdictTable } from '../format.ts';
import type { CommandResult } from '../command.ts';

/** `spine gates list | test <id> --input file.json | verdicts` (docs/validation.md). */
export async function gatesCommand(argv: string[]): Promise<CommandResult> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'list':
      return list(rest);
    case 'test':
      return test(rest);
    case 'verdicts':
      return verdicts(rest);
    default:
      throw new InvalidInputError('gates', sub ? `unknown subcommand "${sub}" (list, test, verdicts)` : 'needs a subcommand: list, test or verdicts');
  }
}

async function list(argv: string[]): Promise<CommandResult> {
  const { values } = parse(argv, {}, 0);
  const { registry } = await loadCliConfig(values);
  const gates = registry.gates.map((g) => ({ id: g.id, on: g.on, kind: g.kind ?? 'code', ...gateSettings(g) }));
  if (values.json) return { stdout: JSON.stringify({ version: registry.gatesVersion ?? null, gates }, null, 2) };
  if (gates.length === 0) return { stdout: 'no gates configured (validation.gates)' };
  return {
    stdout: table(
      ['GATE', 'ON', 'KIND', 'ON FAIL', 'ON ERROR', 'MODE'],
      gates.map((g) => [g.id, g.on, g.kind, g.onFail === 'reask' ? `reask ×${g.maxReasks}` : g.onFail, g.onError, g.mode]),
    ),
  };
}

/** Runs one gate on one input; nothing is recorded, counted or asked (exit 1 when it would not let the input through). */
async function test(argv: string[]): Promise<CommandResult> {
  const { values, positionals } = parse(argv, { input: { type: 'string' }, agent: { type: 'string' }, name: { type: 'string' } }, 1);
  const id = positionals[0];
  if (!id) throw new InvalidInputError('<gate-id>', 'missing');
  if (!values.input) throw new InvalidInputError('--input', 'missing: the JSON file to test (- for stdin)');
  let value: Json;
  try {
    value = JSON.parse(readFileSync(values.input === '-' ? 0 : values.input, 'utf8')) as Json;
  } catch (err) {
    throw new InvalidInputError('--input', `cannot read JSON from ${values.input}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const config = await loadCliConfig(values);
  const { registry } = config;
  const gate = registry.gates.find((g) => g.id === id);
  if (!gate) throw new InvalidInputError('<gate-id>', `unknown gate "${id}" (configured: ${registry.gates.map((g) => g.id).join(', ') || 'none'})`);
  const agent = values.agent ?? [...registry.agents.keys()][0] ?? '';
  if (values.agent && !registry.agents.has(values.agent)) throw new InvalidInputError('--agent', `unknown agent "${values.agent}"`);
  const store = await openCliStore(values, config);
  try {
    const boundary = new Boundary(store, registry, systemClock);
    const subject = { crossing: gate.on, name: values.name ?? agent, agent, runId: null, taskId: null, key: '(test)', value };
    const tested = (await boundary.testGate(id, subject))!;
    const { decision } = tested;
    const through = decision.outcome === 'pass' || decision.outcome === 'warn' || decision.outcome === 'fix';
    const result = { gate: id, on: gate.on, verdict: decision.verdict, outcome: decision.outcome, reasons: decision.reasons, ...(decision.fix === undefined ? {} : { fix: decision.fix }) };
    if (values.json) return { stdout: JSON.stringify(result, null, 2), exitCode: through ? 0 : 1 };
    const lines = [`gate ${id} (${gate.kind ?? 'code'} on ${gate.on}): ${decision.verdict} → ${decision.outcome.toUpperCase()}`];
    for (const r of decision.reasons) lines.push(`  - ${r}`);
    if (decision.fix !== undefined) lines.push(`  fix: ${JSON.stringify(decision.fix)}`);
    lines.push('(nothing was recorded, counted or requested)');
    return { stdout: lines.join('\n'), exitCode: through ? 0 : 1 };
  } finally {
    await store.close();
  }
}

async function verdicts(argv: string[]): Promise<CommandResult> {
  const { values } = parse(argv, { run: { type: 'string' }, gate: { type: 'string' }, outcome: { type: 'string' }, mode: { type: 'string' }, limit: { type: 'string' } }, 0);
  const outcome = oneOf('outcome', values.outcome, GATE_OUTCOMES);
  const mode = oneOf('mode', values.mode, GATE_MODES);
  const limit = intOption('limit', values.limit) ?? 100;
  const store = await openCliStore(values, await maybeConfig(values));
  try {
    if (values.run && !(await store.runs.get(values.run))) throw new NotFoundError('run', values.run);
    const rows = await store.verdicts.list({
      ...(values.run ? { runId: values.run } : {}),
      ...(values.gate ? { gate: values.gate } : {}),
      ...(outcome ? { outcome } : {}),
      ...(mode ? { mode } : {}),
      limit,
    });
    if (values.json) return { stdout: JSON.stringify({ verdicts: rows }, null, 2) };
    if (rows.length === 0) return { stdout: 'no verdicts' };
    return { stdout: verdictTable(rows) };
  } finally {
    await store.close();
  }
}
