import { z } from 'zod';
import { gatewaySchema } from '../gateway/config.ts';
import { channelsSchema } from '../channels/config.ts';
import { schedulesSchema } from '../intake/schedules/config.ts';
import { policySchema } from '../policy/rules.ts';
import { bindingSchema } from '../routing/bindings.ts';
import { sessionsSchema } from '../routing/sessions.ts';
import { a2aAgentSchema } from '../agents/a2a/schema.ts';
import { httpAgentSchema } from '../agents/http/schema.ts';
import { llmAgentSchema } from '../agents/llm/schema.ts';
import { mcpSchema } from '../tools/mcp/schema.ts';
import { validationSchema } from '../validation/config.ts';
import { healthSchema } from '../validation/stuck.ts';
import { agentCommon } from '../agents/config-common.ts';
import { memoryConfigSchema } from '../memory/settings.ts';
import { meshSchema } from './mesh.ts';
import { contractId, cost, retrySchema, secretValue, type allowDeny } from './fields.ts';

export { retrySchema };

/**
 * The schema of `spine.config.json5`. Objects are strict, so a misspelt key is an
 * error naming its path rather than a silently ignored setting.
 */

const AGENT_NAME = /^[A-Za-z][A-Za-z0-9_-]*$/;
const TOOL_NAME = /^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$/;

const positiveInt = z.number().int().positive();

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
  /** Variables the agent gets, on top of the minimal environment (PATH, HOME, LANG, TZ); values may be `{env: NAME}`. */
  env: z.record(z.string(), z.union([z.string(), z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name') })])).optional(),
  /** Names of Spine's own environment variables passed through as they are (an explicit opt-in). */
  inheritEnv: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name')).optional(),
  /** Working folder of the process, relative to the config file's folder (default: that folder). */
  cwd: z.string().min(1).optional(),
  /** Largest answer (stdout) accepted, in bytes (default 16 MiB); a bigger one fails the turn. */
  maxOutputBytes: positiveInt.optional(),
  /** Address-space limit of the process in MiB (Linux and macOS, via `ulimit -v`); unset: none. */
  maxMemoryMb: positiveInt.optional(),
  ...agentCommon,
});

export const agentSchema = z.discriminatedUnion('kind', [functionAgent, commandAgent, httpAgentSchema, llmAgentSchema, a2aAgentSchema], {
  error: (issue) => (issue.code === 'invalid_union' ? 'kind must be one of function, command, http, llm, a2a' : undefined),
});

export const toolSchema = z.strictObject({
  module: z.string().min(1),
  export: z.string().min(1).optional(),
  description: z.string().optional(),
  input: contractId.optional(),
  output: contractId.optional(),
  /** `read` changes nothing; `write` changes our own data; `external` reaches the outside world (default). */
  sideEffect: z.enum(['read', 'write', 'external']).optional(),
  cost: cost.optional(),
});

export const contractSchema = z.strictObject({
  /** A JSON Schema (2020-12) object, or the path of a .json file holding one. */
  schema: z.union([z.record(z.string(), z.unknown()), z.boolean(), z.string().min(1)]),
  /** Contracts whose payloads this one accepts (e.g. the previous version, when compatible). */
  accepts: z.array(contractId).optional(),
  description: z.string().optional(),
});

export const configSchema = z.strictObject({
  /** Routing rules, most specific first (see docs/routing.md). */
  bindings: z.array(bindingSchema).optional(),
  sessions: sessionsSchema.optional(),
  gateway: gatewaySchema.optional(),
  channels: channelsSchema.optional(),
  schedules: schedulesSchema.optional(),
  contracts: z.record(contractId, contractSchema).optional(),
  policy: policySchema.optional(),
  /** Gates at the boundary's crossings (docs/validation.md). */
  validation: validationSchema.optional(),
  /** Health: the stuck-work sweep and its actions (docs/health.md); probes are declared per agent. */
  health: healthSchema.optional(),
  /** Shared memory: scope policies (conflict strategy, contract), limits, the TTL sweep. */
  memory: memoryConfigSchema.optional(),
  /** MCP servers whose tools join the catalog, and Spine's own MCP server. */
  mcp: mcpSchema.optional(),
  agents: z.record(z.string().regex(AGENT_NAME, 'agent names start with a letter and use letters, digits, _ or -'), agentSchema),
  /** Declared direct agent → agent paths (docs/mesh.md); absent: pure hub and spoke. */
  mesh: meshSchema.optional(),
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
      livenessMs: z.number().int().nonnegative().optional(),
    })
    .optional(),
  store: z
    .strictObject({
      durability: z.enum(['strict', 'fast']).optional(),
    })
    .optional(),
  /** The audit trail's checkpoints (docs/audit.md): the Ed25519 signing key, the sealer's period, witnesses. */
  audit: z
    .strictObject({
      signingKey: secretValue.optional(),
      signingKeyFile: z.string().min(1).optional(),
      sealEveryMs: positiveInt.min(1_000).optional(),
      witness: z.strictObject({ file: z.string().min(1).optional(), url: z.url().optional() }).optional(),
    })
    .optional(),
});

export type SpineConfigFile = z.infer<typeof configSchema>;
export type AgentConfig = z.infer<typeof agentSchema>;
export type ToolConfig = z.infer<typeof toolSchema>;
export type AllowDeny = z.infer<typeof allowDeny>;
