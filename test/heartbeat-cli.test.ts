// `spine schedules` and `spine doctor` on a paused heartbeat, through the real CLI in a
// child process: the pause is listed with its reason, doctor warns naming it, resume
// lifts it (audited, exit 0) and refuses what is not paused or not known.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { systemClock } from '../src/core/clock.ts';
import { Intake } from '../src/intake/intake.ts';
import { Scheduler } from '../src/intake/schedules/scheduler.ts';
import { loadConfig } from '../src/runtime/config.ts';
import { spine } from './fixtures/policy-project.ts';
import { forge, tempStore } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'spine-heartbeat-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

it('lists a paused heartbeat, doctor warns about it, resume lifts it once', async () => {
  writeFileSync(join(dir, 'agent.ts'), 'export default function agent() { return { output: "HEARTBEAT_OK" }; }\n');
  writeFileSync(
    join(dir, 'spine.config.json5'),
    `{ agents: { commander: { kind: 'function', module: './agent.ts' } },
       schedules: { hb: { every: '30m', agent: 'commander', heartbeat: { watch: ['team/accounts/*'], pauseAfterNoops: 3 } },
                    nightly: { cron: '0 2 * * *', agent: 'commander' } } }`,
  );
  const { store, url: db, cleanup } = await tempStore();
  after(cleanup);
  const config = await loadConfig(join(dir, 'spine.config.json5'));
  const scheduler = new Scheduler({ store, intake: new Intake(store, config.registry, config.routing, systemClock), schedules: config.schedules });
  await scheduler.sync();
  await forge(store, `UPDATE schedules SET paused_at = ?, pause_reason = ? WHERE id = 'hb'`, [Date.now(), '3 no-op runs in a row (pauseAfterNoops 3)']);
  const run = (...args: string[]) => spine(dir, [...args, '--db', db]);

  const listed = await run('schedules', '--json');
  assert.equal(listed.code, 0, listed.stderr);
  const { schedules } = JSON.parse(listed.stdout) as { schedules: Array<{ id: string; trigger: string; heartbeat: { state: string; pauseReason: string } | null }> };
  assert.deepEqual(
    schedules.map((s) => [s.id, s.trigger, s.heartbeat?.state ?? null]),
    [
      ['hb', 'every 30m', 'paused'],
      ['nightly', 'cron 0 2 * * *', null],
    ],
  );
  assert.match((await run('schedules')).stdout, /PAUSED .*3 no-op runs in a row/);

  const doctor = await run('doctor', '--json');
  const check = (JSON.parse(doctor.stdout) as { checks: Array<{ name: string; status: string; detail: string }> }).checks.find((c) => c.name === 'heartbeats');
  assert.equal(check?.status, 'warn');
  assert.match(check?.detail ?? '', /hb paused at .*no-op.*spine schedules resume hb/);

  const resumed = await run('schedules', 'resume', 'hb');
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stdout, /heartbeat hb resumed \(audited\)/);
  const again = await run('schedules', 'resume', 'hb');
  assert.equal(again.code, 3);
  assert.match(again.stderr, /heartbeat hb is not paused/);
  assert.equal((await run('schedules', 'resume', 'nope')).code, 3);
  const plain = await run('schedules', 'resume', 'nightly');
  assert.equal(plain.code, 2);
  assert.match(plain.stderr, /nightly is not a heartbeat/);
  assert.equal((await run('schedules', 'bogus')).code, 2);

  const events = (await store.audit.list({ limit: 1000 })).filter((e) => e.kind === 'heartbeat.resumed');
  const row = await store.schedules.get('hb');
  assert.equal(events.length, 1);
  assert.match(events[0]!.actor ?? '', /^cli:/);
  assert.equal(row?.heartbeat.paused, null);
});
