import type { Agent, AgentContext, AgentFunction } from '../core/agent.ts';
import type { TurnInput } from '../core/types.ts';

/** An agent that is a function in this process (kind `function`). */
export class FunctionAgent implements Agent {
  readonly kind = 'function';
  private readonly fn: AgentFunction;
  constructor(fn: AgentFunction) {
    this.fn = fn;
  }
  async turn(input: TurnInput, ctx: AgentContext): Promise<unknown> {
    return await this.fn(input, ctx);
  }
}
