import { createRequire } from 'node:module';
import type { Ajv2020, ErrorObject, ValidateFunction } from 'ajv/dist/2020.js';
import { SpineError, type FieldIssue } from '../core/errors.ts';
import { digest } from '../core/digest.ts';
import type { Json } from '../core/types.ts';
import { BUILTIN_CONTRACTS, isBuiltinContract } from './builtin.ts';

/**
 * Contracts are JSON Schema (2020-12) documents, named and versioned
 * (`research.request@2`). A config's contracts are compiled when the config is
 * compiled (a bad schema is a config error); the built-in ones, known to be valid,
 * on their first check. Each validator is compiled once and reused.
 */

export interface ContractDefinition {
  schema: Json;
  /** Other contracts whose payloads this one accepts as declared-compatible (e.g. an older version). */
  accepts?: string[];
  description?: string;
}

export interface ContractRef {
  name: string;
  version: number;
  /** `name@version` */
  id: string;
}

export interface Contract extends ContractRef {
  schema: Json;
  accepts: readonly string[];
  digest: string;
}

export const CONTRACT_ID = /^((?:spine\/)?[A-Za-z][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*)@([1-9][0-9]*)$/;

export function parseContractId(id: string): ContractRef | null {
  const m = CONTRACT_ID.exec(id);
  return m ? { name: m[1]!, version: Number(m[2]), id } : null;
}

/** A payload that does not satisfy its contract; lists every violation. */
export class ContractViolationError extends SpineError {
  readonly contract: string;
  readonly violations: FieldIssue[];
  /** `retryable`: an agent's own output, which its next attempt may correct; bad input from a caller is not. */
  constructor(contract: string, where: string, violations: FieldIssue[], opts: { retryable?: boolean } = {}) {
    super('CONTRACT_VIOLATION', `${where} violates ${contract}: ${violations.map((v) => `${v.path || '(root)'} ${v.message}`).join('; ')}`, {
      retryable: opts.retryable ?? false,
      details: { contract, violations: violations.map((v) => ({ path: v.path, message: v.message })) },
    });
    this.contract = contract;
    this.violations = violations;
  }
}

/** A handoff whose contract the receiving agent does not accept. */
export class ContractMismatchError extends SpineError {
  constructor(given: string, expected: string) {
    super('CONTRACT_MISMATCH', `payload declared as ${given}, but the receiver expects ${expected} and does not declare it accepts ${given}`);
  }
}

// ajv and ajv-formats (about 90 modules, ~5 MB of an idle `spine up`) load on the first
// compile, which a config declaring no contracts of its own reaches only on a first check.
// Both are CommonJS, so `require` loads them synchronously inside the sync API.
const require = createRequire(import.meta.url);

function newAjv(): Ajv2020 {
  const ajv = new (require('ajv/dist/2020.js') as { Ajv2020: typeof Ajv2020 }).Ajv2020({ allErrors: true, strict: false });
  (require('ajv-formats') as { default: (ajv: Ajv2020) => Ajv2020 }).default(ajv);
  return ajv;
}

export class ContractRegistry {
  private ajv: Ajv2020 | null = null;
  private readonly contracts = new Map<string, Contract>();
  private readonly validators = new Map<string, ValidateFunction>();

  constructor() {
    for (const b of BUILTIN_CONTRACTS) {
      const ref = parseContractId(b.id)!;
      this.contracts.set(b.id, { ...ref, schema: b.schema, accepts: [], digest: digest(b.schema) });
    }
  }

  /** Contracts declared by the config (the built-in `spine/` ones are not counted). */
  get size(): number {
    return this.contracts.size - BUILTIN_CONTRACTS.length;
  }

  ids(): string[] {
    return [...this.contracts.keys()];
  }

  /** Compiles and registers a contract; returns the problems (for config errors) instead of throwing. */
  add(id: string, def: ContractDefinition): FieldIssue[] {
    if (isBuiltinContract(id)) return [{ path: '', message: 'the spine/ namespace is reserved for built-in contracts' }];
    return this.register(id, def);
  }

  private register(id: string, def: ContractDefinition): FieldIssue[] {
    const ref = parseContractId(id);
    if (!ref) return [{ path: '', message: 'contract names are name@version, e.g. research.request@2' }];
    try {
      this.validators.set(id, this.compile(def.schema));
    } catch (err) {
      return [{ path: 'schema', message: `not a valid JSON Schema: ${err instanceof Error ? err.message : String(err)}` }];
    }
    this.contracts.set(id, { ...ref, schema: def.schema, accepts: def.accepts ?? [], digest: digest(def.schema) });
    return [];
  }

  private compile(schema: Json): ValidateFunction {
    return (this.ajv ??= newAjv()).compile(schema as object);
  }

  private validator(c: Contract): ValidateFunction {
    let v = this.validators.get(c.id);
    if (!v) this.validators.set(c.id, (v = this.compile(c.schema)));
    return v;
  }

  get(id: string): Contract | undefined {
    return this.contracts.get(id);
  }

  has(id: string): boolean {
    return this.contracts.has(id);
  }

  /** Returns every violation of `value` against the contract (empty when valid). */
  violations(id: string, value: unknown): FieldIssue[] {
    const c = this.contracts.get(id);
    if (!c) return [{ path: '', message: `unknown contract ${id}` }];
    const validate = this.validator(c);
    if (validate(value)) return [];
    return (validate.errors ?? []).map(toIssue);
  }

  /** Whether a payload declared as `given` may be handed to a receiver expecting `expected`. */
  accepts(expected: string, given: string): boolean {
    if (expected === given) return true;
    return this.contracts.get(expected)?.accepts.includes(given) ?? false;
  }
}

function toIssue(e: ErrorObject): FieldIssue {
  const path = e.instancePath.replace(/^\//, '').replace(/\//g, '.');
  let message = e.message ?? 'is invalid';
  if (e.keyword === 'required') message = `must have property "${String((e.params as { missingProperty: string }).missingProperty)}"`;
  if (e.keyword === 'additionalProperties') message = `must not have property "${String((e.params as { additionalProperty: string }).additionalProperty)}"`;
  if (e.keyword === 'enum') message = `must be one of ${JSON.stringify((e.params as { allowedValues: unknown[] }).allowedValues)}`;
  return { path, message };
}
