import { newId } from '../../core/ids.ts';
import { parseJson, toJson } from '../../core/json.ts';
import type { Envelope } from '../../core/envelope.ts';
import type { ErrorInfo, Json, Run } from '../../core/types.ts';
import type { AcceptRoute, EnvelopeRecord, EnvelopeStore } from '../store.ts';
import { insertAudit } from './audit-sql.ts';
import type { SqlBackend } from './backend.ts';
import type { SqlExecutor } from './executor.ts';
import { insertRun, selectRun } from './runs-sql.ts';
import { whereOf } from './where.ts';

/**
 * Envelopes: inbound work as accepted, deduplicated by idempotency key, with the
 * routing decision made for it. A routing agent's choice hands the envelope on once.
 */

interface EnvelopeRow {
  id: string;
  idempotency_key: string;
  channel: string;
  account: string;
  peer_kind: string;
  peer_id: string;
  parent_peer: string | null;
  sender: string | null;
  thread: string | null;
  text: string;
  data: string | null;
  reply_to: string | null;
  state: string;
  route: string | null;
  error: string | null;
  run_id: string | null;
  session_key: string | null;
  received_at: number | string;
}

function toEnvelope(r: EnvelopeRow): EnvelopeRecord {
  return {
    id: r.id,
    idempotencyKey: r.idempotency_key,
    channel: r.channel,
    account: r.account,
    peer: { kind: r.peer_kind as 'dm' | 'group' | 'channel', id: r.peer_id },
    parentPeer: r.parent_peer,
    sender: parseJson(r.sender),
    thread: r.thread,
    text: r.text,
    data: parseJson(r.data),
    replyTo: parseJson(r.reply_to),
    state: r.state as EnvelopeRecord['state'],
    route: parseJson(r.route),
    error: parseJson(r.error),
    runId: r.run_id,
    sessionKey: r.session_key,
    receivedAt: Number(r.received_at),
  };
}

/**
 * Inserts an accepted envelope, complete (its run's id chosen up front), unless its
 * idempotency key was seen before. Returns the stored record, or null for a repeat.
 */
export async function insertEnvelope(
  tx: SqlExecutor,
  req: { envelope: Envelope; envelopeId: string; route: AcceptRoute; runId: string | null },
  now: number,
): Promise<EnvelopeRecord | null> {
  const { envelope: e, route } = req;
  const row: EnvelopeRow = {
    id: req.envelopeId,
    idempotency_key: e.idempotencyKey,
    channel: e.channel,
    account: e.account,
    peer_kind: e.peer.kind,
    peer_id: e.peer.id,
    parent_peer: e.parentPeer,
    sender: e.sender ? toJson(e.sender) : null,
    thread: e.thread,
    text: e.text,
    data: toJson(e.data),
    reply_to: e.replyTo === null ? null : toJson(e.replyTo),
    state: route.ok ? (route.kind === 'router' ? 'routing' : 'routed') : 'unroutable',
    route: toJson(route.decision),
    error: route.ok ? null : toJson(route.error),
    run_id: req.runId,
    session_key: route.ok ? route.session.key : null,
    received_at: now,
  };
  const changed = await tx.run(
    `INSERT INTO envelopes (id, idempotency_key, channel, account, peer_kind, peer_id, parent_peer, sender, thread, text, data, reply_to, state, route, error, run_id, session_key, received_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING`,
    [
      row.id,
      row.idempotency_key,
      row.channel,
      row.account,
      row.peer_kind,
      row.peer_id,
      row.parent_peer,
      row.sender,
      row.thread,
      row.text,
      row.data,
      row.reply_to,
      row.state,
      row.route,
      row.error,
      row.run_id,
      row.session_key,
      now,
    ],
  );
  return changed === 1 ? toEnvelope(row) : null;
}

