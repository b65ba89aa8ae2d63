import { spawn } from 'node:child_process';
import type { Agent, AgentContext } from '../core/agent.ts';
import { AgentError, AgentProtocolError } from '../core/errors.ts';
import type { TurnInput } from '../core/types.ts';

export interface CommandAgentOptions {
  name: string;
  /** Executable and arguments, e.g. ["python3", "agents/researcher.py"]. */
  command: string[];
  cwd: string;
  env?: Record<string, string>;
  /** Largest stdout accepted, in bytes. */
  maxOutputBytes?: number;
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
      const child = spawn(command[0]!, command.slice(1), {
        cwd,
        env: { ...process.env, ...this.opts.env, SPINE_AGENT: name, SPINE_TASK_ID: input.task.id, SPINE_RUN_ID: input.task.runId },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
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
