/**
 * V8 flags for the commands that keep running and hold queued work (`spine up`,
 * `worker`; `npm start` runs through bin/spine.js too). Young-generation semi-spaces of
 * 2 MB (V8 grows them to 32 MB under load and keeps them) make an idle `spine up`
 * ~11 MB and W2's peak (10,000 tasks queued at once) ~50 MB smaller, with W2's
 * throughput unchanged. With semi-spaces that small, what a burst keeps waiting is
 * promoted to the old generation, whose next collection V8 then sets at up to 4× what
 * survived: growing it by 1.5× at most (`--heap-growing-percent=50`) makes W2's peak
 * ~15 MB smaller on SQLite and PostgreSQL, for ~3% more CPU per task. V8 reads them
 * only at start. The bench runs its workloads with the flags of the command they stand
 * for (bench/peers.ts, bench/run.ts, bench/envelopes.ts), so its figures are those of
 * the processes Spine ships.
 */
export const HEAP_FLAGS = ['--max-semi-space-size=2', '--heap-growing-percent=50'];

/**
 * The flags a command runs with: HEAP_FLAGS for `up` and `worker`, none for anything
 * else. A `spine gateway` keeps V8's defaults: it holds no queued burst (W2's peak is
 * a worker's), and at 64 connections the small young generation cost it 15–25% of
 * its envelopes (bench/envelopes.ts --as up: 2,820–3,162 against 3,434–3,966 req/s,
 * p99 48–57 against 35–45 ms, ~350 against ~270 µs of CPU per envelope); without them
 * it is ~8 MB larger idle (107 against 99 MB). `spine up`, gateway and worker in one
 * process, keeps the small footprint.
 */
export function heapFlagsOf(command) {
  return command === 'up' || command === 'worker' ? HEAP_FLAGS : [];
}
