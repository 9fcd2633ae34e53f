import { errorMessage, type Logger } from '../shared/logger';
import type { StoreStats, StreamStore } from '../shared/store';

/**
 * StreamBuffer's periodic work on the store it owns: byte-cap retention, WAL checkpoints and
 * stats for health. main.ts wires it to a real store and a heartbeat publisher; tests drive it
 * directly.
 */

export interface BufferConfig {
  /** Cap on the backlog's record data bytes (not file size; see StreamStore.enforceRetention). */
  maxStoreBytes: number;
  retentionIntervalMs: number;
  checkpointIntervalMs: number;
  statsIntervalMs: number;
}

export type BufferStats = StoreStats & { droppedTotal: number };

export const DEFAULT_BUFFER_CONFIG: BufferConfig = {
  // 256 MiB of record data holds about 1.3 million 200-byte records: days of events and metrics
  // offline, while leaving room for the SQLite overhead and WAL on a small device's data partition.
  maxStoreBytes: 256 * 1024 * 1024,
  // Retention runs more often than the stats it feeds, so health never reports a stale overrun.
  retentionIntervalMs: 5_000,
  // SQLite auto-checkpoints passively every 1000 pages but never truncates the WAL; a periodic
  // TRUNCATE keeps the -wal file from holding its high-water size forever.
  checkpointIntervalMs: 60_000,
  statsIntervalMs: 5_000,
};

/** Bounds for every interval: below 100 ms a tick is mostly overhead, above 1 h health goes stale. */
const INTERVAL_RANGE = { min: 100, max: 3_600_000 };

export function validateBufferConfig(config: BufferConfig): void {
  if (!Number.isSafeInteger(config.maxStoreBytes) || config.maxStoreBytes < 1) {
    throw new RangeError(`maxStoreBytes must be a positive integer, got ${String(config.maxStoreBytes)}`);
  }
  for (const key of ['retentionIntervalMs', 'checkpointIntervalMs', 'statsIntervalMs'] as const) {
    const value = config[key];
    if (!Number.isFinite(value) || value < INTERVAL_RANGE.min || value > INTERVAL_RANGE.max) {
      throw new RangeError(`${key} must be between ${INTERVAL_RANGE.min} and ${INTERVAL_RANGE.max} ms, got ${String(value)}`);
    }
  }
}

type TaskName = 'retention' | 'checkpoint' | 'stats';

export class StreamBuffer {
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly running = new Map<TaskName, Promise<void>>();
  private stopping: Promise<void> | null = null;

  constructor(
    private readonly store: StreamStore,
    private readonly config: BufferConfig,
    private readonly logger: Logger,
    private readonly publishStats: (stats: BufferStats) => Promise<void>,
  ) {
    validateBufferConfig(config);
  }

  start(): void {
    if (this.stopping) throw new Error('StreamBuffer was stopped; create a new one');
    if (this.timers.length > 0) return;
    this.timers.push(
      setInterval(() => this.tick('retention', () => this.runRetentionOnce()), this.config.retentionIntervalMs),
      setInterval(() => this.tick('checkpoint', () => this.store.checkpoint()), this.config.checkpointIntervalMs),
      setInterval(() => this.tick('stats', () => this.publishOnce()), this.config.statsIntervalMs),
    );
    this.logger.info('stream buffer started', { path: this.store.path, epoch: this.store.epoch, ...this.config });
  }

  async runRetentionOnce(): Promise<{ dropped: number; droppedBytes: number }> {
    const result = await this.store.enforceRetention({ maxBytes: this.config.maxStoreBytes });
    for (const [stream, drop] of Object.entries(result.byStream)) {
      this.logger.warn('records dropped by byte cap', {
        stream,
        count: drop.count,
        bytes: drop.bytes,
        firstSeq: drop.firstSeq,
        lastSeq: drop.lastSeq,
        epoch: this.store.epoch,
        maxStoreBytes: this.config.maxStoreBytes,
      });
    }
    return { dropped: result.dropped, droppedBytes: result.droppedBytes };
  }

  /** Reads the store's stats and hands them to publishStats; droppedTotal counts every drop ever recorded in this epoch. */
  async publishOnce(): Promise<BufferStats> {
    const stats = await this.store.stats();
    const droppedTotal = stats.streams.reduce((sum, s) => sum + Object.values(s.drops).reduce((a, b) => a + b, 0), 0);
    const full: BufferStats = { ...stats, droppedTotal };
    await this.publishStats(full);
    return full;
  }

  /** Clears the timers, waits for any tick in progress, then runs a final checkpoint. Never throws. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    for (const timer of this.timers.splice(0)) clearInterval(timer);
    await Promise.all(this.running.values());
    try {
      await this.store.checkpoint();
      this.logger.info('stream buffer stopped, final checkpoint done', { path: this.store.path });
    } catch (error) {
      this.logger.error('final checkpoint failed', { path: this.store.path, error: errorMessage(error) });
    }
  }

  /** One timer tick: skipped while the previous one of the same task still runs; an error is logged, never thrown. */
  private tick(name: TaskName, work: () => Promise<unknown>): void {
    if (this.stopping || this.running.has(name)) return;
    const run = (async () => {
      try {
        await work();
      } catch (error) {
        // A failed stats publish is usually a busy or restarting nucleus and heals by itself.
        this.logger.log(name === 'stats' ? 'warn' : 'error', `${name} tick failed`, { task: name, error: errorMessage(error) });
      } finally {
        this.running.delete(name);
      }
    })();
    this.running.set(name, run);
  }
}
