// Routing and session keys as pure functions: binding precedence over every tier,
// ties by config order, the unroutable case, globs, config checks, session scopes
// and keys, and the reset policies at fixed instants (no store, no clock).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FieldIssue } from '../src/core/errors.ts';
import type { Envelope } from '../src/core/envelope.ts';
import { bindingSchema, compileBindings, route, TIERS, type BindingConfig, type RouteDecision } from '../src/routing/bindings.ts';
import { compileSessions, scopeFor, sessionKey, sessionsSchema, shouldReset, type ResetPolicy, type SessionScope } from '../src/routing/sessions.ts';

function env(over: Partial<Envelope> = {}): Envelope {
  return {
    channel: 'slack',
    account: 'acme',
    peer: { kind: 'dm', id: 'U-1' },
    parentPeer: null,
    sender: null,
    thread: null,
    text: 'hi',
    data: null,
    idempotencyKey: 'k',
    replyTo: null,
    ...over,
  };
}

const AGENTS = ['catchall', 'slack-agent', 'acme-agent', 'eng', 'eng-admin', 'threads', 'parents', 'vip', 'first', 'second', 'third'];

function compile(raw: BindingConfig[], agents: readonly string[] = AGENTS) {
  const issues: FieldIssue[] = [];
  const bindings = compileBindings(raw, agents, issues);
  return { bindings, issues };
}

function ok(d: RouteDecision): Extract<RouteDecision, { ok: true }> {
  if (!d.ok) assert.fail(`expected a route, got UNROUTABLE: ${d.why}`);
  return d;
}

// One binding per tier (two for the thread tier: thread and parentPeer), listed least
// specific first so that config order can never be what decides between tiers.
const TABLE: BindingConfig[] = [
  { id: 'b-default', agent: 'catchall' },
  { id: 'b-channel', match: { channel: 'slack' }, agent: 'slack-agent' },
  { id: 'b-account', match: { account: 'acme' }, agent: 'acme-agent' },
  { id: 'b-group', match: { group: 'C-ENG' }, agent: 'eng' },
  { id: 'b-roles', match: { group: 'C-ENG', roles: ['admin', 'owner'] }, agent: 'eng-admin' },
  { id: 'b-thread', match: { thread: 'T-42' }, agent: 'threads' },
  { id: 'b-parent', match: { parentPeer: 'C-PARENT' }, agent: 'parents' },
  { id: 'b-peer', match: { peer: 'U-VIP' }, agent: 'vip' },
];

