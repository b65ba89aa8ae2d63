/**
 * The dashboard's panels, declared once: the navigation, the views the page script
 * renders and what makes each one refresh live all derive from this list. A layer
 * adds its panel here with its own read route, e.g.
 *
 *   { id: 'memory', title: 'Memory', source: '/v1/memory/facts?limit=100', rows: 'facts',
 *     columns: [{ label: 'scope', field: 'scope' }, { label: 'key', field: 'key' }, { label: 'version', field: 'version' }],
 *     live: ['memory.'] },
 *
 * and the generic table view shows it (a built-in `view` renders the richer ones).
 */
export interface PanelColumn {
  label: string;
  /** A dotted path into a row, e.g. `data.ruleId`. */
  field: string;
  format?: 'time' | 'age' | 'dollars' | 'json' | 'state';
}

export interface Panel {
  /** The page anchor: `#/<id>`. */
  id: string;
  title: string;
  /** The GET route the panel reads (relative to the gateway, same token). */
  source: string;
  /** The array in the answer that holds the rows. */
  rows: string;
  columns: readonly PanelColumn[];
  /** Audit kinds (or prefixes ending in '.') whose arrival refreshes the panel. */
  live: readonly string[];
  /** A built-in renderer of the page script; without one, a table of `columns`. */
  view?: 'runs' | 'timeline' | 'approvals' | 'cost' | 'health' | 'audit' | 'briefs' | 'gates' | 'memory' | 'why';
}

export const PANELS: readonly Panel[] = [
  {
    id: 'runs',
    title: 'Runs',
    source: '/v1/runs?limit=50',
    rows: 'runs',
    columns: [
      { label: 'run', field: 'id' },
      { label: 'agent', field: 'agent' },
      { label: 'state', field: 'state', format: 'state' },
      { label: 'started', field: 'createdAt', format: 'time' },
    ],
    live: ['run.', 'task.'],
    view: 'runs',
  },
  {
    id: 'timeline',
    title: 'Timeline',
    source: '/v1/audit?limit=500',
    rows: 'events',
    columns: [],
    live: ['task.', 'turn.', 'effect.'],
    view: 'timeline',
  },
  {
    id: 'approvals',
    title: 'Approvals',
    source: '/v1/approvals?state=all&limit=100',
    rows: 'approvals',
    columns: [
      { label: 'approval', field: 'id' },
      { label: 'agent', field: 'agent' },
      { label: 'state', field: 'state', format: 'state' },
      { label: 'reason', field: 'reason' },
    ],
    live: ['approval.', 'task.waiting', 'task.queued'],
    view: 'approvals',
  },
  {
    id: 'cost',
    title: 'Cost',
    source: '/v1/observe',
    rows: 'observed.spend',
    columns: [],
    live: ['turn.committed', 'effect.completed', 'policy.'],
    view: 'cost',
  },
  {
    id: 'health',
    title: 'Health',
    source: '/v1/observe',
    rows: 'workers',
    columns: [],
    live: ['task.', 'worker.', 'outbox.'],
    view: 'health',
  },
  {
    id: 'briefs',
    title: 'Briefs',
    source: '/v1/briefs?limit=50',
    rows: 'briefs',
    columns: [],
    live: ['brief.'],
    view: 'briefs',
  },
  {
    id: 'gates',
    title: 'Gates',
    source: '/v1/gates/verdicts?order=newest&limit=100',
    rows: 'verdicts',
    columns: [],
    live: ['gate.', 'breaker.'],
    view: 'gates',
  },
  {
    id: 'memory',
    title: 'Memory',
    source: '/v1/memory/search',
    rows: 'hits',
    columns: [],
    live: ['memory.'],
    view: 'memory',
  },
  {
    id: 'why',
    title: 'Why',
    source: '/v1/why/{id}',
    rows: 'steps',
    columns: [],
    // A causal chain is history: it does not change under the reader.
    live: [],
    view: 'why',
  },
  {
    id: 'audit',
    title: 'Audit',
    source: '/v1/audit?limit=1',
    rows: 'events',
    columns: [
      { label: 'seq', field: 'seq' },
      { label: 'at', field: 'at', format: 'time' },
      { label: 'kind', field: 'kind' },
      { label: 'agent', field: 'agent' },
      { label: 'task', field: 'taskId' },
    ],
    // The tail appends each event as it comes; it never reloads.
    live: [],
    view: 'audit',
  },
  {
    id: 'mesh',
    title: 'Mesh',
    source: '/v1/mesh/calls?limit=100',
    rows: 'entries',
    columns: [
      { label: 'at', field: 'at', format: 'time' },
      { label: 'event', field: 'kind' },
      { label: 'from', field: 'from' },
      { label: 'to', field: 'to' },
      { label: 'hop', field: 'hop' },
      { label: 'ok', field: 'ok' },
      { label: 'reason', field: 'reason' },
      { label: 'ms', field: 'ms' },
      { label: 'key', field: 'key' },
    ],
    live: ['mesh.'],
  },
];
