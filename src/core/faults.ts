/**
 * Fault injection for crash tests. A named point, when armed, kills the process
 * with SIGKILL right there, so tests can prove what survives a crash between
 * "effect done" and "commit".
 *
 * Armed only through the SPINE_FAULTS environment variable, which production never
 * sets: `SPINE_FAULTS=after-effect-before-commit` (first hit) or
 * `SPINE_FAULTS=after-effect-before-commit@3` (third hit); several separated by commas.
 */
export type FaultPoint =
  | 'after-claim'
  | 'after-decision-before-effect'
  | 'after-effect-before-record'
  | 'after-effect-before-commit'
  | 'after-commit'
  | 'synthesis-before-step'
  | 'synthesis-after-step';

const armed = new Map<string, number>();
for (const spec of (process.env.SPINE_FAULTS ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
  const [name, nth] = spec.split('@');
  armed.set(name!, Math.max(1, Number(nth ?? '1') || 1));
}

export const faultsArmed = armed.size > 0;

export function faultPoint(point: FaultPoint): void {
  if (!faultsArmed) return;
  const left = armed.get(point);
  if (left === undefined) return;
  if (left > 1) {
    armed.set(point, left - 1);
    return;
  }
  process.stderr.write(`spine: fault injection: SIGKILL at ${point}\n`);
  process.kill(process.pid, 'SIGKILL');
}