describe('binding precedence', () => {
  const { bindings, issues } = compile(TABLE);

  it('compiles each binding into its tier, keeping config order', () => {
    assert.deepEqual(issues, []);
    assert.deepEqual(
      bindings.map((b) => [b.id, b.tier, b.order]),
      [
        ['b-default', 'default', 0],
        ['b-channel', 'channel', 1],
        ['b-account', 'account', 2],
        ['b-group', 'group', 3],
        ['b-roles', 'group+roles', 4],
        ['b-thread', 'thread', 5],
        ['b-parent', 'thread', 6],
        ['b-peer', 'peer', 7],
      ],
    );
    assert.deepEqual(new Set(bindings.map((b) => b.tier)), new Set(TIERS), 'the table covers every tier');
  });

  // Each envelope matches its expected binding and (as far as the fields allow) every
  // less specific one too, so the winner is decided by precedence alone.
  const cases: Array<{ name: string; e: Envelope; winner: string; agent: string; matched: string[] }> = [
    {
      name: 'exact peer beats thread, parent peer, account, channel and default',
      e: env({ peer: { kind: 'dm', id: 'U-VIP' }, thread: 'T-42', parentPeer: 'C-PARENT', sender: { id: 'U-VIP', roles: ['admin'] } }),
      winner: 'b-peer',
      agent: 'vip',
      matched: ['b-default', 'b-channel', 'b-account', 'b-thread', 'b-parent', 'b-peer'],
    },
    {
      name: 'thread beats group+roles, group, account, channel and default',
      e: env({ peer: { kind: 'group', id: 'C-ENG' }, thread: 'T-42', sender: { id: 'U-1', roles: ['admin'] } }),
      winner: 'b-thread',
      agent: 'threads',
      matched: ['b-default', 'b-channel', 'b-account', 'b-group', 'b-roles', 'b-thread'],
    },
    {
      name: 'parent peer is the thread tier too',
      e: env({ peer: { kind: 'channel', id: 'C-ENG' }, parentPeer: 'C-PARENT', sender: { id: 'U-1', roles: ['owner'] } }),
      winner: 'b-parent',
      agent: 'parents',
      matched: ['b-default', 'b-channel', 'b-account', 'b-group', 'b-roles', 'b-parent'],
    },
    {
      name: 'group+roles beats group (any one of the roles will do)',
      e: env({ peer: { kind: 'group', id: 'C-ENG' }, sender: { id: 'U-1', roles: ['member', 'owner'] } }),
      winner: 'b-roles',
      agent: 'eng-admin',
      matched: ['b-default', 'b-channel', 'b-account', 'b-group', 'b-roles'],
    },
    {
      name: 'group without the roles',
      e: env({ peer: { kind: 'group', id: 'C-ENG' }, sender: { id: 'U-1', roles: ['member'] } }),
      winner: 'b-group',
      agent: 'eng',
      matched: ['b-default', 'b-channel', 'b-account', 'b-group'],
    },
    {
      name: 'group with no sender at all',
      e: env({ peer: { kind: 'group', id: 'C-ENG' } }),
      winner: 'b-group',
      agent: 'eng',
      matched: ['b-default', 'b-channel', 'b-account', 'b-group'],
    },
    {
      name: 'a DM whose id equals the group id is not the group',
      e: env({ peer: { kind: 'dm', id: 'C-ENG' }, sender: { id: 'C-ENG', roles: ['admin'] } }),
      winner: 'b-account',
      agent: 'acme-agent',
      matched: ['b-default', 'b-channel', 'b-account'],
    },
    { name: 'account beats channel', e: env(), winner: 'b-account', agent: 'acme-agent', matched: ['b-default', 'b-channel', 'b-account'] },
    { name: 'channel beats default', e: env({ account: 'other' }), winner: 'b-channel', agent: 'slack-agent', matched: ['b-default', 'b-channel'] },
    { name: 'default catches the rest', e: env({ channel: 'telegram', account: 'other' }), winner: 'b-default', agent: 'catchall', matched: ['b-default'] },
  ];

  for (const c of cases) {
    it(c.name, () => {
      const d = ok(route(bindings, c.e));
      assert.equal(d.binding.id, c.winner);
      assert.equal(d.agent, c.agent);
      assert.ok(d.why.startsWith(`${c.winner} (tier ${d.binding.tier}:`), d.why);
      assert.doesNotMatch(d.why, /lost on config order/, 'no tie: every binding is in its own tier');
      // Every binding is a candidate, in config order, with the right verdict.
      assert.deepEqual(
        d.candidates.map((x) => x.binding),
        TABLE.map((b) => b.id),
      );
      assert.deepEqual(
        d.candidates.filter((x) => x.matched).map((x) => x.binding),
        c.matched,
      );
      // The same envelope and config always give the same decision (law 1).
      assert.deepEqual(route(bindings, structuredClone(c.e)), d);
    });
  }

  it('a binding that fails says which field failed', () => {
    const d = ok(route(bindings, env({ peer: { kind: 'group', id: 'C-ENG' }, sender: { id: 'U-1', roles: ['member'] } })));
    const why = Object.fromEntries(d.candidates.map((c) => [c.binding, c.why]));
    assert.equal(why['b-roles'], 'sender has none of the roles admin, owner');
    assert.equal(why['b-peer'], 'peer C-ENG ≠ U-VIP');
    assert.equal(why['b-thread'], 'thread (none) ≠ T-42');
    assert.equal(why['b-group'], 'group=C-ENG');
  });
});

