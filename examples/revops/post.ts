/**
 * Plays the CRM and Slack: posts a signed `renewal.due` webhook, or a signed Slack
 * message, to a running Spine (what `npm run example:revops` does for the first
 * renewal). The secrets are the ones Spine checks the signatures with
 * (REVOPS_CRM_SECRET, REVOPS_SLACK_SIGNING_SECRET); unset, both sides use the demo
 * values below.
 *
 *   node examples/revops/post.ts renewal acme [--url http://127.0.0.1:7400]
 *   node examples/revops/post.ts slack "The ACME renewal is coming up, can you prep it?"
 */
import { createHmac, randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';

/** Demo secrets, for an offline run on this machine only. Set the variables to use your own. */
export const DEMO_SECRETS = {
  REVOPS_CRM_SECRET: 'revops-demo-crm-secret',
  REVOPS_SLACK_SIGNING_SECRET: 'revops-demo-slack-signing-secret',
} as const;

/** The environment with each unset demo secret filled in. */
export function withDemoSecrets(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const [k, v] of Object.entries(DEMO_SECRETS)) if (!out[k]) out[k] = v;
  return out;
}

const RENEWALS: Record<string, { summary: string; renewalDate: string }> = {
  acme: { summary: 'renewal.due: ACME renews on 2027-01-31', renewalDate: '2027-01-31' },
  globex: { summary: 'renewal.due: Globex renews on 2027-03-15', renewalDate: '2027-03-15' },
};

/** POSTs a `renewal.due` event as the CRM sends it: JSON, HMAC-SHA256 over the body in `X-Hub-Signature-256`. */
export async function postRenewal(baseUrl: string, account: string, env = withDemoSecrets(process.env)): Promise<Response> {
  const r = RENEWALS[account];
  if (!r) throw new Error(`unknown account "${account}" (known: ${Object.keys(RENEWALS).join(', ')})`);
  const body = JSON.stringify({ event: 'renewal.due', account, renewalDate: r.renewalDate, summary: r.summary, sentAt: new Date().toISOString() });
  const sig = createHmac('sha256', env.REVOPS_CRM_SECRET ?? '').update(body).digest('hex');
  return fetch(`${baseUrl}/v1/channels/webhook/crm`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-crm-event': 'renewal.due', 'x-hub-signature-256': `sha256=${sig}` },
    body,
  });
}

/** POSTs a message in #revops as Slack's Events API sends it, signed `v0=` HMAC-SHA256 of `v0:<timestamp>:<body>`. */
export async function postSlack(baseUrl: string, text: string, env = withDemoSecrets(process.env)): Promise<Response> {
  const ts = Math.floor(Date.now() / 1000);
  const body = JSON.stringify({
    type: 'event_callback',
    team_id: 'T0REVOPS',
    api_app_id: 'A0REVOPS',
    event_id: `Ev${randomUUID().replace(/-/g, '').slice(0, 12).toUpperCase()}`,
    event_time: ts,
    event: { type: 'message', channel: 'C0REVOPS', channel_type: 'channel', user: 'U0REVLEAD', text, ts: `${ts}.000100` },
  });
  const sig = createHmac('sha256', env.REVOPS_SLACK_SIGNING_SECRET ?? '').update(`v0:${ts}:${body}`).digest('hex');
  return fetch(`${baseUrl}/v1/channels/slack/T0REVOPS`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-slack-request-timestamp': String(ts), 'x-slack-signature': `v0=${sig}` },
    body,
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  const at = args.indexOf('--url');
  const url = at >= 0 ? args.splice(at, 2)[1] : 'http://127.0.0.1:7400';
  const [what, ...rest] = args;
  if (!url || (what !== 'renewal' && what !== 'slack') || rest.length === 0) {
    console.error('usage: node examples/revops/post.ts renewal <account> | slack "<text>" [--url http://127.0.0.1:7400]');
    process.exit(2);
  }
  const res = what === 'renewal' ? await postRenewal(url, rest[0]!) : await postSlack(url, rest.join(' '));
  console.log(`${res.status} ${await res.text()}`);
  process.exit(res.ok ? 0 : 1);
}
