import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The slow step of the tour: "analyses" for `seconds`, one step a quarter second.
 * When it starts it writes the pid of the Spine process running it to
 * `.spine/analysis.pid`, so the tour can `kill -9` exactly that process mid-flight.
 * A call cut short that way ran but was never recorded, so after the restart the hub
 * runs it again under the same idempotency key with `maybeRepeated: true`; its result
 * file is named after the key, so the repeat rewrites it rather than adding another.
 */
export default async function analysis(input: { question: string; seconds: number }, ctx: { idempotencyKey: string; maybeRepeated: boolean; signal: AbortSignal }) {
  mkdirSync('.spine', { recursive: true });
  writeFileSync(join('.spine', 'analysis.pid'), `${process.pid}\n`);
  const steps = Math.max(0, Math.round(input.seconds * 4));
  for (let i = 0; i < steps; i++) {
    if (ctx.signal.aborted) throw new Error('analysis stopped: the task was cancelled');
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const findings = { question: input.question, verdict: 'steady', tookSeconds: input.seconds, maybeRepeated: ctx.maybeRepeated };
  const dir = join('.spine', 'analysis');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${ctx.idempotencyKey.replace(/[^A-Za-z0-9_.-]/g, '_')}.json`), JSON.stringify(findings, null, 2));
  return findings;
}