describe('ties within a tier', () => {
  const tie: BindingConfig[] = [
    { id: 'wide', match: { peer: 'U-*' }, agent: 'vip' },
    { id: 'first', match: { channel: 'sl*' }, agent: 'first' },
    { id: 'second', match: { channel: 'slack' }, agent: 'second' },
    { id: 'third', match: { channel: '*' }, agent: 'third' },
  ];

  it('config order decides, not how specific the pattern looks; the decision names the losers', () => {
    const { bindings } = compile(tie.slice(1));
    const d = ok(route(bindings, env()));
    assert.equal(d.binding.id, 'first');
    assert.equal(d.agent, 'first');
    assert.match(d.why, /^first \(tier channel: channel=sl\*\); second, third matched the same tier and lost on config order$/);
  });

  it('reordering the config changes the winner', () => {
    const { bindings } = compile([tie[3]!, tie[2]!, tie[1]!]);
    const d = ok(route(bindings, env()));
    assert.equal(d.binding.id, 'third');
    assert.match(d.why, /second, first matched the same tier and lost on config order/);
  });

  it('a more specific tier later in the config still wins, and earlier lower-tier matches are not reported as ties', () => {
    const { bindings } = compile([tie[1]!, tie[2]!, tie[0]!, { id: 'also-peer', match: { peer: 'U-1' }, agent: 'second' }]);
    const d = ok(route(bindings, env()));
    assert.equal(d.binding.id, 'wide');
    assert.match(d.why, /^wide \(tier peer: peer=U-\*\); also-peer matched the same tier and lost on config order$/);
    assert.doesNotMatch(d.why, /first|second,/);
  });

  it('two default bindings: the first wins', () => {
    const { bindings } = compile([
      { id: 'd1', agent: 'first' },
      { id: 'd2', match: {}, agent: 'second' },
    ]);
    const d = ok(route(bindings, env({ channel: 'anything' })));
    assert.equal(d.binding.id, 'd1');
    assert.match(d.why, /matches everything\); d2 matched the same tier/);
  });
});

describe('no match and no default: UNROUTABLE', () => {
  it('nothing guesses; the reason lists why each binding failed', () => {
    const { bindings } = compile(TABLE.filter((b) => b.id !== 'b-default'));
    const e = env({ channel: 'telegram', account: 'bot-1', peer: { kind: 'dm', id: 'U-2' } });
    const d = route(bindings, e);
    assert.equal(d.ok, false);
    if (d.ok) return;
    assert.equal(d.code, 'UNROUTABLE');
    assert.match(d.why, /^no binding matches channel=telegram account=bot-1 peer=dm:U-2 and there is no default binding/);
    for (const reason of [
      'b-channel: channel telegram ≠ slack',
      'b-account: account bot-1 ≠ acme',
      'b-group: group (none) ≠ C-ENG',
      'b-roles: group (none) ≠ C-ENG; sender has none of the roles admin, owner',
      'b-thread: thread (none) ≠ T-42',
      'b-parent: parentPeer (none) ≠ C-PARENT',
      'b-peer: peer U-2 ≠ U-VIP',
    ]) {
      assert.ok(d.why.includes(reason), `why names "${reason}": ${d.why}`);
    }
    assert.equal(d.candidates.length, 7);
    assert.ok(d.candidates.every((c) => !c.matched));
  });

  it('no bindings at all is unroutable too', () => {
    const d = route([], env());
    assert.equal(d.ok, false);
    assert.match(d.why, /no bindings are configured/);
    assert.deepEqual(d.candidates, []);
  });

  it('a binding matches only when every field it names matches', () => {
    const { bindings } = compile([{ id: 'both', match: { channel: 'slack', account: 'acme', peer: 'U-1' }, agent: 'vip' }]);
    assert.equal(route(bindings, env()).ok, true);
    const d = route(bindings, env({ account: 'other' }));
    assert.equal(d.ok, false);
    assert.equal(d.candidates[0]!.why, 'account other ≠ acme');
  });
});

