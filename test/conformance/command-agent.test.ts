// Command agents: real child processes speaking the turn protocol over stdio, run
// by a real Worker. A Python agent does a full tool + handoff round trip; broken
// agents get precise errors, are retried per policy, and corrupt nothing.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ToolContext } from '../../src/core/agent.ts';
import { CommandAgent } from '../../src/agents/command-agent.ts';
import type { Json, Run, RunState } from '../../src/core/types.ts';
import type { AgentSpec, Registry, RetryPolicy } from '../../src/engine/options.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { Worker } from '../../src/engine/worker.ts';
import type { Store } from '../../src/store/store.ts';
import { FAST_WORKER, auditOf, finished, forge, registry, startWorker, submit, tempStore, until } from '../helpers.ts';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
const BAD_MODES = ['not-json', 'exit', 'bad-protocol', 'hang'] as const;

interface ToolCall {
  input: Json;
  key: string;
  maybeRepeated: boolean;
}

describe('command agents', () => {
  let store: Store;
  let worker: Worker;
  let dir: string;
  let cleanup: () => Promise<void>;
  let reg: Registry;
  const toolCalls: ToolCall[] = [];
  /** Every run this suite made, with the state it ended in: later cases must not disturb earlier ones. */
  const outcomes = new Map<string, RunState>();

  before(async () => {
    ({ store, dir, cleanup } = await tempStore());
    // Every agent is registered through the shared helper (so it gets whatever defaults a
    // registry needs); the command agents then swap in their CommandAgent adapter.
    const commands: Record<string, { argv: string[]; timeoutMs?: number; retry?: Partial<RetryPolicy> }> = {
      planner: { argv: ['python3', join(FIXTURES, 'python_agent.py')] },
      ...Object.fromEntries(BAD_MODES.filter((m) => m !== 'hang').map((m) => [m, { argv: ['python3', join(FIXTURES, 'bad_agent.py'), m] }])),
      hang: { argv: ['python3', join(FIXTURES, 'bad_agent.py'), 'hang'], timeoutMs: 1_500, retry: { maxAttempts: 1 } },
      missing: { argv: [join(dir, 'no-such-agent')], retry: { maxAttempts: 3 } },
    };
    const notAFunction = () => {
      throw new Error('replaced by a CommandAgent');
    };
    const base = registry(
      {
        writer: (input) => ({ output: `draft about ${(input.task.input as { topic: string }).topic}` }),
        ...Object.fromEntries(
          Object.entries(commands).map(([name, c]) => [
            name,
            { fn: notAFunction, timeoutMs: c.timeoutMs ?? 10_000, retry: { maxAttempts: 2, initialMs: 5, jitter: 'none' as const, ...c.retry } },
          ]),
        ),
      },
      {
        lookup: (input, ctx: ToolContext) => {
          toolCalls.push({ input, key: ctx.idempotencyKey, maybeRepeated: ctx.maybeRepeated });
          return `3 facts about ${(input as { query: string }).query}`;
        },
      },
    );
    const agents = new Map(
      [...base.agents].map(([name, spec]): [string, AgentSpec] => {
        const c = commands[name];
        if (!c) return [name, spec];
        return [name, { ...spec, agent: new CommandAgent({ name, command: c.argv, cwd: FIXTURES, env: { SPINE_TEST_LOG: logFile(name) } }) }];
      }),
    );
    reg = { ...base, agents };
    for (const m of BAD_MODES) writeFileSync(logFile(m), '');
    worker = await startWorker(store, reg);
  });

  after(async () => {
    await worker?.stop();
    await cleanup?.();
  });

  function logFile(agent: string): string {
    return join(dir, `${agent}.log`);
  }

  /** What a bad_agent.py instance was asked, one entry per process started. */
  function invocations(agent: string): Array<{ turn: number; attempt: number; pid: number }> {
    return readFileSync(logFile(agent), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { turn: number; attempt: number; pid: number });
  }

  async function run(agent: string, input: Json): Promise<Run> {
    const done = await finished(store, (await submit(store, reg, agent, input)).id);
    outcomes.set(done.id, done.state);
    return done;
  }

  async function runPlanner(topic: string): Promise<Run> {
    const done = await run('planner', { topic });
    assert.equal(done.state, 'succeeded', `planner run: ${JSON.stringify(done.error)}`);
    return done;
  }

  /** The failed task kept its committed turn 1 whole, nothing half-written exists, and the store still works. */
  async function assertNothingCorrupted(failed: Run, mode: string): Promise<void> {
    const turns = await store.tasks.turns(failed.rootTaskId);
    assert.equal(turns.length, 1, 'turn 1 stays committed');
    assert.deepEqual(turns[0]!.actions, [{ type: 'tool', tool: 'lookup', input: { query: mode } }]);
    assert.deepEqual(turns[0]!.results, [{ index: 0, type: 'tool', ok: true, value: `3 facts about ${mode}` }]);
    const effects = await store.tasks.effects({ taskId: failed.rootTaskId });
    assert.deepEqual(
      effects.map((e) => [e.turn, e.action, e.state, e.attempts]),
      [[1, 0, 'completed', 1]],
    );
    const { rows } = await forge<{ n: number }>(store, `SELECT COUNT(*) AS n FROM turns WHERE task_id = ? AND state <> 'committed'`, [failed.rootTaskId]);
    assert.equal(rows[0]!.n, 0, 'no half-recorded turn');
    const task = (await store.tasks.get(failed.rootTaskId))!;
    assert.equal(task.turns, 1);
    assert.equal(task.leaseOwner, null);

    await runPlanner(`after ${mode}`);
    for (const [id, state] of outcomes) assert.equal((await store.runs.get(id))!.state, state, `run ${id} unchanged`);
  }

  test('a Python agent calls a tool and hands off on turn 1, then answers from the results on turn 2', async () => {
    const done = await runPlanner('solar');
    const tasks = await store.tasks.list({ runId: done.id, limit: 10 });
    const writer = tasks.find((x) => x.agent === 'writer')!;
    assert.deepEqual(done.output, {
      summary: 'draft about solar (3 facts about solar)',
      writerTask: writer.id,
      turnsBefore: 1,
      agent: 'planner',
      runId: done.id,
      taskId: done.rootTaskId,
    });
    assert.equal(writer.parentId, done.rootTaskId);
    assert.deepEqual(writer.input, { topic: 'solar' });

    // The tool ran once, under the idempotency key of its place in the run.
    const call = toolCalls.find((c) => (c.input as { query: string }).query === 'solar')!;
    assert.equal(call.key, `${done.id}/${done.rootTaskId}/1/0`);
    assert.equal(call.maybeRepeated, false);
    assert.equal(toolCalls.filter((c) => c.key === call.key).length, 1);

    const turns = await store.tasks.turns(done.rootTaskId);
    assert.deepEqual(
      turns.map((x) => x.turn),
      [1, 2],
    );
    assert.deepEqual(
      turns[0]!.actions.map((a) => [a.type, a.id]),
      [
        ['tool', 'facts'],
        ['handoff', 'draft'],
      ],
    );
    const answered = (await auditOf(store, done.id)).filter((e) => e.kind === 'turn.answered' && e.taskId === done.rootTaskId);
    assert.equal(answered.length, 2);
  });

  test('docs/agent-protocol.md shows this Python agent verbatim', () => {
    const doc = readFileSync(join(FIXTURES, '..', '..', 'docs', 'agent-protocol.md'), 'utf8');
    const block = /```python\n([\s\S]*?)```/.exec(doc);
    assert.ok(block, 'the doc has a python block');
    assert.equal(block[1], readFileSync(join(FIXTURES, 'python_agent.py'), 'utf8'));
  });

  test('stdout that is not JSON: AGENT_PROTOCOL, retried per policy, then dead', async () => {
    const failed = await run('not-json', null);
    assert.equal(failed.state, 'failed');
    assert.equal(failed.error!.code, 'AGENT_PROTOCOL');
    assert.match(failed.error!.message, /agent "not-json": answer is not valid JSON: "Sure! Here is my answer: done\."/);
    assert.deepEqual(
      invocations('not-json').map((i) => [i.turn, i.attempt]),
      [
        [1, 1],
        [2, 1],
        [2, 2],
      ],
      'turn 1 ran once; turn 2 was tried maxAttempts (2) times',
    );
    const audit = await auditOf(store, failed.id);
    assert.equal(audit.filter((e) => e.kind === 'task.failed').length, 2);
    assert.equal(audit.filter((e) => e.kind === 'task.retry-scheduled').length, 1);
    assert.equal((await store.tasks.get(failed.rootTaskId))!.state, 'dead');
    await assertNothingCorrupted(failed, 'not-json');
  });

  test('a non-zero exit: AGENT_FAILED whose message carries the stderr, retried, then dead', async () => {
    const failed = await run('exit', null);
    assert.equal(failed.state, 'failed');
    assert.equal(failed.error!.code, 'AGENT_FAILED');
    assert.equal(failed.error!.retryable, true);
    assert.match(failed.error!.message, /process exited with code 3; stderr: bad_agent: the model endpoint refused the request/);
    assert.deepEqual(failed.error!.details, { exitCode: 3, signal: null });
    assert.deepEqual(
      invocations('exit').map((i) => [i.turn, i.attempt]),
      [
        [1, 1],
        [2, 1],
        [2, 2],
      ],
    );
    await assertNothingCorrupted(failed, 'exit');
  });

  test('valid JSON that breaks the protocol: AGENT_PROTOCOL naming the path of the violation', async () => {
    const failed = await run('bad-protocol', null);
    assert.equal(failed.state, 'failed');
    assert.equal(failed.error!.code, 'AGENT_PROTOCOL');
    assert.match(failed.error!.message, /invalid turn result: actions\.0\.type: /);
    const details = failed.error!.details as Array<{ path: string; message: string }>;
    assert.deepEqual(
      details.map((d) => d.path),
      ['actions.0.type'],
    );
    assert.match(details[0]!.message, /'tool' \| 'handoff'/);
    assert.equal(invocations('bad-protocol').length, 3);
    await assertNothingCorrupted(failed, 'bad-protocol');
  });

  test('a turn past its timeout: the process is killed and the task fails with TURN_TIMEOUT', async () => {
    // Time is the clock's, not the machine's: on a loaded machine a Python start alone can
    // take longer than the timeout. A worker on a manual clock runs the task; once turn 2's
    // process is known to be running, the clock moves past the 1.5 s timeout.
    await worker.stop();
    let failed: Run;
    let timed: Worker | null = null;
    try {
      const { id } = await submit(store, reg, 'hang', null);
      // Not behind the run's creation time, or the task would not be due on this clock.
      const clock = new ManualClock(Date.now());
      timed = new Worker({ store, registry: reg, clock, options: FAST_WORKER });
      const once = timed.runOnce();
      await until('turn 2 of the hanging agent is running', () => invocations('hang').length === 2, 60_000);
      assert.equal((await store.runs.get(id))?.state, 'running', 'nothing times out before the clock moves');
      clock.advance(1_500);
      await once;
      failed = (await store.runs.get(id))!;
      outcomes.set(id, failed.state);
    } finally {
      await timed?.stop();
      worker = await startWorker(store, reg);
    }
    assert.equal(failed.state, 'failed');
    assert.equal(failed.error!.code, 'TURN_TIMEOUT');
    const calls = invocations('hang');
    assert.deepEqual(
      calls.map((i) => [i.turn, i.attempt]),
      [
        [1, 1],
        [2, 1],
      ],
    );
    const pid = calls[1]!.pid;
    await until(`process ${pid} gone`, () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch (err) {
        return (err as NodeJS.ErrnoException).code === 'ESRCH';
      }
    });
    await assertNothingCorrupted(failed, 'hang');
  });

  test('a command that does not exist: dead at once, not retried', async () => {
    const failed = await run('missing', null);
    assert.equal(failed.state, 'failed');
    assert.equal(failed.error!.code, 'AGENT_FAILED');
    assert.equal(failed.error!.retryable, false);
    assert.match(failed.error!.message, /agent "missing": could not start ".*no-such-agent": .*ENOENT/);
    const task = (await store.tasks.get(failed.rootTaskId))!;
    assert.equal(task.state, 'dead');
    assert.equal(task.attempt, 1, 'maxAttempts is 3, but a missing executable is not retried');
    assert.deepEqual(await store.tasks.turns(task.id), []);
    const audit = await auditOf(store, failed.id);
    assert.equal(audit.filter((e) => e.kind === 'task.failed').length, 1);
    assert.equal(audit.filter((e) => e.kind === 'task.retry-scheduled').length, 0);

    await runPlanner('after missing');
    for (const [id, state] of outcomes) assert.equal((await store.runs.get(id))!.state, state, `run ${id} unchanged`);
  });
});
