import { errorMessage, type Logger } from '../shared/logger';
import { NO_DEFERRAL, type UpdateDeferral } from '../shared/deployment-hooks';
import type { DropReason, RetentionResult, StoreStats, StreamStore } from '../shared/store';

/**
 * StreamBuffer's periodic work on the store it owns: retention (age cap, byte cap, disk-space
 * guard), WAL checkpoints and stats for health. main.ts wires it to a real store and a heartbeat
 * publisher; tests drive it directly.
 */

export interface BufferConfig {
  /** Cap on the backlog's record data bytes (not file size; see StreamStore.enforceRetention). */
  maxStoreBytes: number;
  /** Records older than this by their wall-clock time are dropped (`age-cap`); 0 disables. */
  maxRecordAgeSec: number;
  /** While the store's filesystem has less free than this, records are evicted (`disk-guard`); 0 disables. */
  minFreeDiskBytes: number;
  retentionIntervalMs: number;
  checkpointIntervalMs: number;
  statsIntervalMs: number;
}

export type BufferStats = StoreStats & { droppedTotal: number };

export const DEFAULT_BUFFER_CONFIG: BufferConfig = {
  // 256 MiB of record data holds about 1.3 million 200-byte records: days of events and metrics
  // offline, while leaving room for the SQLite overhead and WAL on a small device's data partition.
  maxStoreBytes: 256 * 1024 * 1024,
  // 7 days: AWS IoT Core keeps a persistent session at most 7 days (the brief's platform facts),
  // so a device offline longer is already treated as a new client; older readings are dropped and
  // reported rather than kept for an outage the fleet's operations have given up on.
  maxRecordAgeSec: 7 * 24 * 3600,
  // 64 MiB left to the rest of the device (logs, the nucleus, deployments) on its data partition.
  minFreeDiskBytes: 64 * 1024 * 1024,
  // Retention runs more often than the stats it feeds, so health never reports a stale overrun.
  retentionIntervalMs: 5_000,
  // SQLite auto-checkpoints passively every 1000 pages but never truncates the WAL; a periodic
  // TRUNCATE keeps the -wal file from holding its high-water size forever.
  checkpointIntervalMs: 60_000,
  statsIntervalMs: 5_000,
};

/** Bounds for every interval: below 100 ms a tick is mostly overhead, above 1 h health goes stale. */
const INTERVAL_RANGE = { min: 100, max: 3_600_000 };
/** A retention pass or checkpoint takes well under a second on a device; each deferral asks for that much. */
const UPDATE_DEFER_STEP_MS = 1000;

export function validateBufferConfig(config: BufferConfig): void {
  if (!Number.isSafeInteger(config.maxStoreBytes) || config.maxStoreBytes < 1) {
    throw new RangeError(`maxStoreBytes must be a positive integer, got ${String(config.maxStoreBytes)}`);
  }
  if (!Number.isSafeInteger(config.maxRecordAgeSec) || config.maxRecordAgeSec < 0 || !Number.isSafeInteger(config.maxRecordAgeSec * 1000)) {
    throw new RangeError(`maxRecordAgeSec must be an integer >= 0 (0 disables the age cap), got ${String(config.maxRecordAgeSec)}`);
  }
  if (!Number.isSafeInteger(config.minFreeDiskBytes) || config.minFreeDiskBytes < 0) {
    throw new RangeError(`minFreeDiskBytes must be an integer >= 0 (0 disables the disk guard), got ${String(config.minFreeDiskBytes)}`);
  }
  for (const key of ['retentionIntervalMs', 'checkpointIntervalMs', 'statsIntervalMs'] as const) {
    const value = config[key];
    if (!Number.isFinite(value) || value < INTERVAL_RANGE.min || value > INTERVAL_RANGE.max) {
      throw new RangeError(`${key} must be between ${INTERVAL_RANGE.min} and ${INTERVAL_RANGE.max} ms, got ${String(value)}`);
    }
  }
}

export interface BufferClock {
  /** Wall-clock ms (Date.now). */
  wallMs(): number;
  /** Monotonic ms of this process (performance.now). */
  monoMs(): number;
}

export interface BufferOptions {
  clock?: BufferClock;
  /** Free bytes of the store's filesystem; defaults to statfs (see StreamStore.enforceRetention). For tests. */
  freeBytes?: () => number;
}

const SYSTEM_CLOCK: BufferClock = { wallMs: () => Date.now(), monoMs: () => performance.now() };

/** Forward steps of the wall clock below this are ignored: NTP corrections, a late timer tick. */
export const CLOCK_JUMP_TOLERANCE_MS = 60_000;

/**
 * Guards the age cap against a forward step of the wall clock. Records carry the wall-clock time
 * they were sampled at; the monotonic time in them belongs to the acquisition process and cannot
 * be compared across processes or boots, so age is judged by wall clock. When the clock steps
 * forward by J (a device that booted with a stale clock and then synced), every record sampled
 * before the step looks J older than it is. This watches wall against its own monotonic clock
 * between retention runs; after a step it extends the age cap by J for one cap length of
 * monotonic time, after which every record stamped before the step is truly older than the cap.
 * Records stamped after the step may live up to J longer meanwhile (the byte cap and disk guard
 * still bound them). A backward step makes records look younger, which only keeps them longer.
 * Not remembered across restarts: a step while StreamBuffer is down ages those records early.
 */
