// The README's five-minute tour, run as written: the ```sh block under "Five-minute
// tour" is read from README.md and each command is run with bash, in order, in a
// scratch copy of the project, against a real `npm start` (on a free port instead of
// 7400). What a person at a terminal does by waiting, the runner does by awaiting:
//   - `npm start` (re)starts Spine in the background and awaits its /readyz;
//   - a `$(…)` substitution is retried until its command succeeds with output (a run
//     id, an approval that is not there yet, the pid file of the slow step);
//   - the live event stream (`curl -sN`) is read until its first event, then ended.
// A command's exit code must be 0, or the one its comment names ("exits 1"). Then the
// claims the tour makes are checked: the killed run finished, its interrupted tool
// call ran again flagged maybeRepeated, the failed run was replayed, the cancelled
// one is cancelled, and nothing is left running.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, copyFileSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { it } from 'node:test';
import { until } from './helpers.ts';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const AWAIT_MS = 120_000;

interface Step {
  command: string;
  comment: string;
}

/** The tour's commands: continuation lines joined, comment lines dropped, each command's trailing comment kept apart. */
export function tourSteps(readme: string): Step[] {
  const at = readme.indexOf('## Five-minute tour');
  assert.ok(at >= 0, 'README has a "Five-minute tour" section');
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(at));
  assert.ok(block, 'the tour has a ```sh block');
  const joined = block[1]!.replace(/\\\n\s*/g, '');
  return joined
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const m = /^(.*?)\s+#\s(.*)$/.exec(line);
      return m ? { command: m[1]!.trim(), comment: m[2]! } : { command: line, comment: '' };
    });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function bash(cwd: string, env: NodeJS.ProcessEnv, command: string): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', command], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Retries `attempt` (the project's until()) until it returns a value; fails naming `what` (with the last answer) after AWAIT_MS. */
async function awaitValue<T>(what: string, attempt: () => Promise<T | undefined>, last: () => string): Promise<T> {
  let value: T | undefined;
  try {
    await until(what, async () => (value = await attempt()) !== undefined, AWAIT_MS);
  } catch {
    assert.fail(`${what}: not ready after ${AWAIT_MS} ms; last answer: ${last()}`);
  }
  return value as T;
}

