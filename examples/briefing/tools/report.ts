import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * "Sends" the analyst's report: writes it to `.spine/reports/<run>.md`. Policy rule
 * `reports-need-ok` makes every call wait for a human's approval first.
 */
export default function report(input: { to: string; question: string; analysis: unknown }, ctx: { runId: string; idempotencyKey: string }) {
  const dir = join('.spine', 'reports');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${ctx.runId}.md`);
  writeFileSync(file, [`# Report to ${input.to}: ${input.question}`, '', '```json', JSON.stringify(input.analysis, null, 2), '```', '', `<!-- effect ${ctx.idempotencyKey} -->`, ''].join('\n'));
  return { sent: file };
}
