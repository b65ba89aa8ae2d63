import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/log.ts';
import { PollLoop } from '../core/poll-loop.ts';
import type { Store } from '../store/store.ts';
import type { Embed } from './embedder.ts';
import type { EmbedderSettings } from './settings.ts';

/** How long the backfill sleeps when the queue is empty (an embedding waits at most about this long after its write). */
const IDLE_MS = 1_000;

/**
 * Embeds facts after they are written, so a `remember` never waits on a model: a
 * write with text queues its version (memory_embed_queue, same transaction), and this
 * loop takes batches off the queue, asks the embedder agent for their vectors and
 * stores them. The queue is in the store, so a crash loses nothing; a failing
 * embedder leaves the batch queued and is retried with the loop's backoff. At start
 * (and when the dimensions change) facts with no embedding of the configured
 * dimensions are queued: the backfill of facts written before vectors were turned on.
 */
export class EmbeddingBackfill {
  private readonly store: Store;
  private readonly clock: Clock;
  private settings: EmbedderSettings | null;
  private embed: Embed | null;
  private readonly loop: PollLoop;
  private queuedFor: number | null = null;

  constructor(opts: { store: Store; clock: Clock; log: Logger; settings: EmbedderSettings | null; embed: Embed | null }) {
    this.store = opts.store;
    this.clock = opts.clock;
    this.settings = opts.settings;
    this.embed = opts.embed;
    this.loop = new PollLoop({ name: 'memory embed', clock: opts.clock, log: opts.log, pass: () => this.pass(), retryMs: (n) => Math.min(60_000, 1_000 * 2 ** Math.min(n, 6)) });
  }

  start(): void {
    if (this.settings) this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  reconfigure(settings: EmbedderSettings | null, embed: Embed | null): void {
    this.settings = settings;
    this.embed = embed;
    if (settings && !this.loop.running) this.loop.start();
  }

  /** Queues what lacks an embedding of the current dimensions (once per dimensions), then embeds one batch; returns how many it embedded. */
  async passOnce(): Promise<number> {
    const s = this.settings;
    if (!s || !this.embed) return 0;
    if (this.queuedFor !== s.dimensions) {
      await this.store.memory.queueUnembedded(s.dimensions, this.clock.now());
      this.queuedFor = s.dimensions;
    }
    const items = await this.store.memory.embedQueue(s.batch, this.clock.now());
    if (items.length === 0) return 0;
    const vectors = await this.embed(items.map((i) => i.text));
    await this.store.memory.saveEmbeddings(
      items.map((item, n) => ({ id: item.id, tenant: item.tenant, vector: vectors[n]! })),
      this.clock.now(),
    );
    return items.length;
  }

  private async pass(): Promise<number> {
    if (!this.settings) return IDLE_MS;
    return (await this.passOnce()) >= this.settings.batch ? 0 : IDLE_MS;
  }
}
