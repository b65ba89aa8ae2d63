// `spine memory …` as a real child process: put (and a lost compare-and-set, exit 3),
// search, get --as-of, history, conflicts, forget --dry-run then for real (cascading to
// a derived fact), and bad input (an unknown scope form, exit 2) writing nothing.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'spine-memcli-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const db = `sqlite:${join(dir, 's.db')}`;

function spine(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { ...process.env };
  for (const k of ['SPINE_DB', 'SPINE_CONFIG', 'SPINE_FAULTS']) delete env[k];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, 'memory', ...args, '--db', db], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('spine memory: put, search, get, history, conflicts, forget', { timeout: 120_000 }, async () => {
  const first = await spine('put', 'team/research', 'pricing', '--value', '{"usd":10}', '--text', 'pricing is ten dollars', '--source', 'env_1', '--json');
  assert.equal(first.code, 0, first.stderr);
  const v1 = (JSON.parse(first.stdout) as { fact: { id: string; version: number } }).fact;
  assert.equal(v1.version, 1);
  const derived = await spine('put', 'team/research', 'summary', '--value', '"cheap"', '--text', 'a cheap vendor', '--source', v1.id);
  assert.equal(derived.code, 0, derived.stderr);
  const stale = await spine('put', 'team/research', 'pricing', '--value', '{"usd":11}', '--expected-version', '0');
  assert.equal(stale.code, 3, 'a lost compare-and-set exits 3');
  assert.match(stale.stdout, /conflict .*expected v0, found v1/);

  const search = await spine('search', 'ten', 'dollars', '--json');
  assert.equal(search.code, 0, search.stderr);
  assert.deepEqual((JSON.parse(search.stdout) as { hits: Array<{ key: string }> }).hits.map((h) => h.key), ['pricing']);
  const got = await spine('get', 'team/research', 'pricing');
  assert.match(got.stdout, /"usd":10/);
  assert.equal((await spine('get', 'team/research', 'pricing', '--as-of', '1')).code, 3, 'nothing was true then');
  const history = await spine('history', 'team/research', 'pricing', '--json');
  assert.equal((JSON.parse(history.stdout) as { versions: unknown[] }).versions.length, 1);
  const conflicts = await spine('conflicts', '--json');
  assert.equal((JSON.parse(conflicts.stdout) as { conflicts: Array<{ state: string }> }).conflicts[0]!.state, 'rejected');

  const dry = await spine('forget', '--source', 'env_1', '--dry-run');
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /would forget 2 fact\(s\)/);
  assert.match(dry.stdout, /summary/, 'the fact derived from it too');
  assert.equal((await spine('get', 'team/research', 'summary')).code, 0, 'a dry run changes nothing');
  const real = await spine('forget', '--source', 'env_1', '--json');
  assert.equal((JSON.parse(real.stdout) as { facts: unknown[] }).facts.length, 2);
  assert.equal((await spine('get', 'team/research', 'summary')).code, 3);

  const bad = await spine('put', 'teams/x', 'k', '--value', '1');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown scope form "teams\/x"/);
  assert.equal((await spine('history', 'teams/x', 'k')).code, 2);
  assert.equal((await spine('forget', '--run', 'r', '--agent', 'a')).code, 2, 'exactly one selector');
});

test('spine memory search --mode, and conflicts resolve on a human-strategy conflict', { timeout: 120_000 }, async () => {
  const cfg = join(dir, 'human.json5');
  writeFileSync(join(dir, 'embed.ts'), 'export default (input) => ({ output: { vectors: input.task.input.texts.map(() => [1, 0, 0]) } });\n');
  writeFileSync(cfg, `{ memory: { scopes: [{ match: 'team/h/*', onConflict: 'human' }], embedder: { agent: 'embedder', dimensions: 3 } }, agents: { embedder: { kind: 'function', module: './embed.ts' } } }`);
  const c = (...args: string[]) => spine(...args, '--config', cfg);
  assert.equal((await c('put', 'team/h/x', 'plan', '--value', '{"step":1}', '--text', 'the plan')).code, 0);
  assert.equal((await c('put', 'team/h/x', 'plan', '--value', '{"step":2}', '--expected-version', '1')).code, 0);
  const lost = await c('put', 'team/h/x', 'plan', '--value', '{"step":3}', '--expected-version', '1');
  assert.equal(lost.code, 3, 'queued for a human: still a lost compare-and-set for the writer');
  const open = JSON.parse((await c('conflicts', '--state', 'open', '--json')).stdout) as { conflicts: Array<{ id: string; strategy: string }> };
  assert.equal(open.conflicts.length, 1);
  assert.equal(open.conflicts[0]!.strategy, 'human');
  const id = open.conflicts[0]!.id;

  const badPick = await c('conflicts', 'resolve', id, '--pick', '3');
  assert.equal(badPick.code, 2);
  assert.match(badPick.stderr, /pick: "3" is not an option/);
  const neither = await c('conflicts', 'resolve', id);
  assert.equal(neither.code, 2);
  assert.match(neither.stderr, /exactly one of --pick <n> or --value/);
  writeFileSync(join(dir, 'merged.json'), '{"step":23}');
  const done = await c('conflicts', 'resolve', id, '--value', join(dir, 'merged.json'), '--json');
  assert.equal(done.code, 0, done.stderr);
  assert.equal((JSON.parse(done.stdout) as { conflict: { state: string; resolvedVersion: number } }).conflict.resolvedVersion, 3);
  assert.match((await c('get', 'team/h/x', 'plan')).stdout, /"step":23/);
  assert.equal((await c('conflicts', 'resolve', id, '--pick', '1')).code, 3, 'no longer open');

  assert.equal((await c('search', 'plan', '--mode', 'lexical', '--json')).code, 0);
  const badMode = await c('search', 'plan', '--mode', 'fuzzy');
  assert.equal(badMode.code, 2);
  assert.match(badMode.stderr, /--mode/);
  const noEmbedder = await spine('search', 'plan', '--mode', 'vector');
  assert.equal(noEmbedder.code, 2, 'no config, no embedder');
  assert.match(noEmbedder.stderr, /mode: vector search needs vectors: configure memory\.embedder/);
});