export class ClockJumpAllowance {
  private last: { wall: number; mono: number } | null = null;
  private allowanceMs = 0;
  private untilMono = 0;

  /** Call once per retention run; returns the ms to add to the age cap, and the jump seen now (0 if none). */
  update(wall: number, mono: number, maxAgeMs: number): { allowanceMs: number; jumpMs: number } {
    let jumpMs = 0;
    if (this.last) {
      const step = wall - this.last.wall - (mono - this.last.mono);
      if (step > CLOCK_JUMP_TOLERANCE_MS) {
        jumpMs = step;
        this.allowanceMs += step;
        this.untilMono = mono + maxAgeMs;
      }
    }
    this.last = { wall, mono };
    if (this.allowanceMs > 0 && mono >= this.untilMono) this.allowanceMs = 0;
    return { allowanceMs: this.allowanceMs, jumpMs };
  }
}

/** At most this many exact ranges in one drop log line; the rest are counted (all are in drop_log). */
const LOGGED_RANGES = 20;

type TaskName = 'retention' | 'checkpoint' | 'stats';

export class StreamBuffer {
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly running = new Map<TaskName, Promise<void>>();
  private stopping: Promise<void> | null = null;
  private readonly clock: BufferClock;
  private readonly jumps = new ClockJumpAllowance();

  constructor(
    private readonly store: StreamStore,
    private config: BufferConfig,
    private readonly logger: Logger,
    private readonly publishStats: (stats: BufferStats) => Promise<void>,
    private readonly options: BufferOptions = {},
  ) {
    validateBufferConfig(config);
    this.clock = options.clock ?? SYSTEM_CLOCK;
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

  /** New limits and intervals apply at once: the timers restart with the new periods. */
  reconfigure(config: BufferConfig): void {
    validateBufferConfig(config);
    this.config = config;
    if (this.timers.length === 0 || this.stopping) return;
    for (const timer of this.timers.splice(0)) clearInterval(timer);
    this.start();
  }

  /** What is running now: a retention pass (with its deletes) or a checkpoint should finish before a restart. */
  busyWith(): string[] {
    return [...this.running.keys()].filter((task) => task !== 'stats');
  }

  /** While a retention pass or a checkpoint runs, an update waits 1 s at a time (DeploymentHooks bounds the total). */
  updateDeferral(): UpdateDeferral {
    const busy = this.busyWith();
    return busy.length > 0 ? { ms: UPDATE_DEFER_STEP_MS, reason: `${busy.join(' and ')} in progress on the store` } : NO_DEFERRAL;
  }

  /** One retention pass with all three rules; every drop is logged (warn) per stream and rule with its exact seq ranges. */
  async runRetentionOnce(): Promise<{ dropped: number; droppedBytes: number; byReason: Partial<Record<DropReason, number>> }> {
    const now = this.clock.wallMs();
    let maxAgeMs: number | undefined;
    if (this.config.maxRecordAgeSec > 0) {
      const capMs = this.config.maxRecordAgeSec * 1000;
      const { allowanceMs, jumpMs } = this.jumps.update(now, this.clock.monoMs(), capMs);
      if (jumpMs > 0) {
        this.logger.warn('wall clock jumped forward; age cap extended so older records are not aged early', {
          jumpMs,
          allowanceMs,
          maxRecordAgeSec: this.config.maxRecordAgeSec,
        });
      }
      // The monotonic clock has sub-millisecond fractions, so a jump can too; the store takes
      // whole milliseconds, and rounding up keeps a record rather than ages it early.
      maxAgeMs = capMs + Math.ceil(allowanceMs);
    }
    const result = await this.store.enforceRetention({
      maxBytes: this.config.maxStoreBytes,
      maxAgeMs,
      minFreeBytes: this.config.minFreeDiskBytes > 0 ? this.config.minFreeDiskBytes : undefined,
      freeBytes: this.options.freeBytes,
      now,
    });
    this.logDrops(result);
    return { dropped: result.dropped, droppedBytes: result.droppedBytes, byReason: result.byReason };
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

  private logDrops(result: RetentionResult): void {
    const groups = new Map<string, RetentionResult['ranges']>();
    for (const range of result.ranges) {
      const key = `${range.stream}\u0000${range.reason}`;
      const group = groups.get(key);
      if (group) group.push(range);
      else groups.set(key, [range]);
    }
    for (const ranges of groups.values()) {
      const { stream, reason, epoch } = ranges[0]!;
      this.logger.warn('records dropped by retention', {
        stream,
        reason,
        epoch,
        count: ranges.reduce((n, r) => n + r.count, 0),
        bytes: ranges.reduce((n, r) => n + r.bytes, 0),
        firstSeq: Math.min(...ranges.map((r) => r.seqFrom)),
        lastSeq: Math.max(...ranges.map((r) => r.seqTo)),
        ranges: ranges.slice(0, LOGGED_RANGES).map((r) => [r.seqFrom, r.seqTo]),
        rangesNotLogged: Math.max(0, ranges.length - LOGGED_RANGES),
        limit: this.limitFor(reason),
      });
    }
  }

  private limitFor(reason: DropReason): Record<string, number> {
    if (reason === 'age-cap') return { maxRecordAgeSec: this.config.maxRecordAgeSec };
    if (reason === 'disk-guard') return { minFreeDiskBytes: this.config.minFreeDiskBytes };
    return { maxStoreBytes: this.config.maxStoreBytes };
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