it('the README tour runs as written against npm start', { timeout: 15 * 60_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'spine-tour-'));
  for (const f of ['src', 'bin', 'node_modules']) symlinkSync(join(ROOT, f), join(dir, f));
  copyFileSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  cpSync(join(ROOT, 'examples'), join(dir, 'examples'), { recursive: true });
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`, npm_config_update_notifier: 'false' };
  for (const k of ['SPINE_DB', 'SPINE_CONFIG', 'SPINE_FAULTS', 'TOKEN', 'RUN']) delete env[k];
  const port = await freePort();
  const servers: ChildProcess[] = [];
  const streams: ChildProcess[] = [];
  let serverLog = '';
  t.after(async () => {
    // Only what this test started, by process group id.
    for (const c of [...streams, ...servers]) {
      if (c.exitCode === null && c.signalCode === null && c.pid) {
        // The tour is over and nothing here is asserted: the group is killed, and its exit awaited (no timer raced against a drain).
        try {
          process.kill(-c.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
        await exited(c);
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  const startServer = async () => {
    const previous = servers.at(-1);
    if (previous) await exited(previous);
    const child = spawn('npm', ['start', '--', '--port', String(port)], { cwd: dir, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d: Buffer) => (serverLog += d.toString()));
    child.stderr.on('data', (d: Buffer) => (serverLog += d.toString()));
    servers.push(child);
    let lastStatus = '';
    await awaitValue(
      'npm start: /readyz',
      async () => {
        if (child.exitCode !== null || child.signalCode !== null) assert.fail(`npm start exited (${child.exitCode ?? child.signalCode}):\n${serverLog}`);
        const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch((err: unknown) => ((lastStatus = String(err)), null));
        if (res) lastStatus = String(res.status);
        return res?.status === 200 ? true : undefined;
      },
      () => lastStatus,
    );
  };

  const vars: Record<string, string> = {};
  const assigned: Array<{ name: string; value: string }> = [];
  const run = (command: string) => bash(dir, { ...env, ...vars }, command);
  /** `$(…)`: retried until it succeeds with output — what a person waits for before pasting. */
  const substitute = async (command: string): Promise<string> => {
    let out = command;
    for (const m of command.matchAll(/\$\(([^()]*)\)/g)) {
      let last: Result | null = null;
      const value = await awaitValue(
        `$(${m[1]})`,
        async () => {
          last = await run(m[1]!);
          const v = last.stdout.trim();
          return last.code === 0 && v !== '' ? v : undefined;
        },
        () => JSON.stringify(last),
      );
      out = out.replace(m[0], value);
    }
    return out;
  };

  await startServer();
  const steps = tourSteps(readFileSync(join(ROOT, 'README.md'), 'utf8'));
  assert.ok(steps.length >= 15, `the tour has its commands (${steps.length})`);
  for (const step of steps) {
    const command = step.command.replaceAll('127.0.0.1:7400', `127.0.0.1:${port}`);
    if (command === 'npm start') {
      await startServer();
      continue;
    }
    const assign = /^(?:export\s+)?([A-Z_]+)=(.*)$/.exec(command);
    if (assign) {
      const value = (await substitute(assign[2]!)).trim();
      vars[assign[1]!] = value;
      assigned.push({ name: assign[1]!, value });
      continue;
    }
    const ready = await substitute(command);
    if (/\bcurl -sN\b/.test(ready)) {
      // The live stream never ends by itself: read it until the first event, then end it.
      const child = spawn('bash', ['-c', ready], { cwd: dir, env: { ...env, ...vars }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      streams.push(child);
      let got = '';
      child.stdout.on('data', (d: Buffer) => (got += d.toString()));
      await awaitValue(`${step.command}: a first event`, async () => (/^data: /m.test(got) ? true : undefined), () => got);
      process.kill(-child.pid!, 'SIGTERM');
      await exited(child);
      continue;
    }
    const expected = Number(/\bexits? (\d)\b/.exec(step.comment)?.[1] ?? 0);
    const r = await run(ready);
    assert.equal(r.code, expected, `\`${step.command}\` exited ${r.code}, not ${expected}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }

  // The tour's claims.
  const spine = async (args: string) => {
    const r = await run(`node src/cli/main.ts ${args}`);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  };
  // RUN is set three times: the newest run, the analyst run that is killed, the run that is cancelled.
  const [, crashed, cancelled] = assigned.filter((a) => a.name === 'RUN');
  assert.ok(crashed && cancelled, JSON.stringify(assigned));
  type Shown = { run: { state: string; output: unknown }; effects: Array<{ tool: string; attempts: number; result: { maybeRepeated?: boolean } | null }> };
  const finished = async (id: string) =>
    awaitValue(
      `run ${id} ends`,
      async () => {
        const s = (await spine(`runs show ${id} --json`)) as unknown as Shown;
        return ['succeeded', 'failed', 'cancelled'].includes(s.run.state) ? s : undefined;
      },
      () => id,
    );
  const killed = await finished(crashed.value);
  assert.equal(killed.run.state, 'succeeded', JSON.stringify(killed.run));
  const analysis = killed.effects.find((e) => e.tool === 'analysis.run');
  assert.ok(analysis && analysis.attempts >= 2, `analysis.run began twice: ${JSON.stringify(analysis)}`);
  assert.equal(analysis.result?.maybeRepeated, true);
  assert.deepEqual(killed.effects.filter((e) => e.tool === 'report.send').map((e) => e.attempts), [1], 'the report was sent once');
  assert.equal((await finished(cancelled.value)).run.state, 'cancelled');
  const runs = (await spine('runs list --limit 100 --json')).runs as Array<{ id: string; state: string; agent: string }>;
  for (const r of runs.filter((x) => x.state === 'running')) await finished(r.id);
  const after = (await spine('runs list --limit 100 --json')).runs as Array<{ id: string; state: string; agent: string }>;
  assert.deepEqual(after.filter((r) => r.state === 'failed'), [], 'the failed run was replayed and succeeded');
  assert.ok(after.filter((r) => r.agent === 'commander' && r.state === 'succeeded').length >= 4, JSON.stringify(after));
});
