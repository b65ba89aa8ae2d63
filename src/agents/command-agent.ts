import { spawn } from 'node:child_process';
import type { Agent, AgentContext } from '../core/agent.ts';
import { AgentError, AgentProtocolError } from '../core/errors.ts';
import { readSecret, type SecretRef } from '../core/secrets.ts';
import type { TurnInput } from '../core/types.ts';

export interface CommandAgentOptions {
  name: string;
  /** Executable and arguments, e.g. ["python3", "agents/researcher.py"]. */
  command: string[];
  cwd: string;
  /** Declared variables, on top of the minimal environment; `{env: NAME}` reads Spine's variable NAME. */
  env?: Record<string, SecretRef>;
  /** Spine's own variables passed through by name (explicit opt-in). */
  inheritEnv?: string[];
  /** Largest stdout accepted, in bytes. */
  maxOutputBytes?: number;
  /** Address-space limit in MiB, set with `ulimit -v` by /bin/sh before the agent starts (POSIX only). */
  maxMemoryMb?: number;
}

/** What every agent process gets from Spine's environment; nothing else is inherited unless named. */
export const MINIMAL_ENV = ['PATH', 'HOME', 'LANG', 'TZ'] as const;

/**
 * The environment an agent process starts with: the minimal variables, those it
 * opted into with `inheritEnv`, its declared `env`, and Spine's turn variables. LLM
 * keys, channel secrets and SPINE_DB are not passed unless declared.
 */
export function agentEnv(opts: Pick<CommandAgentOptions, 'env' | 'inheritEnv'>, extra: Record<string, string>, from: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of [...MINIMAL_ENV, ...(opts.inheritEnv ?? [])]) {
    const v = from[name];
    if (v !== undefined) env[name] = v;
  }
  for (const [name, ref] of Object.entries(opts.env ?? {})) {
    const v = readSecret(ref, from);
    if (v !== undefined) env[name] = v;
  }
  return { ...env, ...extra };
}

const STDERR_TAIL = 2000;

/**
 * Any executable speaking the turn protocol (docs/agent-protocol.md): the hub
 * writes one turn as JSON to its stdin and reads one JSON answer from its stdout.
 * One process per turn, so the agent is stateless by construction.
 */
export class CommandAgent implements Agent {
  readonly kind = 'command';
  private readonly opts: CommandAgentOptions;
  constructor(opts: CommandAgentOptions) {
    this.opts = opts;
  }

  turn(input: TurnInput, ctx: AgentContext): Promise<unknown> {
    const { name, command, cwd } = this.opts;
    const maxOut = this.opts.maxOutputBytes ?? 16 * 1024 * 1024;
    return new Promise((resolve, reject) => {
      const env = agentEnv(this.opts, {
        SPINE_AGENT: name,
        SPINE_TASK_ID: input.task.id,
        SPINE_RUN_ID: input.task.runId,
        // The turn's mesh capability (docs/mesh.md), also in the turn input: a child that only reads its env can call too.
        ...(input.mesh ? { SPINE_MESH_TOKEN: input.mesh.token, SPINE_MESH_URL: input.mesh.url } : {}),
      });
      const mem = this.opts.maxMemoryMb;
      // A memory limit is set by the shell (`ulimit -v`) and then exec'd into the agent: Node has no setrlimit.
      const [exe, args] =
        mem !== undefined && process.platform !== 'win32'
          ? ['/bin/sh', ['-c', `ulimit -v ${mem * 1024} && exec "$@"`, 'spine-agent', ...command]]
          : [command[0]!, command.slice(1)];
      const child = spawn(exe, args, { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      let outBytes = 0;
      let errTail = '';
      let settled = false;
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        ctx.signal.removeEventListener('abort', onAbort);
        fn();
      };
      const onAbort = () => {
        child.kill('SIGKILL');
        finish(() => reject(ctx.signal.reason instanceof Error ? ctx.signal.reason : new AgentError(name, 'turn aborted')));
      };
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      child.stdout.on('data', (chunk: Buffer) => {
        outBytes += chunk.length;
        if (outBytes > maxOut) {
          child.kill('SIGKILL');
          finish(() => reject(new AgentProtocolError(name, `answer exceeds ${maxOut} bytes`)));
          return;
        }
        out.push(chunk);
      });
      child.stderr.on('data', (chunk: Buffer) => {
        errTail = (errTail + chunk.toString('utf8')).slice(-STDERR_TAIL);
      });
      child.on('error', (err) =>
        finish(() => reject(new AgentError(name, `could not start ${JSON.stringify(command[0])}: ${err.message}`, { retryable: false, cause: err }))),
      );
      child.on('close', (code, signal) => {
        finish(() => {
          if (code !== 0) {
            const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
            reject(new AgentError(name, `process ${how}${errTail ? `; stderr: ${errTail.trim()}` : ''}`, { details: { exitCode: code, signal } }));
            return;
          }
          const text = Buffer.concat(out).toString('utf8').trim();
          if (!text) {
            reject(new AgentProtocolError(name, `wrote nothing to stdout${errTail ? `; stderr: ${errTail.trim()}` : ''}`));
            return;
          }
          try {
            resolve(JSON.parse(text));
          } catch {
            reject(new AgentProtocolError(name, `answer is not valid JSON: ${JSON.stringify(text.slice(0, 200))}`));
          }
        });
      });
      // An agent that exits without reading stdin makes the write fail with EPIPE; its exit code tells the story.
      child.stdin.on('error', () => {});
      child.stdin.end(JSON.stringify(input));
    });
  }
}
