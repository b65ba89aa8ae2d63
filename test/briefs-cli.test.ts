// The bundled offline example end to end through the real `spine` command: three
// specialists, two of whose claims disagree on one key; a vote ties, the arbiter (a
// judge function agent) decides; `spine briefs list|show` print the brief with its
// provenance, as text and as JSON. Bad input exits with the catalogue's code.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import type { Brief } from '../src/core/brief.ts';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const CONFIG = fileURLToPath(new URL('../examples/briefing/spine.config.json5', import.meta.url));

function spine(cwd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { ...process.env };
  delete env.SPINE_DB;
  delete env.SPINE_CONFIG;
  delete env.SPINE_FAULTS;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('the briefing example and spine briefs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'spine-briefs-'));
  const db = `sqlite:${join(dir, 'spine.db')}`;
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a vote ties on migration.effort, the arbiter decides, and the brief shows where each value came from', async () => {
    const up = await spine(dir, ['up', '--config', CONFIG, '--db', db, '--no-gateway', '--send', 'commander', '--text', 'Move to a durable orchestrator?', '--exit', '--quiet']);
    assert.equal(up.code, 0, up.stderr);

    const listed = await spine(dir, ['briefs', 'list', '--db', db, '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    const { briefs } = JSON.parse(listed.stdout) as { briefs: Brief[] };
    assert.equal(briefs.length, 1);
    const brief = briefs[0]!;
    assert.equal(brief.state, 'done');
    assert.deepEqual(brief.parts.map((p) => [p.key, p.value, p.from.map((f) => f.agent)]), [['audit.trail', true, ['estimator', 'researcher']]]);
    const effort = brief.conflicts[0]!;
    assert.equal(effort.key, 'migration.effort');
    assert.deepEqual(effort.candidates.map((c) => [c.value, c.from.map((f) => f.agent)]), [
      ['days', ['researcher']],
      ['weeks', ['estimator']],
    ]);
    assert.deepEqual(effort.steps.map((s) => [s.strategy, s.outcome]), [
      ['vote', 'tie'],
      ['judge', 'decided'],
    ]);
    assert.equal(effort.decision?.value, 'weeks');
    assert.equal(effort.decision?.decider.kind === 'agent' && effort.decision.decider.agent, 'arbiter');

    const shown = await spine(dir, ['briefs', 'show', brief.id, '--db', db]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /migration\.effort = weeks +decided by judge: agent arbiter \(task task_\w+, turn 1\)/);
    assert.match(shown.stdout, /option 1: days\n +from researcher \(task task_\w+, turn 1\)/);
    assert.match(shown.stdout, /vote: tie/);
    assert.match(shown.stdout, new RegExp(`digest +${brief.digest}`));
    const json = await spine(dir, ['briefs', 'show', brief.id, '--db', db, '--json']);
    assert.deepEqual((JSON.parse(json.stdout) as { brief: Brief }).brief, brief);

    const text = await spine(dir, ['briefs', 'list', '--db', db]);
    assert.match(text.stdout, /commander +done +1 +1 \(1 decided\) +0/);
  });

  it('bad input: an unknown brief is NOT_FOUND, a bad state is named, a missing subcommand says which exist', async () => {
    const missing = await spine(dir, ['briefs', 'show', 'brief_nope', '--db', db]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /brief_nope/);
    const state = await spine(dir, ['briefs', 'list', '--state', 'maybe', '--db', db]);
    assert.equal(state.code, 2);
    assert.match(state.stderr, /--state/);
    const none = await spine(dir, ['briefs', '--db', db]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /unknown subcommand "--db" \(list, show\)/);
  });
});
