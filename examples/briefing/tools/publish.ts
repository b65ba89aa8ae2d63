import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

interface Brief {
  question: string;
  for: string[];
  against: string[];
  recommendation: string;
}

/**
 * Writes the brief as Markdown. The file is named after the idempotency key, so even
 * a re-execution after a crash (maybeRepeated) rewrites the same file instead of a second one.
 */
export default function publish(brief: Brief, ctx: { idempotencyKey: string; runId: string }) {
  const dir = join('.spine', 'briefs');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${ctx.runId}.md`);
  const md = [
    `# ${brief.question}`,
    '',
    '## For',
    ...brief.for.map((p) => `- ${p}`),
    '',
    '## Against',
    ...brief.against.map((p) => `- ${p}`),
    '',
    `**Recommendation:** ${brief.recommendation}`,
    '',
    `<!-- effect ${ctx.idempotencyKey} -->`,
    '',
  ].join('\n');
  writeFileSync(file, md);
  return { file };
}
