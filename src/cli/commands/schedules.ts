import { InvalidInputError } from '../../core/errors.ts';
import { resumeHeartbeat } from '../../intake/schedules/scheduler.ts';
import type { Schedule } from '../../intake/schedules/config.ts';
import type { ScheduleState } from '../../store/schedules.ts';
import { parse } from '../args.ts';
import { loadCliConfig, openCliStore } from '../context.ts';
import { table, when } from '../format.ts';
import type { CommandResult } from '../command.ts';

/** `spine schedules [list] | resume <id>` (docs/schedules.md): what fires when, heartbeats' skips and pauses. */
export async function schedulesCommand(argv: string[]): Promise<CommandResult> {
  const [first, ...rest] = argv;
  const sub = first === undefined || first.startsWith('-') ? 'list' : first;
  if (sub !== 'list' && sub !== 'resume') throw new InvalidInputError('schedules', `unknown subcommand "${sub}" (list, resume)`);
  const { values, positionals } = parse(sub === first ? rest : argv, {}, sub === 'resume' ? 1 : 0);
  const config = await loadCliConfig(values);
  const store = await openCliStore(values, config);
  try {
    if (sub === 'resume') {
      const id = positionals[0];
      if (!id) throw new InvalidInputError('<schedule>', 'missing: the id of a paused heartbeat');
      const actor = `cli:${process.env.SPINE_OPERATOR ?? process.env.USER ?? 'cli'}`;
      const state = await resumeHeartbeat(store, config.schedules, id, actor, Date.now());
      if (values.json) return { stdout: JSON.stringify({ schedule: state }, null, 2) };
      return { stdout: `heartbeat ${id} resumed (audited); next fire ${when(state.nextFireAt)}` };
    }
    const rows = new Map((await store.schedules.list()).map((r) => [r.id, r]));
    const list = config.schedules.map((s) => view(s, rows.get(s.id) ?? null));
    if (values.json) return { stdout: JSON.stringify({ schedules: list }, null, 2) };
    if (list.length === 0) return { stdout: 'no schedules configured' };
    return {
      stdout: table(
        ['SCHEDULE', 'TRIGGER', 'AGENT', 'NEXT', 'LAST FIRED', 'FIRES', 'HEARTBEAT'],
        list.map((v) => [v.id, v.trigger, v.agent ?? '(bindings)', v.enabled ? when(v.nextFireAt) : 'disabled', when(v.lastFireAt), String(v.fires), v.heartbeat ? heartbeatCell(v.heartbeat) : '']),
      ),
    };
  } finally {
    await store.close();
  }
}

type View = ReturnType<typeof view>;

function view(s: Schedule, row: ScheduleState | null) {
  const hb = row?.heartbeat;
  return {
    id: s.id,
    trigger: triggerText(s),
    agent: s.agent,
    enabled: s.enabled,
    nextFireAt: row?.nextFireAt ?? null,
    lastFireAt: row?.lastFireAt ?? null,
    fires: row?.fires ?? 0,
    heartbeat: s.heartbeat
      ? {
          watch: s.heartbeat.watchList,
          state: hb?.paused ? ('paused' as const) : ('active' as const),
          pausedAt: hb?.paused?.at ?? null,
          pauseReason: hb?.paused?.reason ?? null,
          skipped: hb?.skipped ?? 0,
          lastSkippedAt: hb?.skippedAt ?? null,
          noops: hb?.noops ?? 0,
          identical: hb?.identical ?? 0,
        }
      : null,
  };
}

function triggerText(s: Schedule): string {
  switch (s.trigger.kind) {
    case 'every':
      return `every ${duration(s.trigger.ms)}`;
    case 'cron':
      return `cron ${s.trigger.pattern}${s.timezone === 'UTC' ? '' : ` (${s.timezone})`}`;
    case 'at':
      return `at ${new Date(s.trigger.at).toISOString()}`;
  }
}

function heartbeatCell(h: NonNullable<View['heartbeat']>): string {
  const skipped = `skipped ${h.skipped}${h.lastSkippedAt ? ` (last ${when(h.lastSkippedAt)})` : ''}`;
  return h.state === 'paused' ? `PAUSED ${when(h.pausedAt)}: ${h.pauseReason}; ${skipped}` : `active; ${skipped}`;
}

function duration(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1_000]] as const) if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}
