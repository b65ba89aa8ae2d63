/**
 * V8 flags for the commands that keep running (`spine up`, `worker`, `gateway`; `npm
 * start` runs through bin/spine.js too). Young-generation semi-spaces of 2 MB (V8 grows
 * them to 32 MB under load and keeps them) make an idle `spine up` ~11 MB and W2's peak
 * (10,000 tasks queued at once) ~50 MB smaller, with W2's throughput unchanged. With
 * semi-spaces that small, what a burst keeps waiting is promoted to the old generation,
 * whose next collection V8 then sets at up to 4× what survived: growing it by 1.5× at
 * most (`--heap-growing-percent=50`) makes W2's peak ~15 MB smaller on SQLite and
 * PostgreSQL, for ~3% more CPU per task. V8 reads them only at start. The bench runs
 * its workloads with them too (bench/peers.ts, bench/run.ts), so its memory figures are
 * those of the processes Spine ships.
 */
export const HEAP_FLAGS = ['--max-semi-space-size=2', '--heap-growing-percent=50'];