/** The envelope first accepted under an idempotency key, with its run. */
export async function envelopeByKey(tx: SqlExecutor, idempotencyKey: string): Promise<{ envelope: EnvelopeRecord; run: Run | null }> {
  const row = await tx.get<EnvelopeRow>('SELECT * FROM envelopes WHERE idempotency_key = ?', [idempotencyKey]);
  const envelope = toEnvelope(row!);
  return { envelope, run: envelope.runId ? await selectRun(tx, envelope.runId) : null };
}

export function sqlEnvelopeStore(db: SqlBackend): EnvelopeStore {
  return {
    async get(id: string): Promise<EnvelopeRecord | null> {
      const row = await db.read.get<EnvelopeRow>('SELECT * FROM envelopes WHERE id = ?', [id]);
      return row ? toEnvelope(row) : null;
    },

    async list(filter: { state?: EnvelopeRecord['state']; before?: string; limit: number }): Promise<EnvelopeRecord[]> {
      const w = whereOf([
        ['state = ?', filter.state],
        ['id < ?', filter.before],
      ]);
      const rows = await db.read.all<EnvelopeRow>(`SELECT * FROM envelopes ${w.sql} ORDER BY id DESC LIMIT ?`, [...w.params, filter.limit]);
      return rows.map(toEnvelope);
    },

    async routingDue(limit: number): Promise<Array<{ envelope: EnvelopeRecord; router: Run }>> {
      const rows = await db.read.all<EnvelopeRow & { r_id: string }>(
        `SELECT e.*, r.id AS r_id FROM envelopes e JOIN runs r ON r.id = e.run_id
         WHERE e.state = 'routing' AND r.state IN ('succeeded', 'failed', 'cancelled') ORDER BY e.received_at LIMIT ?`,
        [limit],
      );
      const out: Array<{ envelope: EnvelopeRecord; router: Run }> = [];
      for (const r of rows) {
        const run = await selectRun(db.read, r.r_id);
        if (run) out.push({ envelope: toEnvelope(r), router: run });
      }
      return out;
    },

    async failRouting(envelopeId: string, error: ErrorInfo, now: number): Promise<boolean> {
      return db.transaction(async (tx) => {
        const changed = await tx.run(`UPDATE envelopes SET state = 'unroutable', error = ? WHERE id = ? AND state = 'routing'`, [toJson(error), envelopeId]);
        if (changed === 1) await insertAudit(tx, now, [{ kind: 'route.unroutable', actor: 'router', data: { envelope: envelopeId, error: error as unknown as Json } }]);
        return changed === 1;
      });
    },

    async completeRouting(envelopeId: string, route: Extract<AcceptRoute, { ok: true }>, now: number): Promise<Run | null> {
      const run = await db.transaction(async (tx) => {
        const handed = await tx.run(`UPDATE envelopes SET state = 'routed' WHERE id = ? AND state = 'routing'`, [envelopeId]);
        if (handed !== 1) return null;
        // The work run keeps the origin of the routing run that chose its agent (a schedule's fire, say).
        const router = await tx.get<{ origin: string | null }>(`SELECT origin FROM runs WHERE envelope_id = ? AND kind = 'router'`, [envelopeId]);
        const run = await insertRun(
          tx,
          {
            runId: newId('run'),
            agent: route.agent,
            input: route.input,
            maxAttempts: route.maxAttempts,
            actor: 'router',
            envelopeId,
            session: route.session,
            kind: 'work',
            ...(route.tenant ? { tenant: route.tenant } : {}),
            ...(router?.origin ? { origin: router.origin } : {}),
          },
          now,
        );
        await tx.run('UPDATE envelopes SET run_id = ?, session_key = ?, route = ? WHERE id = ?', [run!.id, route.session.key, toJson(route.decision), envelopeId]);
        await insertAudit(tx, now, [{ kind: 'route.decided', runId: run!.id, agent: route.agent, actor: 'router', data: { envelope: envelopeId, decision: route.decision } }]);
        return run;
      });
      if (run) db.signalTasksReady();
      return run;
    },
  };
}
