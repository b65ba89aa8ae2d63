import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

interface Email {
  to: string;
  subject: string;
  body: string;
  account: string;
  renewalDate: string;
}

/**
 * "Sends" a customer email: writes it to `.spine/emails/<idempotency key>.eml`. Named
 * after the key, so a repeat after a crash (maybeRepeated) rewrites the same file
 * instead of sending a second email — a real mail API would get the key as its
 * idempotency key.
 */
export default function send(email: Email, ctx: { idempotencyKey: string; runId: string }) {
  const dir = join('.spine', 'emails');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${ctx.idempotencyKey.replace(/[^A-Za-z0-9_.-]/g, '_')}.eml`);
  writeFileSync(file, [`To: ${email.to}`, `Subject: ${email.subject}`, `X-Spine-Run: ${ctx.runId}`, `X-Spine-Effect: ${ctx.idempotencyKey}`, '', email.body, ''].join('\n'));
  return { to: email.to, file };
}
