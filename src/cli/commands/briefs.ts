import { BRIEF_STATES, type Brief, type ClaimSource, type Decider } from '../../core/brief.ts';
import { InvalidInputError, NotFoundError } from '../../core/errors.ts';
import { intOption, oneOf, parse } from '../args.ts';
import { maybeConfig, openCliStore } from '../context.ts';
import { nextCursor, short, table, when, withMore } from '../format.ts';
import type { CommandResult } from '../command.ts';

/** `spine briefs list|show`: the synthesised results of joins, with the provenance of each part and the resolution of each conflict. */
export async function briefsCommand(argv: string[]): Promise<CommandResult> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'list':
      return list(rest);
    case 'show':
      return show(rest);
    default:
      throw new InvalidInputError('briefs', sub ? `unknown subcommand "${sub}" (list, show)` : 'needs a subcommand: list or show');
  }
}

async function list(argv: string[]): Promise<CommandResult> {
  const { values } = parse(argv, { run: { type: 'string' }, state: { type: 'string' }, limit: { type: 'string' }, before: { type: 'string' } }, 0);
  const state = oneOf('state', values.state, BRIEF_STATES);
  const limit = intOption('limit', values.limit) ?? 20;
  const store = await openCliStore(values, await maybeConfig(values));
  try {
    const briefs = await store.briefs.list({ limit, ...(state ? { state } : {}), ...(values.run ? { runId: values.run } : {}), ...(values.before ? { before: values.before } : {}) });
    if (values.json) return { stdout: JSON.stringify({ briefs, next: nextCursor(briefs, limit) }, null, 2) };
    if (briefs.length === 0) return { stdout: 'no briefs' };
    const out = table(
      ['BRIEF', 'RUN', 'AGENT', 'STATE', 'PARTS', 'CONFLICTS', 'FAILED LANES', 'UPDATED'],
      briefs.map((b) => [b.id, b.runId, b.agent, b.state, String(b.parts.length), conflictSummary(b), String(b.failedLanes.length), when(b.updatedAt)]),
    );
    return { stdout: withMore(out, briefs, limit) };
  } finally {
    await store.close();
  }
}

async function show(argv: string[]): Promise<CommandResult> {
  const { values, positionals } = parse(argv, {}, 1);
  const id = positionals[0];
  if (!id) throw new InvalidInputError('<brief-id>', 'missing (see `spine briefs list`)');
  const store = await openCliStore(values, await maybeConfig(values));
  try {
    const brief = await store.briefs.get(id);
    if (!brief) throw new NotFoundError('brief', id);
    if (values.json) return { stdout: JSON.stringify({ brief }, null, 2) };
    return { stdout: render(brief) };
  } finally {
    await store.close();
  }
}

function conflictSummary(b: Brief): string {
  const decided = b.conflicts.filter((c) => c.decision).length;
  const open = b.conflicts.filter((c) => !c.decision && !c.unresolved).length;
  const unresolved = b.conflicts.filter((c) => c.unresolved).length;
  return b.conflicts.length === 0 ? '0' : `${b.conflicts.length} (${decided} decided${open ? `, ${open} open` : ''}${unresolved ? `, ${unresolved} unresolved` : ''})`;
}

function source(f: ClaimSource): string {
  const extras = [f.confidence === undefined ? null : `confidence ${f.confidence}`, f.effect ? `effect ${f.effect}` : null, ...f.evidence.filter((e) => e.kind !== 'effect').map((e) => `${e.kind} ${e.ref}`)].filter(Boolean);
  return `${f.agent} (task ${f.task}, turn ${f.turn})${extras.length ? ': ' + extras.join(', ') : ''}`;
}

function decider(d: Decider): string {
  if (d.kind === 'rule') return `rule ${d.rule}`;
  if (d.kind === 'agent') return `agent ${d.agent} (task ${d.task}, turn ${d.turn})`;
  return `${d.actor} (approval ${d.approval})`;
}

/** The brief as a reader wants it: each part with where it came from, each conflict with what was tried and who decided. */
function render(b: Brief): string {
  const lines = [
    `brief    ${b.id}`,
    `run      ${b.runId}   task ${b.taskId} (${b.agent}), turn ${b.turn}`,
    `state    ${b.state}${b.digest ? `   digest ${b.digest}` : ''}`,
    `lanes    ${b.lanes} (${b.claimed} with claims, ${b.failedLanes.length} failed)`,
  ];
  if (b.parts.length) {
    lines.push('', 'parts');
    for (const p of b.parts) {
      lines.push(`  ${p.key} = ${short(p.value, 80)}   [${p.status}]`);
      for (const f of p.from) lines.push(`      from ${source(f)}`);
    }
  }
  if (b.conflicts.length) {
    lines.push('', 'conflicts');
    for (const c of b.conflicts) {
      const head = c.decision ? `= ${short(c.decision.value, 80)}   decided by ${c.decision.strategy}: ${decider(c.decision.decider)}` : c.unresolved ? 'unresolved' : `open (${c.pending?.judge ? `judge task ${c.pending.judge}` : c.pending?.approval ? 'waiting for an approval' : 'in progress'})`;
      lines.push(`  ${c.key} ${head}   [rule ${c.rule}]`);
      c.candidates.forEach((cand, i) => {
        lines.push(`    option ${i + 1}: ${short(cand.value, 80)}`);
        for (const f of cand.from) lines.push(`      from ${source(f)}`);
      });
      for (const s of c.steps) lines.push(`    ${s.strategy}: ${s.outcome}${s.note ? ` (${s.note})` : ''}`);
    }
  }
  if (b.missing.length) {
    lines.push('', 'missing');
    for (const m of b.missing) lines.push(`  ${m.key}${m.lanes.length ? `   (failed lanes: ${m.lanes.join(', ')})` : ''}`);
  }
  if (b.failedLanes.length) {
    lines.push('', 'failed lanes');
    for (const l of b.failedLanes) lines.push(`  ${l.agent} (task ${l.task}): ${l.error.code}: ${l.error.message}`);
  }
  return lines.join('\n');
}
