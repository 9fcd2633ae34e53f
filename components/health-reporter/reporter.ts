import { freemem, loadavg, totalmem, cpus } from 'node:os';
import { scheduleOffsetMs } from '../shared/schedule';
import { statfsSync } from 'node:fs';
import { errorMessage, type Logger } from '../shared/logger';
import heartbeatSchema from '../shared/schemas/heartbeat.v1.schema.json';
import { compileValidator } from '../shared/validation';

/**
 * Gathers heartbeats from the other components and system figures, decides healthy / degraded /
 * unhealthy with the thresholds in its configuration, and publishes a health message on an
 * interval and at once when the status changes.
 */
export type HealthStatus = 'healthy' | 'degraded' | 'unhealthy';

export interface HealthConfig {
  publishIntervalMs: number;
  expectedComponents: string[];
  /** The heartbeat interval the other components use. */
  heartbeatIntervalMs: number;
  /** A component whose heartbeat is older than this many intervals counts as missing. */
  missedHeartbeats: number;
  /** Oldest unacknowledged record older than this makes the device degraded. */
  backlogAgeDegradedSec: number;
  /** Free space on the store's filesystem under this makes the device unhealthy. */
  diskFreeMinBytes: number;
  /** An unsynchronized wall clock (SensorAcquisition saw it step) makes the device degraded. */
  clockUnsyncedDegrades: boolean;
}

export interface Heartbeat {
  component: string;
  time: string;
  uptimeSec: number;
  metrics: Record<string, unknown>;
}

export interface HealthMessage {
  schema: 'elevator.health/1';
  device: string;
  time: string;
  status: HealthStatus;
  reasons: string[];
  components: Record<string, { lastSeenSec: number | null; metrics: Record<string, unknown> | null }>;
  system: {
    loadAvg1m: number;
    cpuCount: number;
    /** Share of CPU time not idle since the previous health message, all cores, 0..100. */
    cpuBusyPercent: number;
    memFreeBytes: number;
    memTotalBytes: number;
    diskFreeBytes: number | null;
    /** The wall clock as SensorAcquisition sees it: synced, unsynced (it stepped recently) or unknown. */
    clockState: 'synced' | 'unsynced' | 'unknown';
    /** The last wall-clock step SensorAcquisition measured against the monotonic clock, ms (0: none). */
    clockLastStepMs: number;
  };
}

const validateHeartbeat = compileValidator<Heartbeat>(heartbeatSchema);

export class HealthReporter {
  private readonly heartbeats = new Map<string, { receivedAt: number; heartbeat: Heartbeat }>();
  /** What SensorAcquisition's latest heartbeat added to its store counters since the one before. */
  private acquisitionDelta = { appendFailures: 0, droppedOverflow: 0, lostByPreviousProcess: 0 };
  private timer?: NodeJS.Timeout;
  private readonly cpu = new CpuUsage();
  private cpuBusyPercent = 0;
  private phaseTimer?: NodeJS.Timeout;
  private lastStatus?: HealthStatus;
  readonly metrics = { published: 0, publishFailures: 0, heartbeatsReceived: 0, invalidHeartbeats: 0 };

  constructor(
    private readonly device: string,
    private config: HealthConfig,
    private readonly storeDir: string | undefined,
    private readonly publish: (message: HealthMessage) => Promise<void>,
    private readonly logger: Logger,
  ) {}

  /** Health at once, then at this device's own phase of every interval (scheduleOffsetMs), so a fleet never reports in lock-step. */
  start(): void {
    void this.publishNow();
    this.schedule();
  }

  async stop(): Promise<void> {
    this.clearSchedule();
  }

  private schedule(): void {
    this.clearSchedule();
    const interval = this.config.publishIntervalMs;
    this.phaseTimer = setTimeout(() => {
      void this.publishNow();
      this.timer = setInterval(() => void this.publishNow(), interval);
    }, scheduleOffsetMs(this.device, interval));
  }

  private clearSchedule(): void {
    if (this.phaseTimer) clearTimeout(this.phaseTimer);
    if (this.timer) clearInterval(this.timer);
    this.phaseTimer = undefined;
    this.timer = undefined;
  }