describe('glob matches', () => {
  const { bindings } = compile([
    { id: 'eng-rooms', match: { group: 'C-ENG-*' }, agent: 'eng' },
    { id: 'dotted', match: { account: 'a.b' }, agent: 'acme-agent' },
    { id: 'any-slack', match: { channel: 'slack*' }, agent: 'slack-agent' },
  ]);
  const pick = (e: Envelope) => {
    const d = route(bindings, e);
    return d.ok ? d.binding.id : null;
  };

  it('`*` matches any run of characters, anchored at both ends', () => {
    assert.equal(pick(env({ channel: 'x', peer: { kind: 'group', id: 'C-ENG-ops' } })), 'eng-rooms');
    assert.equal(pick(env({ channel: 'x', peer: { kind: 'group', id: 'C-ENG-' } })), 'eng-rooms');
    assert.equal(pick(env({ channel: 'x', peer: { kind: 'group', id: 'C-ENGX' } })), null);
    assert.equal(pick(env({ channel: 'x', peer: { kind: 'group', id: 'XC-ENG-ops' } })), null);
    assert.equal(pick(env({ channel: 'slack-enterprise', account: 'z' })), 'any-slack');
    assert.equal(pick(env({ channel: 'myslack', account: 'z' })), null);
  });

  it('other regex characters are literal', () => {
    assert.equal(pick(env({ channel: 'x', account: 'a.b' })), 'dotted');
    assert.equal(pick(env({ channel: 'x', account: 'aXb' })), null);
  });
});

describe('binding config checks', () => {
  it('roles require a group', () => {
    const { bindings, issues } = compile([{ id: 'r', match: { roles: ['admin'] }, agent: 'eng' }]);
    assert.deepEqual(issues, [{ path: 'bindings.0.match.roles', message: 'roles are matched within a group: add match.group' }]);
    assert.equal(bindings[0]!.tier, 'default', 'which is why it is refused: it would otherwise catch everything');
  });

  it('names exactly one of agent or router, known agents only, unique ids', () => {
    const { issues } = compile([
      { id: 'x', match: { channel: 'a' } },
      { id: 'x', match: { channel: 'b' }, agent: 'eng', router: { agent: 'eng', candidates: ['vip'], fallback: 'vip' } },
      { match: { channel: 'c' }, agent: 'ghost' },
      { match: { channel: 'd' }, router: { agent: 'triage', candidates: ['eng', 'nobody'], fallback: 'nope' } },
    ]);
    assert.deepEqual(issues, [
      { path: 'bindings.0.agent', message: 'a binding names exactly one of agent or router' },
      { path: 'bindings.1.id', message: 'duplicate binding id "x"' },
      { path: 'bindings.1.agent', message: 'a binding names exactly one of agent or router' },
      { path: 'bindings.2.agent', message: 'unknown agent "ghost"' },
      { path: 'bindings.3.router.agent', message: 'unknown agent "triage"' },
      { path: 'bindings.3.router.fallback', message: 'unknown agent "nope"' },
      { path: 'bindings.3.router.candidates.1', message: 'unknown agent "nobody"' },
    ]);
  });

  it('unnamed bindings are named by position; a router binding routes to its router agent', () => {
    const { bindings, issues } = compile([{ match: { channel: 'a' }, agent: 'eng' }, { router: { agent: 'vip', candidates: ['eng'], fallback: 'eng' } }]);
    assert.deepEqual(issues, []);
    assert.deepEqual(
      bindings.map((b) => b.id),
      ['binding-0', 'binding-1'],
    );
    const d = ok(route(bindings, env()));
    assert.equal(d.binding.id, 'binding-1');
    assert.equal(d.agent, 'vip');
  });

  it('the schema refuses unknown match fields and session scopes', () => {
    assert.equal(bindingSchema.safeParse({ match: { chanel: 'slack' }, agent: 'a' }).success, false);
    assert.equal(bindingSchema.safeParse({ agent: 'a', session: 'per-galaxy' }).success, false);
    assert.equal(bindingSchema.safeParse({ match: { roles: [] }, agent: 'a' }).success, false);
    assert.equal(bindingSchema.safeParse({ match: { channel: 'slack', peer: 'x', roles: ['a'] }, agent: 'a', session: 'thread' }).success, true);
  });
});

