// Secrets never leave Spine: known fake secrets are put in the environment, in agent
// URLs and in channel config; every failure path that carries text (a command agent
// that prints its environment and crashes, an HTTP agent whose URL has an API key, a
// function agent that throws a secret, an unset secret variable) is fired; then the
// whole store (the SQLite file with its WAL, or every row of the PostgreSQL schema)
// and every log line are searched for the secrets. Zero hits.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { consoleLogger } from '../../src/core/log.ts';
import { redact, REDACTED } from '../../src/core/redact.ts';
import { AgentError, toErrorInfo } from '../../src/core/errors.ts';
import { agentEnv } from '../../src/agents/command-agent.ts';
import { loadConfig } from '../../src/runtime/config.ts';
import type { Store } from '../../src/store/store.ts';
import { Worker } from '../../src/engine/worker.ts';
import { FAST_WORKER, TEST_DB, finished, forge, submit, tempStore } from '../helpers.ts';

const SECRETS = {
  llmKey: 'sk-fake-llm-key-7f3a9c1e5b',
  signing: 'fake-slack-signing-5e1d2c3b4a',
  botToken: 'xoxb-fake-bot-token-99881',
  dbPassword: 'fakeDbPass-4242aa',
  urlKey: 'fake-url-apikey-0c0ffee0',
  thrown: 'sk-fake-llm-key-7f3a9c1e5b',
};

describe('secrets never reach the store, the logs or an error', () => {
  let store: Store;
  let dir: string;
  let url: string;
  let cleanup: () => Promise<void>;
  const logged: string[] = [];
  const saved: Record<string, string | undefined> = {};
  const setEnv = (name: string, value: string) => {
    saved[name] = process.env[name];
    process.env[name] = value;
  };

  before(async () => {
    ({ store, dir, url, cleanup } = await tempStore());
    setEnv('FAKE_OPENAI_API_KEY', SECRETS.llmKey);
    setEnv('FAKE_SLACK_SIGNING_SECRET', SECRETS.signing);
    setEnv('FAKE_BOT_TOKEN', SECRETS.botToken);
    setEnv('SPINE_DB', `postgres://spine:${SECRETS.dbPassword}@db.internal:5432/spine`);
  });
  after(async () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await cleanup();
  });

  test('a command agent starts with the minimal environment plus what it declares', () => {
    const env = agentEnv({ env: { MODEL_KEY: { env: 'FAKE_OPENAI_API_KEY' }, MODE: 'test' }, inheritEnv: ['FAKE_BOT_TOKEN'] }, { SPINE_AGENT: 'a' });
    assert.equal(env.MODEL_KEY, SECRETS.llmKey, 'declared {env} is passed');
    assert.equal(env.FAKE_BOT_TOKEN, SECRETS.botToken, 'inheritEnv is passed');
    assert.equal(env.FAKE_SLACK_SIGNING_SECRET, undefined, 'undeclared secrets are not');
    assert.equal(env.SPINE_DB, undefined);
    assert.ok(env.PATH, 'PATH is kept');
    const bare = agentEnv({}, {});
    assert.deepEqual(Object.keys(bare).filter((k) => !['PATH', 'HOME', 'LANG', 'TZ'].includes(k)), []);
  });

  test('redact masks URL userinfo and query in free text', () => {
    assert.equal(redact('GET https://user:pw@api.example.com/v1/x?api_key=abc&b=2 failed'), 'GET https://user:***@api.example.com/v1/x?*** failed');
    assert.equal(redact('no url here'), 'no url here');
  });

  test('every failure path, then the store and the logs are searched: zero hits', async () => {
    writeFileSync(
      join(dir, 'leaky.py'),
      [
        'import json, os, sys',
        'json.load(sys.stdin)',
        // Prints its whole environment and whatever Spine's variables would be, then crashes.
        'print("\\n".join(f"{k}={v}" for k, v in os.environ.items()), file=sys.stderr)',
        `print("token was ${'${'}FAKE_BOT_TOKEN${'}'}", file=sys.stderr)`,
        'sys.exit(7)',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'thrower.mjs'),
      `export default () => { throw new Error('upstream said: bad key ' + process.env.FAKE_OPENAI_API_KEY + ' for https://u:${SECRETS.dbPassword}@x.test/'); };\n`,
    );
    writeFileSync(
      join(dir, 'spine.config.json5'),
      JSON.stringify({
        agents: {
          // It opts into the bot token, and prints it: declared secrets are still redacted on the way out.
          leaky: { kind: 'command', command: ['python3', 'leaky.py'], inheritEnv: ['FAKE_BOT_TOKEN'], retry: { maxAttempts: 1 } },
          remote: { kind: 'http', url: `http://127.0.0.1:9/turn?api_key=${SECRETS.urlKey}`, retries: 0, retry: { maxAttempts: 1 } },
          thrower: { kind: 'function', module: 'thrower.mjs', retry: { maxAttempts: 1 } },
          keyed: { kind: 'http', url: 'http://127.0.0.1:9/turn', headers: { Authorization: { env: 'FAKE_UNSET_VAR_XYZ' } }, retries: 0, retry: { maxAttempts: 1 } },
        },
        channels: { slack: { accounts: { T1: { signingSecret: { env: 'FAKE_SLACK_SIGNING_SECRET' }, botToken: { env: 'FAKE_BOT_TOKEN' } } } } },
      }),
    );
    chmodSync(join(dir, 'spine.config.json5'), 0o600);
    const config = await loadConfig(join(dir, 'spine.config.json5'));
    const log = consoleLogger('spine');
    const orig = { log: console.log, error: console.error };
    console.log = (...a: unknown[]) => void logged.push(a.join(' '));
    console.error = (...a: unknown[]) => void logged.push(a.join(' '));
    const worker = new Worker({ store, registry: config.registry, options: FAST_WORKER, log });
    try {
      await worker.start();
      for (const agent of ['leaky', 'remote', 'thrower', 'keyed']) {
        const run = await submit(store, config.registry, agent, { q: 'x' });
        const done = await finished(store, run.id);
        assert.equal(done.state, 'failed', `${agent} fails`);
        log.error('run failed', { run: done.id, error: done.error });
      }
      // An error built from a secret-bearing message, and a raw throw, are masked too.
      log.warn(new AgentError('x', `crash: ${SECRETS.signing}`).message);
      log.warn(toErrorInfo(new Error(`raw ${SECRETS.botToken}`)).message);
    } finally {
      await worker.stop();
      console.log = orig.log;
      console.error = orig.error;
    }
    const stored = await storeText(store, url);
    assert.ok(stored.includes(REDACTED), 'the failures were stored, masked');
    const haystacks = { store: stored, logs: logged.join('\n') };
    for (const [where, text] of Object.entries(haystacks)) {
      for (const [name, secret] of Object.entries(SECRETS)) assert.ok(!text.includes(secret), `${name} found in ${where}`);
    }
  });
});

/** Everything the store holds, as text: the SQLite file and its WAL, or every row of the PostgreSQL schema. */
async function storeText(store: Store, url: string): Promise<string> {
  if (TEST_DB === 'sqlite') {
    const path = url.replace(/^sqlite:/, '');
    return [path, `${path}-wal`].filter(existsSync).map((p) => readFileSync(p).toString('latin1')).join('\n');
  }
  const tables = await forge<{ table_name: string }>(store, `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`);
  const parts: string[] = [];
  for (const { table_name } of tables.rows) {
    const rows = await forge(store, `SELECT t::text AS row FROM "${table_name}" t`);
    parts.push(...rows.rows.map((r) => String((r as { row: unknown }).row)));
  }
  return parts.join('\n');
}
