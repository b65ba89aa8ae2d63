import { z } from 'zod';

/**
 * The schema of `spine.config.json5`. Objects are strict, so a misspelt key is an
 * error naming its path rather than a silently ignored setting.
 */

const AGENT_NAME = /^[A-Za-z][A-Za-z0-9_-]*$/;
const TOOL_NAME = /^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$/;

const positiveInt = z.number().int().positive();

export const retrySchema = z.strictObject({
  maxAttempts: positiveInt.max(100).optional(),
  initialMs: z.number().int().nonnegative().optional(),
  maxMs: z.number().int().nonnegative().optional(),
  factor: z.number().min(1).optional(),
  jitter: z.enum(['full', 'none']).optional(),
});

const agentCommon = {
  description: z.string().optional(),
  /** Per-turn timeout. */
  timeoutMs: positiveInt.optional(),
  retry: retrySchema.optional(),
};

const functionAgent = z.strictObject({
  kind: z.literal('function'),
  /** Module path, relative to the config file. */
  module: z.string().min(1),
  /** Named export holding the agent function; default export if omitted. */
  export: z.string().min(1).optional(),
  ...agentCommon,
});

const commandAgent = z.strictObject({
  kind: z.literal('command'),
  /** Executable and arguments; relative paths resolve against the config file's folder. */
  command: z.array(z.string().min(1)).min(1, 'needs at least the executable'),
  env: z.record(z.string(), z.string()).optional(),
  ...agentCommon,
});

export const agentSchema = z.discriminatedUnion('kind', [functionAgent, commandAgent], {
  error: (issue) => (issue.code === 'invalid_union' ? 'kind must be "function" or "command"' : undefined),
});

export const toolSchema = z.strictObject({
  module: z.string().min(1),
  export: z.string().min(1).optional(),
  description: z.string().optional(),
});

export const configSchema = z.strictObject({
  agents: z.record(z.string().regex(AGENT_NAME, 'agent names start with a letter and use letters, digits, _ or -'), agentSchema),
  tools: z.record(z.string().regex(TOOL_NAME, 'tool names are dotted words, e.g. notes.save'), toolSchema).optional(),
  retry: retrySchema.optional(),
  limits: z
    .strictObject({
      maxDepth: positiveInt.max(64).optional(),
      maxTurns: positiveInt.optional(),
      maxReclaims: z.number().int().nonnegative().optional(),
    })
    .optional(),
  worker: z
    .strictObject({
      concurrency: positiveInt.max(1024).optional(),
      leaseMs: positiveInt.min(100).optional(),
      heartbeatMs: positiveInt.optional(),
      pollMs: positiveInt.optional(),
      drainMs: z.number().int().nonnegative().optional(),
    })
    .optional(),
  store: z
    .strictObject({
      durability: z.enum(['strict', 'fast']).optional(),
    })
    .optional(),
});

export type SpineConfigFile = z.infer<typeof configSchema>;
export type AgentConfig = z.infer<typeof agentSchema>;
export type ToolConfig = z.infer<typeof toolSchema>;