describe('session scopes and keys', () => {
  const defaults = compileSessions(undefined, []);

  it('defaults: per-channel-peer DMs, 20 messages of history, no reset', () => {
    assert.deepEqual(defaults, { dmScope: 'per-channel-peer', historyLimit: 20, reset: { mode: 'none' } });
  });

  it('every scope has its documented key', () => {
    const e = env({ channel: 'telegram', account: 'bot-1', peer: { kind: 'group', id: 'G-7' }, thread: 'T-9' });
    const keys: Record<SessionScope, string> = {
      main: 'agent:helper:main',
      'per-peer': 'agent:helper:peer:G-7',
      'per-channel-peer': 'agent:helper:telegram:peer:G-7',
      'per-account-channel-peer': 'agent:helper:telegram:bot-1:peer:G-7',
      group: 'agent:helper:telegram:group:G-7',
      thread: 'agent:helper:telegram:thread:G-7:T-9',
      isolated: 'agent:helper:isolated:env_123',
    };
    for (const [scope, key] of Object.entries(keys)) assert.equal(sessionKey('helper', scope as SessionScope, e, 'env_123'), key, scope);
  });

  it('a DM takes the configured dmScope', () => {
    const e = env({ channel: 'slack', account: 'T1', peer: { kind: 'dm', id: 'U-5' } });
    const expected = {
      main: 'agent:a:main',
      'per-peer': 'agent:a:peer:U-5',
      'per-channel-peer': 'agent:a:slack:peer:U-5',
      'per-account-channel-peer': 'agent:a:slack:T1:peer:U-5',
    } as const;
    for (const [dmScope, key] of Object.entries(expected)) {
      const settings = compileSessions({ dmScope: dmScope as keyof typeof expected }, []);
      const scope = scopeFor(e, null, settings);
      assert.equal(scope, dmScope);
      assert.equal(sessionKey('a', scope, e, 'env_1'), key);
    }
  });

  it('groups and threads get their own scopes; cron and webhooks are isolated; a binding scope overrides all', () => {
    assert.equal(scopeFor(env({ peer: { kind: 'group', id: 'G' } }), null, defaults), 'group');
    assert.equal(scopeFor(env({ peer: { kind: 'channel', id: 'C' } }), null, defaults), 'group');
    assert.equal(scopeFor(env({ peer: { kind: 'channel', id: 'C' }, thread: 'T' }), null, defaults), 'thread');
    assert.equal(scopeFor(env({ channel: 'cron' }), null, defaults), 'isolated');
    assert.equal(scopeFor(env({ channel: 'webhook', peer: { kind: 'group', id: 'G' } }), null, defaults), 'isolated');
    assert.equal(scopeFor(env({ channel: 'cron' }), 'main', defaults), 'main');
    assert.equal(scopeFor(env({ peer: { kind: 'group', id: 'G' } }), 'per-peer', defaults), 'per-peer');
    // Isolated keys differ per envelope, so no two envelopes share a lane.
    const e = env({ channel: 'webhook' });
    assert.notEqual(sessionKey('a', 'isolated', e, 'env_1'), sessionKey('a', 'isolated', e, 'env_2'));
  });

  it('config checks: timezone, limits and modes', () => {
    const issues: FieldIssue[] = [];
    compileSessions({ reset: { mode: 'daily', atHour: 4, timezone: 'Mars/Olympus' } }, issues);
    assert.deepEqual(issues, [{ path: 'sessions.reset.timezone', message: 'unknown IANA timezone "Mars/Olympus"' }]);
    assert.deepEqual(compileSessions({ reset: { mode: 'daily', atHour: 4 } }, []).reset, { mode: 'daily', atHour: 4, timezone: 'UTC' });
    assert.deepEqual(compileSessions({ reset: { mode: 'idle', idleMinutes: 90 } }, []).reset, { mode: 'idle', idleMs: 90 * 60_000 });
    assert.equal(sessionsSchema.safeParse({ reset: { mode: 'daily', atHour: 24 } }).success, false);
    assert.equal(sessionsSchema.safeParse({ reset: { mode: 'idle', idleMinutes: 0 } }).success, false);
    assert.equal(sessionsSchema.safeParse({ reset: { mode: 'weekly' } }).success, false);
    assert.equal(sessionsSchema.safeParse({ dmScope: 'group' }).success, false);
    assert.equal(sessionsSchema.safeParse({ historyLimit: -1 }).success, false);
    assert.equal(compileSessions({ historyLimit: 0 }, []).historyLimit, 0);
  });
});

