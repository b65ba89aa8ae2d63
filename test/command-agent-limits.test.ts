// A command agent's own limits: its working folder is the one configured, it sees only
// the minimal environment plus what it is given, its answer is capped, and a memory
// limit stops an agent that allocates past it (POSIX).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CommandAgent } from '../src/agents/command-agent.ts';
import type { TurnInput } from '../src/core/types.ts';

const turn = { protocol: 'spine.turn/1', task: { id: 't', runId: 'r', agent: 'a', parentId: null, depth: 0, input: null, turn: 1, attempt: 1, lastError: null }, session: null, history: [], results: [], memory: [], grants: { tools: [], agents: [] } } as TurnInput;
const ctx = () => ({ signal: new AbortController().signal }) as never;

test('cwd, environment, output cap and memory limit', { skip: process.platform === 'win32' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'spine-cmd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'work'));
  const script = join(dir, 'agent.py');
  writeFileSync(
    script,
    [
      'import json, os, sys',
      'json.load(sys.stdin)',
      'mode = sys.argv[1]',
      'if mode == "hog":',
      '    x = bytearray(512 * 1024 * 1024)',
      'if mode == "big":',
      '    sys.stdout.write("[" + ",".join(["1"] * 100000) + "]")',
      '    sys.exit(0)',
      'json.dump({"output": {"cwd": os.getcwd(), "env": sorted(k for k in os.environ if not k.startswith("LC_"))}}, sys.stdout)',
    ].join('\n'),
  );
  process.env.SPINE_LIMITS_SECRET_TOKEN = 'not-for-agents-123456';
  t.after(() => delete process.env.SPINE_LIMITS_SECRET_TOKEN);
  const ok = (await new CommandAgent({ name: 'a', command: ['python3', script, 'ok'], cwd: join(dir, 'work'), env: { MODE: 'x' } }).turn(turn, ctx())) as {
    output: { cwd: string; env: string[] };
  };
  assert.equal(ok.output.cwd, join(dir, 'work'));
  assert.ok(!ok.output.env.includes('SPINE_LIMITS_SECRET_TOKEN'), 'not inherited');
  assert.ok(ok.output.env.includes('MODE') && ok.output.env.includes('PATH') && ok.output.env.includes('SPINE_AGENT'));

  await assert.rejects(new CommandAgent({ name: 'a', command: ['python3', script, 'big'], cwd: dir, maxOutputBytes: 10_000 }).turn(turn, ctx()), /answer exceeds 10000 bytes/);
  await assert.rejects(new CommandAgent({ name: 'a', command: ['python3', script, 'hog'], cwd: dir, maxMemoryMb: 128 }).turn(turn, ctx()), /MemoryError|exited with code|killed/);
});
