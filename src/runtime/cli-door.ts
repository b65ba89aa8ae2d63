import { cliEnvelope, osUser } from '../channels/cli.ts';
import type { CompiledConfig } from '../config/load.ts';
import { systemClock, type Clock } from '../core/clock.ts';
import { InvalidInputError, SpineError } from '../core/errors.ts';
import type { Json, Run } from '../core/types.ts';
import { Intake } from '../intake/intake.ts';
import type { EnvelopeRecord, Store } from '../store/store.ts';

export interface CliSend {
  /** The agent addressed directly (no binding decides). */
  agent: string;
  text: string;
  /** `--input <json>`: the envelope's data and the run's input exactly (channels/cli.ts). */
  input?: Json;
  idempotencyKey?: string | null;
  /** Whose spend this is, for daily cost ceilings. */
  tenant?: string;
  /** Default: the OS user. */
  user?: string;
}

export interface CliSent {
  run: Run;
  envelope: EnvelopeRecord;
  /** False when the idempotency key was used before: the first envelope's run. */
  created: boolean;
}

/**
 * The CLI's door: `spine send` and `spine up --send` submit through intake as an
 * envelope on the `cli` channel, from the OS user, addressed to the agent — so
 * there is an envelope, a session and an `envelope.received` audit event, as for
 * every other way in. Unknown agents and input that breaks the agent's contract are
 * refused by intake before anything is stored.
 */
export async function sendFromCli(intake: Pick<Intake, 'accept'>, req: CliSend): Promise<CliSent> {
  const user = req.user ?? osUser();
  const envelope = cliEnvelope({ text: req.text, ...(req.input === undefined ? {} : { input: req.input }), idempotencyKey: req.idempotencyKey ?? null, user });
  const r = await intake.accept(envelope, { actor: `cli:${user}`, agent: req.agent, ...(req.tenant ? { tenant: req.tenant } : {}) });
  if (!r.run) throw SpineError.fromInfo(r.envelope.error ?? { code: 'UNROUTABLE', message: `envelope ${r.envelope.id} started no run (${r.envelope.state})`, retryable: false });
  return { run: r.run, envelope: r.envelope, created: r.created };
}

/**
 * Work with no text and no --input is refused before intake, unless the agent declares
 * an input contract: then the contract decides (at the boundary) whether empty text is
 * input it accepts. Without one, `{"text": ""}` would start a run about nothing.
 */
export function assertSomethingToSend(config: Pick<CompiledConfig, 'registry'>, req: Pick<CliSend, 'agent' | 'text' | 'input'>, field: string): void {
  if (req.input !== undefined || req.text.trim() !== '') return;
  const spec = config.registry.agents.get(req.agent);
  if (!spec || spec.input !== null) return;
  throw new InvalidInputError(field, `missing: what should ${req.agent} work on? Give a text, or --input <json> (an agent with an input contract decides whether empty text is allowed)`);
}

/** An intake for a command that only submits (no services run). */
export function cliIntake(config: CompiledConfig, store: Store, clock: Clock = systemClock): Intake {
  return new Intake(store, config.registry, config.routing, clock);
}
