/**
 * `npm run example:revops`: starts Spine on the RevOps example (offline unless a model
 * is configured, see below), plays the CRM by posting a signed `renewal.due` webhook
 * for ACME, and shows the renewal as it goes: the departments' brief, the customer
 * email waiting for a person, and — once you approve it from another terminal — the
 * email sent and the `spine why` that explains it. Ctrl-C drains and stops.
 *
 * Flags: `--config <file>` (default: this folder's config; the LLM one when
 * OPENAI_API_KEY, OPENAI_BASE_URL or ANTHROPIC_API_KEY is set), `--account <id>`
 * (default acme), and any `spine up` flag (`--port 0`, `--db …`).
 */
import { execFileSync, spawn } from 'node:child_process';
import { dirname, join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { postRenewal, withDemoSecrets } from './post.ts';

const here = dirname(fileURLToPath(import.meta.url));
const main = join(here, '..', '..', 'src', 'cli', 'main.ts');
const env = withDemoSecrets(process.env);

const args = process.argv.slice(2);
const take = (flag: string): string | undefined => {
  const at = args.indexOf(flag);
  return at >= 0 ? args.splice(at, 2)[1] : undefined;
};
const live = ['OPENAI_API_KEY', 'OPENAI_BASE_URL', 'ANTHROPIC_API_KEY'].some((k) => (env[k] ?? '') !== '');
const config = relative(process.cwd(), take('--config') ?? join(here, live ? 'spine.llm.config.json5' : 'spine.config.json5')) || '.';
const account = take('--account') ?? 'acme';
const db = args.includes('--db') ? ['--db', args[args.indexOf('--db') + 1] ?? ''] : [];
console.log(live ? `LLM mode (${config}): the classifier and the email run on a model; the rest is offline.` : 'Offline mode: the agents answer from canned data (set OPENAI_API_KEY, OPENAI_BASE_URL or ANTHROPIC_API_KEY for models).');

/** A read command of the CLI, against the same config and store. */
const spine = (...a: string[]) => execFileSync(process.execPath, [main, ...a, '--config', config, ...db], { env, encoding: 'utf8' });
const cmd = (a: string) => `npx spine ${a} --config ${config}${db.length ? ` --db '${db[1]}'` : ''}`;

const child = spawn(process.execPath, [main, 'up', '--config', config, ...args], { env, stdio: ['ignore', 'pipe', 'inherit'] });
// Ctrl-C reaches the child too (same process group); wait for it to drain instead of dying first.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => child.kill('SIGTERM'));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));

const rel = (file: string) => relative(process.cwd(), join(here, file));
let gatewayUrl = 'http://127.0.0.1:7400';
let runId: string | null = null;
let approvalId: string | null = null;
let done = false;
createInterface({ input: child.stdout }).on('line', (line) => {
  console.log(line);
  try {
    const gateway = /^spine up: .*gateway (http:\/\/[^\s;]+)/.exec(line)?.[1];
    if (gateway) {
      gatewayUrl = gateway;
      sendRenewal(gateway).catch((err: unknown) => console.error(`example: could not post the renewal: ${err instanceof Error ? err.message : String(err)}`));
    }
    const waits = /(run_\w+)\s+success waits for approval .*\((apr_\w+)/.exec(line);
    if (waits && !approvalId) {
      runId = waits[1]!;
      approvalId = waits[2]!;
      showBrief(runId, approvalId);
    }
    if (runId && line.includes(runId) && /success waits until .*outside window customer-hours/.test(line)) {
      console.log(`\nApproved, and now outside the customer's office hours: the send is deferred, durably, to the window's next opening\n(the time above). Keep Spine running (or start it again) and it goes out then, once. The task waits, with the rule:\n\n  ${cmd(`runs show ${runId}`)}\n`);
    }
    if (runId && !done && line.includes(runId) && /success called tool email\.send/.test(line)) {
      done = true;
      showSent(runId);
    }
  } catch (err) {
    console.error(`example: ${err instanceof Error ? err.message : String(err)}`);
  }
});

async function sendRenewal(gateway: string) {
  const res = await postRenewal(gateway, account, env);
  console.log(`\nCRM → POST ${gateway}/v1/channels/webhook/crm (renewal.due for ${account}, signed): ${res.status} ${await res.text()}\n`);
}

function showBrief(run: string, approval: string) {
  const [brief] = (JSON.parse(spine('briefs', 'list', '--run', run, '--json')) as { briefs: Array<{ id: string }> }).briefs.slice(-1);
  console.log(`\nThe departments' brief (${brief?.id}): claims compared, the churn-risk conflict settled by the chain.\n`);
  if (brief) console.log(spine('briefs', 'show', brief.id));
  console.log(
    [
      `The customer email waits for a person (policy rule customer-email-ok). In another terminal, in this folder:`,
      '',
      `  ${cmd(`approvals show ${approval}`)}       # the email, word for word`,
      `  ${cmd(`approvals approve ${approval}`)} --reason "ok to send"`,
      `  ${cmd(`runs show ${run}`)}`,
      '',
      `After approval the send waits for the customer's office hours (rule customer-hours, 08:00–20:00 New York, Mon–Fri),`,
      `then passes the gate customer-email and runs once. Also try:`,
      '',
      `  ${cmd(`gates test customer-email --input ${rel('bad-email.json')}`)}   # what the gate refuses`,
      `  ${cmd('policy explain --agent sales --action tool:email.send')}           # only success may send`,
      `  ${cmd('memory search acme')}                                               # what each team learned`,
      `  node ${rel('post.ts')} slack "The ACME renewal is coming up, can you prep it?" --url ${gatewayUrl}`,
      `      # a second renewal, from Slack: the classifier routes it to the commander, and every team recalls what the first learned`,
      '',
    ].join('\n'),
  );
}

function showSent(run: string) {
  const shown = JSON.parse(spine('runs', 'show', run, '--json')) as { effects: Array<{ key: string; tool: string; result: unknown }> };
  const email = shown.effects.find((e) => e.tool === 'email.send');
  if (!email) return;
  console.log(`\nThe email was sent once (${JSON.stringify(email.result)}). Why it was sent, step by step:\n\n  ${cmd(`why ${email.key}`)}\n\nThe dashboard (link above) shows the run's task tree and timeline. Ctrl-C to stop.\n`);
}