describe('reset policies at fixed instants', () => {
  const at = (iso: string) => Date.parse(iso);
  const MIN = 60_000;

  it('none never resets', () => {
    assert.equal(shouldReset({ mode: 'none' }, 0, at('2030-01-01T00:00:00Z')), false);
  });

  it('idle: resets once idle for the whole period', () => {
    const p: ResetPolicy = { mode: 'idle', idleMs: 30 * MIN };
    const last = at('2026-01-15T10:00:00Z');
    assert.equal(shouldReset(p, last, last + 30 * MIN - 1), false);
    assert.equal(shouldReset(p, last, last + 30 * MIN), true);
    assert.equal(shouldReset(p, last, last), false);
  });

  it('daily in UTC: resets when the hour passed since the last activity', () => {
    const p: ResetPolicy = { mode: 'daily', atHour: 4, timezone: 'UTC' };
    assert.equal(shouldReset(p, at('2026-01-15T03:59:00Z'), at('2026-01-15T04:00:00Z')), true);
    assert.equal(shouldReset(p, at('2026-01-15T03:00:00Z'), at('2026-01-15T03:59:59Z')), false);
    assert.equal(shouldReset(p, at('2026-01-15T04:00:00Z'), at('2026-01-16T03:59:00Z')), false, 'less than a day, no 04:00 in between');
    assert.equal(shouldReset(p, at('2026-01-15T04:00:00Z'), at('2026-01-16T04:00:00Z')), true);
    assert.equal(shouldReset(p, at('2026-01-10T12:00:00Z'), at('2026-01-15T02:00:00Z')), true, 'days idle');
  });

  it('daily in New York: the local hour counts, in winter (UTC-5) and summer (UTC-4)', () => {
    const p: ResetPolicy = { mode: 'daily', atHour: 4, timezone: 'America/New_York' };
    // Winter: 04:00 EST = 09:00Z.
    assert.equal(shouldReset(p, at('2026-01-15T08:30:00Z'), at('2026-01-15T08:59:00Z')), false);
    assert.equal(shouldReset(p, at('2026-01-15T08:30:00Z'), at('2026-01-15T09:00:00Z')), true);
    // The same instants with a UTC policy: 04:00Z was hours before, so no reset — the timezone matters.
    assert.equal(shouldReset({ mode: 'daily', atHour: 4, timezone: 'UTC' }, at('2026-01-15T08:30:00Z'), at('2026-01-15T09:00:00Z')), false);
    // Summer: 04:00 EDT = 08:00Z.
    assert.equal(shouldReset(p, at('2026-07-15T07:30:00Z'), at('2026-07-15T07:59:00Z')), false);
    assert.equal(shouldReset(p, at('2026-07-15T07:30:00Z'), at('2026-07-15T08:00:00Z')), true);
  });

  it('daily in a half-hour offset (Kolkata, UTC+5:30): 04:00 IST = 22:30Z the day before', () => {
    const p: ResetPolicy = { mode: 'daily', atHour: 4, timezone: 'Asia/Kolkata' };
    assert.equal(shouldReset(p, at('2026-01-14T22:20:00Z'), at('2026-01-14T22:29:00Z')), false);
    assert.equal(shouldReset(p, at('2026-01-14T22:20:00Z'), at('2026-01-14T22:30:00Z')), true);
    assert.equal(shouldReset(p, at('2026-01-14T22:20:00Z'), at('2026-01-14T22:45:00Z')), true);
    assert.equal(shouldReset(p, at('2026-01-14T22:31:00Z'), at('2026-01-14T22:59:00Z')), false);
    assert.equal(shouldReset(p, at('2026-01-14T22:31:00Z'), at('2026-01-15T22:29:00Z')), false);
  });

  it('daily at an hour a DST change skips: no reset on that day from the missing hour', () => {
    // 2026-03-08 in New York jumps from 02:00 to 03:00: there is no 02:00 that day.
    const p: ResetPolicy = { mode: 'daily', atHour: 2, timezone: 'America/New_York' };
    assert.equal(shouldReset(p, at('2026-03-08T14:00:00Z'), at('2026-03-08T16:00:00Z')), false);
    // The day after has a 02:00 EDT (06:00Z).
    assert.equal(shouldReset(p, at('2026-03-08T14:00:00Z'), at('2026-03-09T06:00:00Z')), true);
    assert.equal(shouldReset(p, at('2026-03-08T14:00:00Z'), at('2026-03-09T05:59:00Z')), false);
  });
});
