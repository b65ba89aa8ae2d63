// Heartbeat and durable-write config at load: each problem refused with the field
// named (CONFIG_INVALID, exit 2), nothing started; a good one compiles to a schedule
// with its heartbeat and an origin-bound ceiling in the policy.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError, EXIT } from '../src/core/errors.ts';
import { fireAfter, planFires } from '../src/intake/schedules/plan.ts';
import { loadConfig } from '../src/runtime/config.ts';

const dir = mkdtempSync(join(tmpdir(), 'spine-heartbeat-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'agent.ts'), 'export default function agent() { return { output: "HEARTBEAT_OK" }; }\n');

let n = 0;
function config(schedules: string, extra = ''): string {
  const file = join(dir, `c${n++}.json5`);
  writeFileSync(file, `{ agents: { commander: { kind: 'function', module: './agent.ts' } }, schedules: ${schedules}, ${extra} }`);
  return file;
}

async function issues(file: string): Promise<Array<{ path: string; message: string }>> {
  try {
    await loadConfig(file);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.code, 'CONFIG_INVALID');
    assert.equal(err.exitCode, EXIT.usage);
    return err.issues;
  }
  return assert.fail('expected a ConfigError');
}

describe('heartbeat config', () => {
  it('compiles a heartbeat: every, watch, streak limits, and its maxCostUsd as a ceiling on its own runs', async () => {
    const c = await loadConfig(
      config(`{ 'accounts-watch': { every: '30m', agent: 'commander', text: 'Check the accounts',
        heartbeat: { watch: ['team/accounts/*', 'agent:commander', 'channel:slack'], maxCostUsd: 0.05, pauseAfterNoops: 3, pauseAfterIdenticalOutputs: 3 } } }`, `memory: { durableWritesFrom: { heartbeat: false } }`),
    );
    const [s] = c.schedules;
    assert.deepEqual(s!.trigger, { kind: 'every', ms: 30 * 60_000 });
    assert.deepEqual(s!.heartbeat!.watch, { scopes: [{ tree: 'team/accounts' }], agents: ['commander'], channels: ['slack'] });
    assert.equal(s!.heartbeat!.skipIfIdle, true);
    assert.equal(s!.heartbeat!.okText, 'HEARTBEAT_OK');
    const ceiling = c.registry.policy.policy.ceilings.find((r) => r.id === 'heartbeat:accounts-watch');
    assert.deepEqual(ceiling && { scope: ceiling.scope, maxMicros: ceiling.maxMicros, origin: ceiling.origin, onExceeded: ceiling.onExceeded }, {
      scope: 'run',
      maxMicros: 50_000,
      origin: 'heartbeat:accounts-watch',
      onExceeded: 'fail',
    });
    assert.deepEqual(c.registry.memory.durableWritesFrom, { schedule: true, heartbeat: false });
    // every 30m fires at :00 and :30 UTC, the same in every process.
    assert.equal(fireAfter(s!, Date.UTC(2026, 0, 5, 8, 10)), Date.UTC(2026, 0, 5, 8, 30));
    assert.deepEqual(planFires(s!, Date.UTC(2026, 0, 5, 8, 30), Date.UTC(2026, 0, 5, 10, 0), 60_000).skipped?.count, 3);
  });

  it('refuses bad heartbeats at load, naming the field', async () => {
    const cases: Array<[string, string, RegExp]> = [
      [`{ h: { every: '30m', agent: 'comander', heartbeat: { skipIfIdle: false } } }`, 'schedules.h.agent', /unknown agent "comander"/],
      [`{ h: { every: '30 minutes', agent: 'commander', heartbeat: { skipIfIdle: false } } }`, 'schedules.h.every', /not a duration of at least 1s: "30 minutes"/],
      [`{ h: { every: 500, agent: 'commander', heartbeat: { skipIfIdle: false } } }`, 'schedules.h.every', /at least 1s/],
      [`{ h: { every: '30m', agent: 'commander', heartbeat: { skipIfIdle: false, maxCostUsd: -1 } } }`, 'schedules.h.heartbeat.maxCostUsd', /.+/],
      [`{ h: { every: '30m', agent: 'commander', heartbeat: { skipIfIdle: false, pauseAfterNoops: 0 } } }`, 'schedules.h.heartbeat.pauseAfterNoops', /.+/],
      [`{ h: { every: '30m', agent: 'commander', heartbeat: {} } }`, 'schedules.h.heartbeat.watch', /skipIfIdle needs something to watch/],
      [`{ h: { every: '30m', agent: 'commander', heartbeat: { watch: ['agent:ghost'] } } }`, 'schedules.h.heartbeat.watch.0', /unknown agent "ghost"/],
      [`{ h: { every: '30m', agent: 'commander', heartbeat: { watch: ['accounts'] } } }`, 'schedules.h.heartbeat.watch.0', /is not a memory scope, agent:<name> or channel:<name>/],
      [`{ h: { every: '30m', heartbeat: { skipIfIdle: false } } }`, 'schedules.h.agent', /a heartbeat needs an agent/],
      [`{ h: { at: '2026-12-01T09:00:00Z', agent: 'commander', heartbeat: { skipIfIdle: false } } }`, 'schedules.h.at', /a heartbeat repeats/],
      [`{ h: { every: '30m', catchUp: 'all', agent: 'commander', heartbeat: { skipIfIdle: false } } }`, 'schedules.h.catchUp', /at most once/],
      [`{ h: { every: '30m', cron: '* * * * *', agent: 'commander' } }`, 'schedules.h.cron', /exactly one of cron, at or every/],
    ];
    for (const [schedules, path, message] of cases) {
      const found = await issues(config(schedules));
      assert.deepEqual(found.map((i) => i.path), [path], schedules);
      assert.match(found[0]!.message, message, schedules);
    }
    const memory = await issues(config('{}', `memory: { durableWritesFrom: { heartbeat: 'no' } }`));
    assert.deepEqual(memory.map((i) => i.path), ['memory.durableWritesFrom.heartbeat']);
  });
});
