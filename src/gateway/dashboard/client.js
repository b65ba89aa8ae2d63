// The dashboard's page script: no build step, no dependencies. It reads the same API
// as any client (with the session cookie), and stays live on the resumable event
// stream: every event has a seq, the stream is resumed after the last seq seen, and a
// seq already seen is never applied twice.
/* global document, window, location, setTimeout, setInterval, clearInterval, URLSearchParams, FormData, EventSource, fetch, Node */
'use strict';
(function () {
  const boot = JSON.parse(document.getElementById('boot').textContent);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const view = document.getElementById('view');
  const conn = document.getElementById('conn');
  const panels = new Map(boot.panels.map((p) => [p.id, p]));
  const canOperate = boot.scopes.includes('admin') || boot.scopes.includes('operator');
  let cursor = null; // the last seq applied
  let route = { panel: 'runs', arg: null };
  let refreshTimer = null;
  let auditRows = [];
  /** The newest events this page applied: the audit view merges them with what it fetched, so none that arrive while it loads is lost. */
  const recent = [];
  let timers = [];
  // The last 10,000 seqs applied, in order (the stream's promise — no gap, no duplicate — made visible to tests and debugging).
  const applied = (window.spineApplied = []);
  // Per applied event: this page's clock minus the event's commit time (ms), the last 10,000.
  const lag = (window.spineLag = []);

  const el = (tag, attrs, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
    return e;
  };
  const time = (ms) => (ms ? new Date(ms).toLocaleTimeString() : '—');
  const age = (ms) => {
    if (ms === null || ms === undefined) return '—';
    const s = Math.round(ms / 1000);
    return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m ${s % 60}s` : `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  };
  const dollars = (micros) => `$${(micros / 1e6).toFixed(4)}`;
  const state = (s, attrs) => el('span', { class: `state s-${s}`, ...attrs }, s);
  const pick = (o, path) => path.split('.').reduce((a, k) => (a === null || a === undefined ? a : a[k]), o);
  const fmt = (v, f) => (f === 'time' ? time(v) : f === 'age' ? age(Date.now() - v) : f === 'dollars' ? dollars(v) : f === 'json' ? JSON.stringify(v) : f === 'state' ? state(v) : v === null || v === undefined ? '—' : String(v));
  const table = (heads, rows) => el('div', { class: 'scroll' }, el('table', {}, el('thead', {}, el('tr', {}, heads.map((h) => el('th', { scope: 'col' }, h)))), el('tbody', {}, rows)));

  async function api(path, init) {
    const headers = { accept: 'application/json', ...(init && init.body ? { 'content-type': 'application/json', 'x-csrf-token': csrf } : {}) };
    const r = await fetch(path, { credentials: 'same-origin', ...init, headers });
    if (r.status === 401) {
      location.href = '/';
      throw new Error('signed out');
    }
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${r.status}`);
    return body;
  }

  // ── the live event stream ─────────────────────────────────────────────────
  let source = null;
  let retryMs = 500;
  function connect() {
    const url = cursor === null ? '/v1/events' : `/v1/events?after=${cursor}`;
    source = new EventSource(url, { withCredentials: true });
    source.onmessage = (m) => {
      const e = JSON.parse(m.data);
      if (cursor !== null && e.seq <= cursor) return; // seen: never applied twice
      cursor = e.seq;
      if (applied.push(e.seq) > 10000) applied.shift();
      if (lag.push(Date.now() - e.at) > 10000) lag.shift();
      apply(e);
    };
    source.addEventListener('ready', (m) => {
      const first = cursor === null;
      cursor = Math.max(cursor || 0, JSON.parse(m.data).seq);
      retryMs = 500;
      conn.textContent = `live · seq ${cursor}`;
      conn.className = 'live';
      document.body.dataset.cursor = String(cursor);
      // After a reconnect the backlog has been applied event by event; a first connect loads the view.
      if (first) render();
    });
    source.addEventListener('end', () => reconnect());
    source.onerror = () => reconnect();
  }
  function reconnect() {
    if (source) source.close();
    source = null;
    conn.textContent = 'reconnecting…';
    conn.className = 'down';
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 5000);
  }

  /** One event: patch what shows it at once, then refresh the view if the event is one it follows. */
  function apply(e) {
    document.body.dataset.cursor = String(e.seq);
    recent.push(e);
    if (recent.length > 200) recent.shift();
    conn.textContent = `live · seq ${e.seq}`;
    const st = e.kind.startsWith('task.') ? e.kind.slice(5) : null;
    if (st && e.taskId) for (const n of document.querySelectorAll(`[data-task-state="${e.taskId}"]`)) patchState(n, st);
    const rs = e.kind.startsWith('run.') ? e.kind.slice(4) : null;
    if (rs && e.runId && rs !== 'created') for (const n of document.querySelectorAll(`[data-run-state="${e.runId}"]`)) patchState(n, rs);
    if (route.panel === 'audit') appendAudit(e);
    const p = panels.get(route.panel);
    if (p && p.live.some((k) => (k.endsWith('.') || k === '' ? e.kind.startsWith(k) : e.kind === k))) scheduleRefresh();
  }
  function patchState(n, s) {
    if (!['queued', 'leased', 'running', 'waiting', 'retry-scheduled', 'succeeded', 'failed', 'escalated', 'dead', 'cancelled'].includes(s)) return;
    n.textContent = s;
    n.className = `state s-${s}`;
  }
  function scheduleRefresh() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      render(true);
    }, 150);
  }

  // ── views ─────────────────────────────────────────────────────────────────
  const renderers = {
    async runs(p, arg) {
      if (arg) return runTree(arg);
      const q = new URLSearchParams(location.hash.split('?')[1] || '');
      const params = new URLSearchParams({ limit: '50' });
      if (q.get('state')) params.set('state', q.get('state'));
      if (q.get('agent')) params.set('agent', q.get('agent'));
      const { runs } = await api(`/v1/runs?${params}`);
      const filter = el(
        'form',
        { class: 'row', role: 'search', onsubmit: (ev) => { ev.preventDefault(); const f = new FormData(ev.target); const s = new URLSearchParams(); for (const k of ['state', 'agent']) if (f.get(k)) s.set(k, f.get(k)); location.hash = `#/runs?${s}`; } },
        el('label', { for: 'f-state' }, 'state'),
        el('select', { id: 'f-state', name: 'state' }, ['', 'running', 'succeeded', 'failed', 'cancelled'].map((s) => el('option', { value: s, selected: q.get('state') === s }, s || 'any'))),
        el('label', { for: 'f-agent' }, 'agent'),
        el('input', { id: 'f-agent', name: 'agent', value: q.get('agent') || '', size: 12 }),
        el('button', { type: 'submit' }, 'Filter'),
      );
      return [
        el('h2', {}, 'Runs'),
        filter,
        table(['run', 'agent', 'state', 'started', 'took'], runs.map((r) => el('tr', { 'data-run': r.id }, el('td', {}, el('a', { href: `#/runs/${r.id}` }, r.id)), el('td', {}, r.agent), el('td', {}, state(r.state, { 'data-run-state': r.id })), el('td', {}, time(r.createdAt)), el('td', {}, r.finishedAt ? age(r.finishedAt - r.createdAt) : '…')))),
      ];
    },
    async timeline(p, arg) {
      const runId = arg || (await api('/v1/runs?limit=1')).runs.map((r) => r.id)[0];
      if (!runId) return [el('h2', {}, 'Timeline'), el('p', { class: 'muted' }, 'No runs yet.')];
      const [{ run, tasks }, { events }] = await Promise.all([api(`/v1/runs/${runId}`), api(`/v1/audit?run=${runId}&limit=1000`)]);
      const t0 = run.createdAt;
      const t1 = Math.max(run.finishedAt || Date.now(), t0 + 1);
      const pct = (t) => `${(((t - t0) / (t1 - t0)) * 100).toFixed(2)}%`;
      const rows = tasks.map((t) => {
        const spans = [];
        const open = {};
        for (const e of events.filter((x) => x.taskId === t.id)) {
          if (e.kind === 'task.running' || e.kind === 'turn.committed') open.turn = e.at;
          if (e.kind === 'turn.answered' && open.turn !== undefined) { spans.push(['turn', open.turn, e.at]); delete open.turn; }
          if (e.kind === 'effect.started') open.effect = e.at;
          if ((e.kind === 'effect.completed' || e.kind === 'effect.failed') && open.effect !== undefined) { spans.push(['effect', open.effect, e.at]); delete open.effect; }
          if (e.kind === 'task.waiting') open.wait = e.at;
          if ((e.kind === 'task.joined' || e.kind === 'task.queued' || e.kind === 'task.leased') && open.wait !== undefined) { spans.push(['wait', open.wait, e.at]); delete open.wait; }
        }
        if (open.wait !== undefined) spans.push(['wait', open.wait, t1]);
        const bar = el('div', { class: 'tl', role: 'img', 'aria-label': `${t.agent}: ${spans.map((s) => `${s[0]} ${s[2] - s[1]} ms`).join(', ') || 'idle'}` }, spans.map(([k, a, b]) => el('span', { class: k, style: `left:${pct(a)};width:calc(${pct(b)} - ${pct(a)})`, title: `${k} ${b - a} ms` })));
        return el('tr', {}, el('td', {}, '· '.repeat(t.depth), t.agent), el('td', {}, state(t.state, { 'data-task-state': t.id })), el('td', { style: 'width:60%' }, bar));
      });
      return [el('h2', {}, `Timeline of ${runId}`), el('p', { class: 'muted' }, `${t1 - t0} ms · blue: turns · green: effects · amber: waits · grey: idle`), table(['task', 'state', 'time'], rows)];
    },
    async approvals() {
      const [{ approvals: pending }, { approvals: all }] = await Promise.all([api('/v1/approvals?state=pending&limit=100'), api('/v1/approvals?state=all&limit=50')]);
      const cards = pending.map((a) => {
        const reason = el('input', { id: `reason-${a.id}`, placeholder: 'reason', 'aria-label': `reason for ${a.id}` });
        const decide = (approve) => async () => {
          try {
            await api(`/v1/approvals/${a.id}/decision`, { method: 'POST', body: JSON.stringify({ approve, ...(reason.value ? { reason: reason.value } : {}) }) });
            render(true);
          } catch (err) {
            msg.textContent = err.message;
          }
        };
        const msg = el('p', { class: 'err', role: 'alert' });
        const countdown = el('span', { 'data-expires': a.expiresAt || '' }, a.expiresAt ? `expires in ${age(a.expiresAt - Date.now())}` : 'no expiry');
        return el(
          'div',
          { class: 'card', 'data-approval': a.id },
          el('div', {}, el('strong', {}, a.agent), ' wants ', el('code', {}, JSON.stringify(a.action))),
          el('div', { class: 'muted' }, a.reason, ' · rule ', a.ruleId || '—', ' · approvers ', a.approvers, ' · on expiry ', a.onExpiry ? JSON.stringify(a.onExpiry) : 'deny', ' · ', countdown),
          canOperate ? el('div', { class: 'row' }, reason, el('button', { class: 'primary', onclick: decide(true) }, 'Approve'), el('button', { onclick: decide(false) }, 'Deny')) : el('p', { class: 'muted' }, 'Read-only: deciding needs an operator token.'),
          msg,
        );
      });
      timers.push(setInterval(() => { for (const n of document.querySelectorAll('[data-expires]')) if (n.dataset.expires) n.textContent = `expires in ${age(Number(n.dataset.expires) - Date.now())}`; }, 1000));
      return [
        el('h2', {}, `Approvals inbox (${pending.length})`),
        pending.length ? cards : el('p', { class: 'muted' }, 'Nothing waits for a decision.'),
        el('h3', {}, 'History'),
        table(['approval', 'agent', 'state', 'decided by', 'reason'], all.filter((a) => a.state !== 'pending').map((a) => el('tr', {}, el('td', {}, a.id), el('td', {}, a.agent), el('td', {}, state(a.state)), el('td', {}, a.decidedBy || '—'), el('td', {}, a.decisionReason || '—')))),
      ];
    },
    async cost() {
      const o = await api('/v1/observe');
      return [
        el('h2', {}, 'Cost'),
        el('h3', {}, 'Per ceiling'),
        table(['ceiling', 'settled', 'reserved', 'tokens'], o.observed.budgets.map((b) => el('tr', {}, el('td', {}, b.key), el('td', {}, dollars(b.spentMicros)), el('td', {}, dollars(b.reservedMicros)), el('td', {}, b.spentTokens)))),
        el('h3', {}, 'Per run and agent'),
        table(['run', 'agent', 'settled', 'reserved', 'tokens'], o.observed.spend.map((s) => el('tr', {}, el('td', {}, el('a', { href: `#/runs/${s.runId}` }, s.runId)), el('td', {}, s.agent), el('td', {}, dollars(s.settledMicros)), el('td', {}, dollars(s.reservedMicros)), el('td', {}, s.settledTokens)))),
      ];
    },
    async health() {
      const o = await api('/v1/observe');
      const h = o.health;
      const stat = (label, v) => el('div', { class: 'card' }, el('div', { class: 'muted' }, label), el('div', { class: 'big' }, v));
      const depth = {};
      for (const t of o.observed.tasks) depth[t.agent] = (depth[t.agent] || 0) + (t.state === 'queued' || t.state === 'retry-scheduled' ? t.count : 0);
      return [
        el('h2', {}, 'Health'),
        el('div', { class: 'grid' }, stat('workers alive', h.workersAlive), stat('queued', (h.tasksByState.queued || 0) + (h.tasksByState['retry-scheduled'] || 0)), stat('running', (h.tasksByState.running || 0) + (h.tasksByState.leased || 0)), stat('expired leases', h.stuckLeases.count), stat('queue lag', h.oldestReadyAt ? age(o.at - h.oldestReadyAt) : '0s'), stat('approvals pending', h.pendingApprovals), stat('outbox pending / dead', `${h.outbox.pending} / ${h.outbox.dead}`), stat('stream subscribers', o.subscribers)),
        el('h3', {}, 'Workers'),
        table(['worker', 'host', 'pid', 'started', 'heartbeat'], o.workers.map((w) => el('tr', {}, el('td', {}, w.id), el('td', {}, w.host), el('td', {}, w.pid), el('td', {}, time(w.startedAt)), el('td', {}, `${age(o.at - w.heartbeatAt)} ago`)))),
        el('h3', {}, 'Queue by agent'),
        table(['agent', 'queued'], Object.entries(depth).map(([a, n]) => el('tr', {}, el('td', {}, a), el('td', {}, n)))),
        h.stuckLeases.count ? el('p', { class: 'err' }, `Stuck (lease expired): ${h.stuckLeases.taskIds.join(', ')}`) : null,
      ];
    },
    async audit() {
      const { events } = await api(`/v1/audit?after=${Math.max(0, (cursor || 0) - 100)}&limit=100`);
      auditRows = events;
      return [el('h2', {}, 'Audit (live tail)'), table(['seq', 'at', 'kind', 'agent', 'task', 'data'], []), el('p', { class: 'muted' }, 'Newest first; the last 200 are kept.')];
    },
    async briefs(p, arg) {
      if (arg) return briefDetail(arg);
      const { briefs } = await api('/v1/briefs?limit=50');
      const decided = (b) => `${b.conflicts.filter((c) => c.decision).length}/${b.conflicts.length}`;
      return [
        el('h2', {}, 'Briefs'),
        briefs.length
          ? table(['brief', 'run', 'agent', 'state', 'parts', 'conflicts decided', 'lanes claimed', 'at'], briefs.map((b) => el('tr', { 'data-brief': b.id }, el('td', {}, el('a', { href: `#/briefs/${b.id}` }, b.id)), el('td', {}, el('a', { href: `#/runs/${b.runId}` }, b.runId)), el('td', {}, b.agent), el('td', {}, state(b.state)), el('td', {}, b.parts.length), el('td', {}, decided(b)), el('td', {}, `${b.claimed}/${b.lanes}`), el('td', {}, time(b.createdAt)))))
          : el('p', { class: 'muted' }, 'No briefs yet: a join whose lanes make claims writes one.'),
      ];
    },
    async gates(p) {
      const [{ breakers }, { verdicts }] = await Promise.all([api('/v1/breakers'), api(p.source)]);
      return [
        el('h2', {}, 'Gates and breakers'),
        el('h3', {}, 'Breakers'),
        breakers.length
          ? table(['breaker', 'state', 'failures / calls', 'probe at', 'last error'], breakers.map((b) => el('tr', { 'data-breaker': b.key }, el('td', {}, b.key), el('td', {}, state(b.state)), el('td', {}, `${b.failures} / ${b.calls}`), el('td', {}, time(b.retryAt)), el('td', { class: 'muted' }, b.lastError || '—'))))
          : el('p', { class: 'muted' }, 'No breaker has seen a failure.'),
        el('h3', {}, 'Latest verdicts'),
        verdicts.length
          ? table(['at', 'gate', 'crossing', 'agent', 'verdict', 'outcome', 'reasons'], verdicts.map((v) => el('tr', { 'data-verdict': v.seq }, el('td', {}, time(v.at)), el('td', {}, v.gate, v.mode === 'shadow' ? el('span', { class: 'muted' }, ' (shadow)') : null), el('td', {}, `${v.crossing} ${v.name}`), el('td', {}, v.runId ? el('a', { href: `#/runs/${v.runId}` }, v.agent || v.runId) : v.agent || '—'), el('td', {}, state(v.verdict)), el('td', {}, state(v.outcome)), el('td', { class: 'muted' }, v.reasons.join('; ')))))
          : el('p', { class: 'muted' }, 'No gate has judged a crossing yet.'),
      ];
    },
    async memory() {
      const q = new URLSearchParams(location.hash.split('?')[1] || '');
      const words = q.get('q') || '';
      const [found, { conflicts }] = await Promise.all([words ? api(`/v1/memory/search?${new URLSearchParams({ q: words, k: '50' })}`) : { hits: [] }, api('/v1/memory/conflicts?state=open&limit=50')]);
      const form = el(
        'form',
        { class: 'row', role: 'search', onsubmit: (ev) => { ev.preventDefault(); location.hash = `#/memory?${new URLSearchParams({ q: new FormData(ev.target).get('q') || '' })}`; } },
        el('label', { for: 'f-q' }, 'search'),
        el('input', { id: 'f-q', name: 'q', value: words, size: 24 }),
        el('button', { type: 'submit' }, 'Search'),
      );
      const writer = (w) => (w.run ? el('a', { href: `#/why/${w.run}` }, `${w.agent || w.actor} · ${w.run}`) : w.agent || w.actor);
      return [
        el('h2', {}, 'Memory'),
        form,
        words
          ? table(['scope', 'key', 'v', 'value', 'written by', 'trust', 'score'], found.hits.map((h) => el('tr', { 'data-fact': h.fact.id }, el('td', {}, h.fact.scope), el('td', {}, h.fact.key), el('td', {}, h.fact.version), el('td', {}, h.fact.text || JSON.stringify(h.fact.value).slice(0, 200)), el('td', {}, writer(h.fact.writtenBy)), el('td', {}, h.fact.trust), el('td', {}, h.score.toFixed(3)))))
          : el('p', { class: 'muted' }, 'Search the facts your token may read.'),
        el('h3', {}, `Merge queue (${conflicts.length} open)`),
        conflicts.length ? table(['conflict', 'scope', 'key', 'expected / current', 'strategy', 'by'], conflicts.map((c) => el('tr', {}, el('td', {}, c.id), el('td', {}, c.scope), el('td', {}, c.key), el('td', {}, `${c.expectedVersion} / ${c.currentVersion}`), el('td', {}, c.strategy), el('td', {}, writer(c.writtenBy))))) : el('p', { class: 'muted' }, 'No write waits on a merge.'),
      ];
    },
    async why(p, arg) {
      const form = el(
        'form',
        { class: 'row', role: 'search', onsubmit: (ev) => { ev.preventDefault(); const id = new FormData(ev.target).get('id'); if (id) location.hash = `#/why/${encodeURIComponent(id)}`; } },
        el('label', { for: 'f-id' }, 'run, task, effect, approval or envelope'),
        el('input', { id: 'f-id', name: 'id', value: arg ? decodeURIComponent(arg) : '', size: 28 }),
        el('button', { type: 'submit' }, 'Why?'),
      );
      if (!arg) return [el('h2', {}, 'Why'), form, el('p', { class: 'muted' }, 'The causal chain behind a thing, each step with its audit events and whether the hash chain verifies them.')];
      const g = await api(`/v1/why/${arg}`);
      return [
        el('h2', {}, `Why ${g.target.kind} ${g.target.id}`),
        form,
        el('p', {}, 'audit chain: ', state(g.verdict), g.verified ? ' · every step verified' : ' · not every step could be verified'),
        el('ol', { class: 'tree', 'data-why': g.target.id }, g.steps.map((st) => el('li', { 'data-step': st.kind }, el('strong', {}, st.kind), ' ', st.kind === 'run' ? el('a', { href: `#/runs/${st.id}` }, st.id) : el('code', {}, st.id), el('div', { class: 'muted' }, st.summary), st.events.length ? el('details', {}, el('summary', {}, `${st.events.length} event(s)`), table(['seq', 'kind', 'at', 'verified'], st.events.map((e) => el('tr', {}, el('td', {}, e.seq), el('td', {}, e.kind), el('td', {}, time(e.at)), el('td', {}, e.verified ? 'yes' : 'no'))))) : null))),
      ];
    },
    async table(p) {
      const body = await api(p.source);
      const rows = pick(body, p.rows) || [];
      return [el('h2', {}, p.title), table(p.columns.map((c) => c.label), rows.map((r) => el('tr', {}, p.columns.map((c) => el('td', {}, fmt(pick(r, c.field), c.format))))))];
    },
  };

  function auditRow(e) {
    return el('tr', { 'data-seq': e.seq }, el('td', {}, e.seq), el('td', {}, time(e.at)), el('td', {}, e.kind), el('td', {}, e.agent || '—'), el('td', {}, e.taskId ? el('a', { href: `#/timeline/${e.runId}` }, e.taskId) : '—'), el('td', { class: 'muted' }, e.data ? JSON.stringify(e.data).slice(0, 160) : ''));
  }
  function appendAudit(e) {
    const tbody = view.querySelector('tbody');
    if (!tbody || tbody.querySelector(`[data-seq="${e.seq}"]`)) return;
    tbody.prepend(auditRow(e));
    while (tbody.children.length > 200) tbody.lastChild.remove();
  }

  async function briefDetail(id) {
    const { brief: b } = await api(`/v1/briefs/${encodeURIComponent(id)}`);
    const from = (srcs) => srcs.map((f) => f.agent).join(', ');
    const val = (v) => el('code', {}, JSON.stringify(v).slice(0, 300));
    return [
      el('h2', {}, 'Brief ', b.id, ' ', state(b.state)),
      el('p', { class: 'muted' }, `${b.agent} · run `, el('a', { href: `#/runs/${b.runId}` }, b.runId), ` · ${b.claimed}/${b.lanes} lanes claimed · digest ${b.digest || '—'}`),
      el('h3', {}, 'Parts'),
      table(['key', 'status', 'value', 'from'], b.parts.map((x) => el('tr', {}, el('td', {}, x.key), el('td', {}, x.status), el('td', {}, val(x.value)), el('td', {}, from(x.from))))),
      el('h3', {}, 'Conflicts'),
      b.conflicts.length
        ? table(['key', 'candidates', 'decision', 'by'], b.conflicts.map((c) => el('tr', { 'data-conflict': c.key }, el('td', {}, c.key), el('td', {}, c.candidates.map((k) => el('div', {}, `${from(k.from)}: `, val(k.value)))), el('td', {}, c.decision ? [`${c.decision.strategy}: `, val(c.decision.value)] : c.unresolved ? state('unresolved') : state('pending')), el('td', {}, c.decision ? (c.decision.decider.kind === 'rule' ? `rule ${c.decision.decider.rule}` : c.decision.decider.kind === 'agent' ? `agent ${c.decision.decider.agent}` : `${c.decision.decider.actor} (approval)`) : '—'))))
        : el('p', { class: 'muted' }, 'The lanes agreed.'),
      b.failedLanes.length ? [el('h3', {}, 'Failed lanes'), table(['agent', 'task', 'error'], b.failedLanes.map((f) => el('tr', {}, el('td', {}, f.agent), el('td', {}, f.task), el('td', {}, `${f.error.code}: ${f.error.message}`))))] : null,
    ];
  }

  async function runTree(runId) {
    const [{ run, tasks }, { events }] = await Promise.all([api(`/v1/runs/${runId}`), api(`/v1/audit?run=${runId}&limit=1000`)]);
    const waits = {};
    for (const e of events) if (e.kind === 'task.waiting' && e.taskId) waits[e.taskId] = e.data;
    const kids = {};
    for (const t of tasks) (kids[t.parentId || ''] = kids[t.parentId || ''] || []).push(t);
    const node = (t) =>
      el(
        'li',
        { 'data-task': t.id },
        el('strong', {}, t.agent), ' ', state(t.state, { 'data-task-state': t.id }),
        el('span', { class: 'muted' }, ` ${t.id} · attempt ${t.attempt}/${t.maxAttempts}`, t.leaseOwner ? ` · lease ${t.leaseOwner} until ${time(t.leaseExpiresAt)}` : '', t.state === 'waiting' ? ` · waits for ${t.waitingOn ? `${t.waitingOn} child task(s)` : JSON.stringify(waits[t.id] || {})}` : '', t.state === 'retry-scheduled' || t.state === 'queued' ? ` · due ${time(t.runAt)}` : ''),
        kids[t.id] ? el('ul', { class: 'tree' }, kids[t.id].map(node)) : null,
      );
    return [
      el('h2', {}, 'Run ', run.id, ' ', state(run.state, { 'data-run-state': run.id })),
      el('p', { class: 'muted' }, `${run.agent} · started ${time(run.createdAt)}`, ' · ', el('a', { href: `#/timeline/${run.id}` }, 'timeline'), ' · ', el('a', { href: `#/why/${run.id}` }, 'why')),
      el('ul', { class: 'tree', role: 'tree' }, (kids[''] || []).map(node)),
      run.output !== null ? el('details', {}, el('summary', {}, 'output'), el('pre', {}, JSON.stringify(run.output, null, 2))) : null,
    ];
  }

  let rendering = 0;
  async function render(refresh) {
    const n = ++rendering;
    const p = panels.get(route.panel) || panels.get('runs');
    for (const t of timers) clearInterval(t);
    timers = [];
    try {
      const nodes = await (renderers[p.view || 'table'] || renderers.table)(p, route.arg);
      if (n !== rendering) return;
      const focused = document.activeElement && document.activeElement.id;
      view.replaceChildren(...[nodes].flat(Infinity).filter(Boolean));
      if (p.view === 'audit') {
        // Oldest first, each prepended: the newest ends on top.
        const bySeq = new Map([...auditRows, ...recent].map((e) => [e.seq, e]));
        for (const e of [...bySeq.values()].sort((a, b) => a.seq - b.seq)) appendAudit(e);
      }
      if (refresh && focused) document.getElementById(focused)?.focus();
      view.dataset.panel = p.id;
      view.dataset.rendered = String(Date.now());
    } catch (err) {
      if (n === rendering) view.replaceChildren(el('p', { class: 'err', role: 'alert' }, err.message));
    }
  }

  function onHash() {
    const [path] = location.hash.replace(/^#\/?/, '').split('?');
    const [panel, arg] = path.split('/');
    route = { panel: panels.has(panel) ? panel : 'runs', arg: arg || null };
    for (const a of document.querySelectorAll('nav a')) {
      if (a.dataset.panel === route.panel) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    if (cursor !== null) render();
    view.focus({ preventScroll: true });
  }
  window.addEventListener('hashchange', onHash);
  onHash();
  connect();
})();
