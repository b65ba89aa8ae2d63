// Structured logs: pino JSON lines with the fields a scope binds (worker, run, task,
// agent), secrets redacted; the CLI picks JSON off a terminal and human lines on one.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { withFields } from '../src/core/log.ts';
import { jsonLogger } from '../src/observability/json-log.ts';

describe('logs', () => {
  it('JSON lines carry the bound fields and the call fields; secrets are redacted', () => {
    const lines: string[] = [];
    const log = jsonLogger({ destination: { write: (s: string) => void lines.push(s) } });
    const task = withFields(withFields(log, { worker: 'wrk_1' }), { run: 'run_1', task: 'task_1', agent: 'researcher' });
    task.warn('lease lost', { token: 'spn_secret', attempt: 2 });
    const line = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.equal(line.level, 'warn');
    assert.equal(line.msg, 'lease lost');
    assert.deepEqual([line.worker, line.run, line.task, line.agent, line.attempt], ['wrk_1', 'run_1', 'task_1', 'researcher', 2]);
    assert.equal(line.token, '[redacted]');
    assert.match(String(line.time), /^\d{4}-\d\d-\d\dT/);
    assert.doesNotMatch(lines.join(''), /spn_secret/);
  });

  it('the CLI logs JSON on stderr when it is not a terminal, human lines with SPINE_LOG_FORMAT=pretty', () => {
    const script = `import { cliLogger } from './src/cli/log.ts'; cliLogger('spine').warn('hello', { run: 'run_1' });`;
    const run = (env: Record<string, string>) => spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, ...env }, encoding: 'utf8', cwd: new URL('..', import.meta.url).pathname });
    const json = run({ SPINE_LOG_FORMAT: '' });
    assert.equal(json.stdout, '');
    assert.equal((JSON.parse(json.stderr) as { run: string }).run, 'run_1');
    assert.equal(run({ SPINE_LOG_FORMAT: 'pretty' }).stderr.trim(), 'spine warn hello {"run":"run_1"}');
  });
});
