import { z } from 'zod';
import { httpUrl, secretValue } from '../../config/fields.ts';
import { agentCommon } from '../config-common.ts';

/** `kind: 'a2a'` in spine.config.json5: a remote A2A agent (docs/a2a.md). */
export const a2aAgentSchema = z.strictObject({
  kind: z.literal('a2a'),
  /** The agent's base URL (card at `<url>/.well-known/agent-card.json`) or its Agent Card's URL (`….json`). */
  url: httpUrl,
  /** Headers for the card fetch and every call, e.g. `Authorization`; values may come from the environment. */
  headers: z.record(z.string().regex(/^[A-Za-z0-9-]+$/, 'a header name'), secretValue).optional(),
  /** Follow the task over a stream when the card offers one (default true); false: blocking send, then polling. */
  streaming: z.boolean().optional(),
  /** Other origins the Agent Card may send calls to (they receive `headers` too); any other is refused. */
  allowedOrigins: z.array(httpUrl).optional(),
  /** How often an unfinished task is polled, in ms (default 500). */
  pollMs: z.number().int().min(10).max(60_000).optional(),
  ...agentCommon,
});

export type A2aAgentConfig = z.infer<typeof a2aAgentSchema>;
