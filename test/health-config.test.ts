// Health config (docs/health.md) through the real loader: an agent's probe and the
// stuck-work sweep compile into the registry; a probe that does not fit its agent, a
// bad duration or a bad action is refused at load, naming the field.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { ConfigError } from '../src/core/errors.ts';
import { loadConfig } from '../src/runtime/config.ts';

const dir = mkdtempSync(join(tmpdir(), 'spine-health-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text, { mode: 0o600 });
  return file;
}

async function issuesOf(p: Promise<unknown>): Promise<string[]> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.issues.map((i) => i.path);
  }
  assert.fail('expected a ConfigError');
}

it('a probe and the stuck-work sweep compile into the registry', async () => {
  const file = write(
    'ok.json5',
    `{
      agents: {
        remote: { kind: 'http', url: 'http://127.0.0.1:9/turn', health: { probe: 'http', path: '/health', every: '45s', timeoutMs: 2000 } },
      },
      health: { stuck: { overTimeout: 'cancel', joinOverdue: 'escalate', approvalExpiring: { within: '10m' }, runSla: { after: '2h', action: 'escalate' } } },
    }`,
  );
  const config = await loadConfig(file);
  const probe = config.registry.agents.get('remote')!.probe;
  assert.deepEqual([probe?.kind, probe?.everyMs, probe?.timeoutMs], ['http', 45_000, 2_000]);
  const stuck = config.registry.stuck!;
  assert.deepEqual(stuck.actions, { 'lease-expired': 'report', 'turn-overdue': 'cancel', 'join-overdue': 'escalate', 'approval-expiring': 'report', 'run-over-sla': 'escalate' });
  assert.equal(stuck.approvalWarnMs, 600_000);
  assert.equal(stuck.runSlaMs, 7_200_000);
});

it('bad health config is refused, naming each field', async () => {
  const file = write(
    'bad.json5',
    `{
      agents: {
        remote: { kind: 'http', url: 'http://127.0.0.1:9/turn', health: { probe: 'ping', command: ['true'] } },
        local: { kind: 'command', command: ['node'], health: { probe: 'ping', every: 'sometimes' } },
      },
      health: { stuck: { runSla: { after: 'late' } } },
    }`,
  );
  assert.deepEqual((await issuesOf(loadConfig(file))).sort(), ['agents.local.health.command', 'agents.local.health.every', 'agents.remote.health.probe', 'health.stuck.runSla.after']);
  const action = write('action.json5', `{ agents: { a: { kind: 'command', command: ['node'] } }, health: { stuck: { overTimeout: 'panic' } } }`);
  assert.deepEqual(await issuesOf(loadConfig(action)), ['health.stuck.overTimeout']);
});