  /** New thresholds apply to the next evaluation; a new interval restarts the timer. */
  reconfigure(config: HealthConfig): void {
    const restart = config.publishIntervalMs !== this.config.publishIntervalMs && (this.timer !== undefined || this.phaseTimer !== undefined);
    this.config = config;
    if (restart) this.schedule();
  }

  onHeartbeat(message: unknown, now = Date.now()): void {
    const checked = validateHeartbeat(message);
    if (!checked.ok) {
      this.metrics.invalidHeartbeats += 1;
      this.logger.warn('invalid heartbeat ignored', { reason: checked.reason, message });
      return;
    }
    const heartbeat = checked.value;
    this.metrics.heartbeatsReceived += 1;
    if (heartbeat.component === 'SensorAcquisition') {
      const before = this.heartbeats.get('SensorAcquisition')?.heartbeat;
      // A shorter uptime is a restarted process: its counters start from 0 again.
      const restarted = before !== undefined && heartbeat.uptimeSec < before.uptimeSec;
      const growth = (name: string): number => counterGrowth(before?.metrics[name], heartbeat.metrics[name], restarted);
      // A loss found at start is news even to a reporter that never saw the process before it
      // (after a reboot both start together), as long as that process has only just started: a
      // reporter restarted alone must not announce an old loss again.
      const lostAtStart = heartbeat.metrics.lostByPreviousProcess;
      const justStarted = heartbeat.uptimeSec * 1000 <= 3 * this.config.heartbeatIntervalMs;
      const lostByPreviousProcess = before === undefined ? (typeof lostAtStart === 'number' && lostAtStart > 0 && justStarted ? lostAtStart : 0) : growth('lostByPreviousProcess');
      this.acquisitionDelta = { appendFailures: growth('appendFailures'), droppedOverflow: growth('droppedOverflow'), lostByPreviousProcess };
    }
    this.heartbeats.set(heartbeat.component, { receivedAt: now, heartbeat });
    const status = this.evaluate(now).status;
    if (this.lastStatus !== undefined && status !== this.lastStatus) void this.publishNow();
  }

  evaluate(now = Date.now()): HealthMessage {
    const reasons: string[] = [];
    let status: HealthStatus = 'healthy';
    const worsen = (to: HealthStatus, reason: string): void => {
      reasons.push(reason);
      if (to === 'unhealthy' || status === 'healthy') status = to;
    };
    const components: HealthMessage['components'] = {};
    const staleAfterMs = this.config.heartbeatIntervalMs * this.config.missedHeartbeats;
    for (const name of this.config.expectedComponents) {
      const seen = this.heartbeats.get(name);
      components[name] = { lastSeenSec: seen ? Math.round((now - seen.receivedAt) / 1000) : null, metrics: seen?.heartbeat.metrics ?? null };
      if (!seen || now - seen.receivedAt > staleAfterMs) {
        worsen('degraded', `${name}: no heartbeat for ${this.config.missedHeartbeats} intervals (${staleAfterMs} ms)`);
      }
    }
    // The store refusing appends is data held in memory only, at risk if the process dies; past
    // maxPendingRecords it is data lost (reported to the cloud as acquisition-overflow later).
    const acquisition = this.heartbeats.get('SensorAcquisition');
    if (acquisition && this.acquisitionDelta.lostByPreviousProcess > 0) {
      worsen('unhealthy', `SensorAcquisition: ${this.acquisitionDelta.lostByPreviousProcess} samples held in memory were lost when its previous process ended (the cloud gets them as acquisition-overflow)`);
    }
    if (acquisition && this.acquisitionDelta.droppedOverflow > 0) {
      worsen('unhealthy', `SensorAcquisition: ${this.acquisitionDelta.droppedOverflow} samples dropped since its previous heartbeat: the store refused them beyond maxPendingRecords`);
    } else if (acquisition && this.acquisitionDelta.appendFailures > 0) {
      const pending = acquisition.heartbeat.metrics.pending;
      worsen('degraded', `SensorAcquisition: the store refused ${this.acquisitionDelta.appendFailures} appends since its previous heartbeat; ${typeof pending === 'number' ? pending : 'unknown'} samples wait in memory`);
    }
    const oldest = this.oldestBacklogTime();
    if (oldest !== null && (now - oldest) / 1000 > this.config.backlogAgeDegradedSec) {
      worsen('degraded', `oldest unacknowledged record is ${Math.round((now - oldest) / 1000)} s old (limit ${this.config.backlogAgeDegradedSec} s)`);
    }
    const diskFree = this.diskFreeBytes();
    if (diskFree !== null && diskFree < this.config.diskFreeMinBytes) {
      worsen('unhealthy', `disk free ${diskFree} bytes is under ${this.config.diskFreeMinBytes}`);
    }
    const clock = this.clock();
    if (clock.state === 'unsynced' && this.config.clockUnsyncedDegrades) {
      worsen('degraded', `wall clock not synchronized: it stepped by ${clock.lastStepMs} ms within the last minute; record times may be off`);
    }
    return {
      schema: 'elevator.health/1',
      device: this.device,
      time: new Date(now).toISOString(),
      status,
      reasons,
      components,
      system: {
        loadAvg1m: loadavg()[0],
        cpuCount: cpus().length,
        cpuBusyPercent: this.cpuBusyPercent,
        memFreeBytes: freemem(),
        memTotalBytes: totalmem(),
        diskFreeBytes: diskFree,
        clockState: clock.state,
        clockLastStepMs: clock.lastStepMs,
      },
    };
  }

