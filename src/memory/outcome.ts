import type { Json } from '../core/types.ts';
import type { FactVersion, WriteOutcome } from '../store/memory.ts';

/**
 * What a memory write answers the agent, as its effects-ledger entry: the same now and
 * on every replay of the write's effect key. A lost compare-and-set is an error
 * holding both sides, so the writer's next turn can merge and write again.
 */
export function writeLedgerEntry(o: Exclude<WriteOutcome, { kind: 'replayed' }>): { result: Json } | { error: { code: string; message: string; retryable: boolean; details: Json } } {
  if (o.kind === 'conflict') {
    const c = o.conflict;
    return {
      error: {
        code: 'MEMORY_CONFLICT',
        message: `${c.scope} ${c.key}: expected version ${c.expectedVersion}, found ${c.currentVersion} (strategy ${c.strategy}: ${c.state === 'open' ? 'queued for resolution' : 'rejected'})`,
        retryable: false,
        details: { conflict: c.id, state: c.state, strategy: c.strategy, yours: c.proposed, theirs: o.current ? factRef(o.current, true) : null },
      },
    };
  }
  return { result: { ...factRef(o.fact, false), written: o.kind === 'written', ...(o.kind === 'written' && o.conflict ? { resolved: { conflict: o.conflict.id, strategy: o.conflict.strategy } } : {}) } };
}

export function factRef(f: FactVersion, withValue: boolean): { [k: string]: Json } {
  return { id: f.id, scope: f.scope, key: f.key, version: f.version, ...(withValue ? { value: f.value } : {}) };
}
