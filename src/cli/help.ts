/**
 * The help texts of the `spine` commands, kept apart from the commands so that
 * `spine --help` and `spine <command> --help` load no command module.
 */
import { APPROVAL_STATES } from '../core/states.ts';

export const HELP = {
  agents: `spine agents list [--bindings] [--json]
spine agents add <id> (--module <file> [--export <name>] | --command <cmd> [--arg <a> …]) [--description <text>]

list           the agents of the config, with kind, contracts and granted tools.
  --bindings   the routing table instead: each binding, its tier (most specific
               first), what it matches, and the agent or router it targets.
add            adds an agent to spine.config.json5 (validated before it is written;
               a running \`spine up\` reloads it).`,
  approvals: `spine approvals list [--state ${[...APPROVAL_STATES, 'all'].join('|')}] [--run <run-id>] [--limit <n>] [-q|--quiet] [--json]
spine approvals show <approval-id> [--json]
spine approvals approve <approval-id> [--reason <text>] [--as <name>] [--raise-to <usd>] [--json]
spine approvals deny <approval-id> [--reason <text>] [--as <name>] [--json]
spine approvals grant --agent <agent> --action <pattern> --days <n> [--reason <text>] [--as <name>] [--json]
spine approvals grants [--all] [--json]
spine approvals revoke <grant-id> [--as <name>]

list     pending requests by default: what, why, which rule, who may decide, when it expires.
         -q prints the ids alone, one a line.
show     one request in full: the action and its whole input, the rule, the approvers,
         and its history (requested, decided, expired, rerouted, cancelled).
approve  the waiting task continues and the action goes ahead (for an escalation:
         the task is retried, or may spend over the ceiling that stopped it).
         --raise-to <usd>: for an escalation by a per-run cost ceiling, also raises
         that run's ceiling to this amount, so later steps do not escalate again
         (audited as cost.ceiling-raised).
deny     the action comes back to the agent as a refusal, with --reason (for an
         escalation: the task is dead-lettered).
A request whose run was cancelled is closed (cancelled); deciding it is refused (exit 3).
grant    a standing grant: this action pattern (e.g. tool:email.*) needs no approval
         for this agent for the next N days.
The decider is recorded: --as, else $SPINE_OPERATOR, else $USER.`,
  audit: `spine audit verify [--run <run-id>] [--since <time>] [--key <pem>] [--json]
spine audit tail [--run <run-id>] [--limit <n>] [--once] [--json]
spine audit export --run <run-id> [--out <file>] [--key <pem>]
spine audit proof <seq> [--json]
spine audit seal [--key <pem>] [--json]
spine audit prune --checkpoint <n> [--json]

verify   recomputes every stream's hash chain and every checkpoint's signature,
         chain and Merkle root; names the first bad event and what was done to it
         (edited, deleted, reordered, inserted, forged-checkpoint).
         Exit 0 clean, 6 tampered, 7 unverifiable (e.g. no audit key to check
         signatures). --since: ISO time or epoch ms. --key: a PEM key (private or
         public) instead of the config's audit.signingKeyFile.
tail     the newest events, then new ones live until Ctrl-C (--once: no follow).
export   a run's events as JSON Lines with the checkpoints and inclusion proofs to
         verify them offline (docs/audit.md).
proof    the inclusion proof of one event under its signed checkpoint.
seal     writes a checkpoint now (\`spine up\` and \`spine worker\` seal every
         audit.sealEveryMs).
prune    deletes the events checkpoint n sealed and all before them; the
         checkpoints stay, and verify still passes.`,
  why: `spine why <run-id | task-id | effect-key | approval-id | envelope-id> [--json]

The causal chain behind a thing, from it back to its first cause: effect ← action ←
turn ← task ← handoff ← … ← run ← envelope ← the binding that fired, with the policy
decisions, gate verdicts and approvals (who, when, why) on the way. Each step lists
its audit events with their seq and whether they verify (✓ / ✗).`,
  doctor: `spine doctor [--db <url>] [--stuck-after <seconds>] [--run-sla <seconds>] [--approval-warn <seconds>] [--json]

Checks the store and reports, without changing anything:
  connectivity   the database answers (and how fast)
  backend        which adapter, and its capabilities (group commit, cross-process
                 wake-ups, SKIP LOCKED claims)
  schema         the schema version against the one this Spine knows
  leases         tasks still held after their lease expired (a dead worker that no
                 live worker has reclaimed); stuck longer than --stuck-after
                 (default 60 s) is a failure
  queue          tasks and runs by state, the oldest ready task, live workers (by
                 heartbeat, and on this host by process); ready work overdue by more
                 than a heartbeat with no live worker is a failure
  approvals      pending approvals
  outbox         outbound messages waiting, and dead ones
  stuck work     a turn past its agent's timeout, a pending approval expiring within
                 --approval-warn seconds (default 900), a run older than --run-sla
                 seconds (no SLA unless given)
Exit code 0 when healthy, 1 when any check fails (warnings do not fail).`,
  gateway: `spine gateway [--host <addr>] [--port <n>] [--insecure-local] [--config <file>] [--db <url>]

Runs the HTTP gateway alone (no workers; run \`spine worker\` against the same store
for those) until Ctrl-C or SIGTERM, then drains: stops accepting, ends event streams,
lets in-flight requests finish (gateway.drainMs).
  --host <addr>      address to bind (default gateway.host, else 127.0.0.1)
  --port <n>         port (default gateway.port, else 7400; 0 picks a free one)
  --insecure-local   let requests without a token in as admin — loopback hosts only
                     (same as gateway.allowAnonymousLoopback: true)

Every route but /healthz, /readyz and the channel webhooks needs a bearer token
(create one with \`spine tokens create\`). A non-loopback --host is refused until a
token exists. The config file is watched: bindings, agents and channels reload;
host and port need a restart. See docs/gateway.md.`,
  init: `spine init [dir] [--force]

Scaffolds a working project in dir (default: the current folder): spine.config.json5,
two agents (lead hands work to helper), one tool (notes.save), and .gitignore.
Refuses to overwrite an existing spine.config.json5 unless --force.`,
  mcp: `spine mcp [--config <file>] [--db <url>] [--as <name>]

Serves Spine as an MCP server over stdio, for MCP clients that start a local
command (IDEs, desktop assistants). Its tools: submit_work (send work to an agent,
optionally waiting for the output), get_run, list_approvals, decide_approval and
list_agents. Work is submitted on channel "mcp" through the same intake as every
other door; run workers (\`spine up\` or \`spine worker\`) against the same store to
get it done. stdout carries the protocol only; logs go to stderr. The process acts
with full (admin) rights, like the rest of the CLI; --as names it in the audit trail
(default: mcp-stdio). The same tools are served over HTTP by the gateway at
POST /v1/mcp, with the caller's token scopes. See docs/mcp.md.

Client config example (Claude Desktop, Cursor, …):
  {"mcpServers": {"spine": {"command": "npx", "args": ["spine", "mcp", "--config", "/path/spine.config.json5"]}}}`,
  gates: `spine gates list [--json]
spine gates test <gate-id> --input <file.json | -> [--agent <agent>] [--name <what crosses>] [--json]
spine gates verdicts [--run <run-id>] [--gate <id>] [--outcome pass|warn|reask|fix|block|escalate] [--mode enforce|shadow] [--limit <n>] [--json]

list      the configured gates (validation.gates) with their settings.
test      runs one gate on one input and prints its verdict and outcome. Changes
          nothing: no verdict recorded, no reask counted, no approval asked. Exits 1
          when the gate would not let the input through (reask, block, escalate).
verdicts  the recorded verdicts, oldest first (every crossing a gate watched).`,
  schedules: `spine schedules [list] [--json]
spine schedules resume <schedule> [--json]

list    the configured schedules with their next and last fire and fires made; for a
        heartbeat, whether it is active or paused (and why), and the idle fires it
        skipped (no turn taken), with the last one.
resume  lifts a heartbeat's pause: its no-op and identical-output streaks start over
        and its next fire is computed from now (audited as heartbeat.resumed). Exit 3
        when the schedule is unknown or not paused.`,
  breakers: `spine breakers list [--json]
spine breakers reset <breaker> [--json]

list   every circuit breaker (agent:<name>, tool:<name>) with its state, failures
       in the window, when an open one lets its probe through, and its last error.
reset  closes a breaker by hand (audited as breaker.reset).`,
  migrate: `spine migrate [--db <url>] [--json]

Applies pending schema migrations, each in its own transaction. Refuses a database
whose schema is newer than this Spine knows.`,
  policy: `spine policy explain --agent <agent> --action <kind:name> [--args <json>] [--run <run-id>] [--tenant <t>] [--at <ISO time>] [--json]

Evaluates one action against the contracts, grants and policy rules, in their fixed
order, and prints every rule with what it decided and why. Executes nothing: no
token is taken, no spend reserved, no approval requested. Actions: tool:<name>,
handoff:<agent>, turn:<agent> (the agent's own spend).`,
  route: `spine route explain [--channel <c>] [--account <a>] [--peer <id>] [--peer-kind dm|group|channel] [--parent-peer <id>] [--thread <id>] [--sender <id>] [--role <r> …] [--json]

Shows which binding an envelope with these fields would go to, and why: every
binding with its tier and whether it matched. Stores nothing.`,
  mesh: `spine mesh log [--run <run-id>] [--limit <n>] [--before <seq>] [--json]

The direct calls over declared mesh paths (docs/mesh.md), newest first: each
shadow record (mesh.call before forwarding, mesh.reply after, mesh.refused for a
call the mesh did not allow) with its pair, hop, outcome, time and idempotency key.
A mesh.call without a mesh.reply is a call whose caller died mid-call.`,
  briefs: `spine briefs list [--run <run-id>] [--state resolving|done] [--limit <n>] [--before <brief-id>] [--json]
spine briefs show <brief-id> [--json]

list    newest first: parts, conflicts (decided, open, unresolved) and failed lanes.
show    each part with the agent, task, turn and evidence it came from; each
        conflict with its options, the strategies tried and who decided (a rule,
        a judge agent's turn, or a person's approval); missing keys; failed lanes.
        A conflict waiting for a person: spine approvals approve <id> --reason <option>.
See docs/synthesis.md.`,
  runs: `spine runs list [--state <state>] [--agent <agent>] [--limit <n>] [--before <run-id>] [-q|--quiet] [--json]
spine runs show <run-id> [--json]
spine runs follow <run-id> [--timeout <ms>] [--json]
spine runs cancel <run-id> [--reason <text>] [--json]
spine runs retry <run-id> [--json]

list    newest first; --before pages on (pass the last id shown). States: running,
        succeeded, failed (dead-lettered: replay with retry), cancelled.
        -q prints the ids alone, one a line.
show    the run, its task tree, each task's turns, the effects ledger, the gates it
        crossed with their verdicts, and usage: each turn's tokens and cost, their
        sum, and the run's reserved and settled spend.
follow  streams the run's live log (what it did so far, then each step, the waits
        included) until it ends; exit 0 if it succeeded, 1 otherwise. Like
        \`send --wait\`, for a run already submitted.
cancel  cancels every unfinished task of the run (cascades to children) and closes
        its open approvals.
retry   replays a failed run: its dead task is queued again and resumes from its
        last committed turn; recorded effects are not executed again.`,
  send: `spine send <agent> [text] [--input <json>] [--idempotency-key <key>] [--tenant <t>] [--wait [--timeout <ms>]] [--json]

Submits work to an agent and prints the run id. The input is {"text": <text>}, or
the JSON given with --input. With --wait, blocks until the run is terminal and
prints it; the exit code is then 0 if it succeeded and 1 if it failed or was cancelled.
While waiting, it says at once (and again whenever it becomes true) when no worker is
alive to run the work.
--tenant names whose spend this is, for daily cost ceilings (default: default).

spine send [agent] --batch <file.jsonl | -> [--tenant <t>] [--json]
sends one envelope per line, {"agent"?, "text"? | "input"?, "idempotencyKey"?}
(agent defaults to the command's); every line is checked first, then all are sent
at once; prints a run id (or the refusal) per line. Exit 0 if all started.`,
  sessions: `spine sessions list [--agent <agent>] [--limit <n>] [--json]
spine sessions show <key> [--limit <n>] [--json]
spine sessions reset <key> [--json]
spine sessions fork <key> [--as <new-key>] [--json]

list   sessions, most recently active first, with the run holding each lane.
show   a session and its recent history (what later turns will see).
reset  starts the session afresh: later turns see no earlier history.
fork   a new session seeded with this one's history.`,
  memory: `spine memory search <words…> [--mode lexical|vector|hybrid] [--scope <scope>] [--k <n>] [--as-of <time>] [--tenant <t>] [--json]
spine memory get <scope> <key> [--as-of <time>] [--json]
spine memory history <scope> <key> [--json]
spine memory put <scope> <key> --value <json> [--text <text>] [--expected-version <n>] [--ttl <duration>] [--source <id> …] [--json]
spine memory forget (--run <id> | --agent <name> | --source <id>) [--dry-run] [--json]
spine memory conflicts [--state open|rejected|resolved] [--limit <n>] [--json]
spine memory conflicts resolve <id> (--pick <n> | --value <file.json> [--text <text>]) [--json]

Shared memory (docs/memory.md), as an operator: every scope of one tenant (--tenant,
default: default). Scopes: global, team/<name>, agent/<name>, run/<id>, session/<key>,
tenant/<id>, each with sub-paths.
search     live facts, best first: by their words (lexical: SQLite FTS5 / PostgreSQL full
           text), their meaning (vector: needs memory.embedder) or both fused by rank
           (hybrid, the default when vectors are configured).
get        the current value, or what was true at --as-of (epoch ms or ISO date).
history    every version, with who wrote it and when it stopped being true.
put        writes a version with trust owner; --expected-version makes it compare-and-set.
forget     tombstones what a run, agent or source wrote and everything derived from it;
           --dry-run prints what it would remove. History keeps what was true then.
conflicts  the merge queue: compare-and-set writes that met a newer version. resolve ends an
           open one: --pick 1 writes the write that lost, --pick 2 keeps the current
           version, --value writes your own (a JSON file); its approval is decided with it.`,
  tokens: `spine tokens create --name <name> --scope <scope> [--scope <scope> …] [-q|--quiet] [--json]
spine tokens list [--all] [--json]
spine tokens revoke <token-id|name> [--json]

API tokens for the gateway (docs/gateway.md); create -q prints the secret alone. Scopes:
  admin            everything
  operator         submit work, cancel and retry runs, decide approvals, read
  viewer           read only
  ingress:<chan>   POST /v1/envelopes for that channel only (e.g. ingress:api; ingress:mcp: submit_work over /v1/mcp)
create  prints the token once — only its SHA-256 is stored, it cannot be shown again.
        The name is recorded as the decider of approvals made with the token.
list    live tokens (--all: revoked ones too); never the token itself.
revoke  the token stops working at once.`,
  up: `spine up [--config <file>] [--db <url>] [--concurrency <n>] [--host <addr>] [--port <n>] [--no-gateway] [--insecure-local]
         [--metrics-port <n>] [--send <agent> [--text <text> | --input <json>] [--exit]] [--quiet]

Runs everything in one process on the store (embedded SQLite by default): the
gateway (127.0.0.1:7400), workers, the outbox dispatcher, the schedules and the
routing-agent sweep. Prints runs as they progress, one line per step with its time
(UTC) and run, the waits included (approvals, windows, rate limits). The config file is watched and
reloaded (an invalid change is rejected and the running config kept). On Ctrl-C or
SIGTERM it drains: stops leasing and accepting, lets in-flight turns finish
(worker.drainMs), and hands the rest back.
  --no-gateway        workers, dispatcher and schedules only
  --host, --port      where the gateway listens (port 0 picks a free one)
  --insecure-local    let token-less requests in on loopback (see docs/gateway.md)
  --metrics-port <n>  also serve Prometheus metrics on 127.0.0.1:<n>/metrics (the gateway serves /metrics too)
  --send <agent>      submit one run once started (with --text, or --input <json> as its input),
                      print its task tree when done
  --exit              with --send: stop once that run is finished (exit 1 if it failed)`,
  worker: `spine worker [--config <file>] [--db <url>] [--concurrency <n>] [--metrics-port <n>] [--quiet]

Runs workers, the outbox dispatcher, the schedules and the routing-agent sweep,
without the gateway: for running many worker processes against one database
(run \`spine gateway\` separately). Drains on Ctrl-C or SIGTERM like \`spine up\`.
  --metrics-port <n>  serve Prometheus metrics on 127.0.0.1:<n>/metrics (docs/observability.md)`,
} as const;