  async publishNow(): Promise<void> {
    // Sampled per message, not per evaluation: every heartbeat evaluates the status, and sampling
    // there would shrink the window to the last few seconds before each message.
    this.cpuBusyPercent = this.cpu.busyPercent();
    const message = this.evaluate();
    if (message.status !== this.lastStatus) this.logger.info('health status', { status: message.status, reasons: message.reasons });
    this.lastStatus = message.status;
    try {
      await this.publish(message);
      this.metrics.published += 1;
    } catch (error) {
      this.metrics.publishFailures += 1;
      this.logger.warn('health message not published; next interval retries', { error: errorMessage(error) });
    }
  }

  private oldestBacklogTime(): number | null {
    const buffer = this.heartbeats.get('StreamBuffer')?.heartbeat.metrics as { store?: { streams?: Array<{ oldestBacklogTime: number | null }> } } | undefined;
    const times = (buffer?.store?.streams ?? []).map((s) => s.oldestBacklogTime).filter((t): t is number => typeof t === 'number');
    return times.length > 0 ? Math.min(...times) : null;
  }

  /** SensorAcquisition stamps every record with the clock state; its heartbeat carries the latest. */
  private clock(): { state: 'synced' | 'unsynced' | 'unknown'; lastStepMs: number } {
    const metrics = this.heartbeats.get('SensorAcquisition')?.heartbeat.metrics as { clockState?: unknown; lastStepMs?: unknown } | undefined;
    const state = metrics?.clockState === 'synced' || metrics?.clockState === 'unsynced' ? metrics.clockState : 'unknown';
    return { state, lastStepMs: typeof metrics?.lastStepMs === 'number' ? metrics.lastStepMs : 0 };
  }

  private diskFreeBytes(): number | null {
    if (!this.storeDir) return null;
    try {
      const stats = statfsSync(this.storeDir);
      return stats.bavail * stats.bsize;
    } catch {
      return null;
    }
  }
}

/** CPU busy share between two readings of the kernel's per-core times (os.cpus()). */
class CpuUsage {
  private last = CpuUsage.read();

  private static read(): { idle: number; total: number } {
    let idle = 0;
    let total = 0;
    for (const cpu of cpus()) {
      idle += cpu.times.idle;
      total += cpu.times.user + cpu.times.nice + cpu.times.sys + cpu.times.irq + cpu.times.idle;
    }
    return { idle, total };
  }

  busyPercent(): number {
    const now = CpuUsage.read();
    const total = now.total - this.last.total;
    const idle = now.idle - this.last.idle;
    this.last = now;
    return total > 0 ? Math.round((1 - idle / total) * 1000) / 10 : 0;
  }
}

/**
 * How much a counter grew between two heartbeats. After a restart (or a counter that went down)
 * all of it is new; with no heartbeat before (this reporter just started) nothing can be said
 * about when it grew.
 */
function counterGrowth(before: unknown, after: unknown, restarted: boolean): number {
  if (typeof after !== 'number' || typeof before !== 'number') return 0;
  return restarted || after < before ? after : after - before;
}
