/**
 * Routes a free-text Slack request (a routing agent, docs/routing.md): `{agent}` naming
 * one of the binding's candidates. Keywords stand in for a model offline. Anything it
 * cannot place it names `none`, and the binding's deterministic fallback (the
 * commander) takes the request.
 */
export default function classifier(turn: { task: { input: { text?: string } } }) {
  const text = (turn.task.input.text ?? '').toLowerCase();
  if (/\b(ticket|tickets|bug|outage|sso|login|escalation)\b/.test(text)) return { output: { agent: 'support' } };
  if (/\b(renewal|renew|churn|expansion|invoice|invoices|account)\b/.test(text)) return { output: { agent: 'commander' } };
  return { output: { agent: 'none' } };
}
