import { TASK_STATES, type TaskState } from '../core/states.ts';

/**
 * The task state machine as data: which state may follow which. The store's
 * transitions follow it (its SQL state sets below are derived from it), and a test
 * checks every audited transition of real runs against it.
 */
export const TASK_TRANSITIONS = {
  queued: ['leased', 'running', 'waiting', 'dead', 'cancelled'],
  leased: ['running', 'queued', 'cancelled'],
  running: ['succeeded', 'waiting', 'retry-scheduled', 'escalated', 'dead', 'queued', 'cancelled', 'failed'],
  waiting: ['queued', 'dead', 'cancelled'],
  'retry-scheduled': ['leased', 'running', 'cancelled'],
  failed: ['retry-scheduled', 'escalated', 'dead'],
  escalated: ['queued', 'dead', 'cancelled'],
  succeeded: [],
  dead: ['queued'],
  cancelled: [],
} as const satisfies Record<TaskState, readonly TaskState[]>;

export function canTransition(from: TaskState, to: TaskState): boolean {
  return (TASK_TRANSITIONS[from] as readonly TaskState[]).includes(to);
}

/** States a task never leaves on its own (`dead` only by an operator's replay). */
export const TERMINAL_TASK_STATES = ['succeeded', 'dead', 'cancelled'] as const satisfies readonly TaskState[];
/** States with work still to do: cancelling a run cancels tasks in these (`failed` is only ever passed through). */
export const UNFINISHED_TASK_STATES: readonly TaskState[] = TASK_STATES.filter((s) => !(TERMINAL_TASK_STATES as readonly TaskState[]).includes(s) && s !== 'failed');
/** States in which a worker holds the task's lease. */
export const HELD_TASK_STATES = ['leased', 'running'] as const satisfies readonly TaskState[];
/** States a worker may claim (when due). */
export const CLAIMABLE_TASK_STATES = ['queued', 'retry-scheduled'] as const satisfies readonly TaskState[];

/** `('a', 'b')` for SQL `IN` (the states are constants, never input). */
export function sqlStateSet(states: readonly string[]): string {
  return `(${states.map((s) => `'${s}'`).join(', ')})`;
}
