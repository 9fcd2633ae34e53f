import { alertId, type AlertManager } from './alerts';

/**
 * Alerts derived from devices' health messages: a device that stopped reporting (device-stale)
 * and a backlog that keeps not shrinking (backlog-growing). Times are the ingest's receive times,
 * not the device's clock, so a device whose clock jumps cannot fake or hide either alert.
 */

/** HealthReporter's default publishIntervalMs (components/health-reporter/config.ts). */
export const DEFAULT_HEALTH_INTERVAL_MS = 30_000;
export const DEFAULT_STALE_AFTER_INTERVALS = 3;
export const DEFAULT_BACKLOG_GROWING_MS = 10 * 60_000;

export interface HealthMonitorOptions {
  alerts: AlertManager;
  healthIntervalMs?: number;
  staleAfterIntervals?: number;
  backlogGrowingMs?: number;
}

/** The figure a backlog is judged by, from the StreamBuffer metrics inside a health message. */
export interface BacklogFigure {
  figure: 'backlogRecords' | 'oldestBacklogAgeSec';
  value: number;
}

interface HealthLike {
  time?: unknown;
  components?: Record<string, { metrics?: unknown } | undefined>;
}

/**
 * The backlog's record count when StreamBuffer reports it; otherwise the age of the oldest
 * unacknowledged record, from each stream's oldestBacklogTime against the message's time (an age
 * that keeps rising means the oldest record is not leaving). Undefined when neither is there.
 */
export function backlogFigure(health: HealthLike): BacklogFigure | undefined {
  const store = (health.components?.StreamBuffer?.metrics as { store?: { backlogRecords?: unknown; streams?: unknown } } | null | undefined)?.store;
  if (typeof store?.backlogRecords === 'number' && Number.isFinite(store.backlogRecords)) return { figure: 'backlogRecords', value: store.backlogRecords };
  const measuredAt = typeof health.time === 'string' ? Date.parse(health.time) : NaN;
  if (!Array.isArray(store?.streams) || Number.isNaN(measuredAt)) return undefined;
  const oldest = store.streams
    .map((s: { oldestBacklogTime?: unknown }) => s?.oldestBacklogTime)
    .filter((t: unknown): t is number => typeof t === 'number' && Number.isFinite(t));
  if (oldest.length === 0) return { figure: 'oldestBacklogAgeSec', value: 0 };
  return { figure: 'oldestBacklogAgeSec', value: Math.max(0, Math.round((measuredAt - Math.min(...oldest)) / 1000)) };
}

export class HealthMonitor {
  private readonly alerts: AlertManager;
  readonly healthIntervalMs: number;
  readonly staleAfterIntervals: number;
  readonly backlogGrowingMs: number;
  private readonly lastHealthAt = new Map<string, number>();
  /** Per device: the last figure, and when its current run of not decreasing began (undefined: empty backlog). */
  private readonly backlogs = new Map<string, { figure: BacklogFigure; firstValue: number; notDecreasingSinceMs: number | undefined }>();

  constructor(options: HealthMonitorOptions) {
    this.alerts = options.alerts;
    this.healthIntervalMs = positive('healthIntervalMs', options.healthIntervalMs ?? DEFAULT_HEALTH_INTERVAL_MS);
    this.staleAfterIntervals = positive('staleAfterIntervals', options.staleAfterIntervals ?? DEFAULT_STALE_AFTER_INTERVALS);
    this.backlogGrowingMs = positive('backlogGrowingMs', options.backlogGrowingMs ?? DEFAULT_BACKLOG_GROWING_MS);
  }

  get staleAfterMs(): number {
    return this.healthIntervalMs * this.staleAfterIntervals;
  }

  /** A device known from the archive before this start: it is expected to report again. */
  seed(device: string, lastReceivedAtMs: number): void {
    if (!this.lastHealthAt.has(device)) this.lastHealthAt.set(device, lastReceivedAtMs);
  }

  /** Whether the device has reported health (since start, or before it per the archive). */
  knows(device: string): boolean {
    return this.lastHealthAt.has(device);
  }

  /** A valid health message from device arrived at receivedAtMs. */
  onHealth(device: string, health: HealthLike, receivedAtMs: number): void {
    const previousAt = this.lastHealthAt.get(device);
    this.lastHealthAt.set(device, receivedAtMs);
    this.alerts.clear(alertId('device-stale', device), `${device} reports health again.`, {
      silentForSec: previousAt === undefined ? null : Math.round((receivedAtMs - previousAt) / 1000),
    });
    this.trackBacklog(device, backlogFigure(health), receivedAtMs);
  }

  /** Fires device-stale for every device silent for longer than staleAfterIntervals health intervals. */
  check(nowMs: number): void {
    for (const [device, lastAt] of this.lastHealthAt) {
      const silentMs = nowMs - lastAt;
      if (silentMs <= this.staleAfterMs) continue;
      this.alerts.fire({
        kind: 'device-stale',
        device,
        message: `${device} has sent no health message for ${Math.round(silentMs / 1000)} s (expected every ${this.healthIntervalMs / 1000} s): check its network link, then whether Greengrass and HealthReporter are running.`,
        details: { lastHealthAt: new Date(lastAt).toISOString(), healthIntervalMs: this.healthIntervalMs, staleAfterIntervals: this.staleAfterIntervals },
      });
    }
  }

  private trackBacklog(device: string, figure: BacklogFigure | undefined, atMs: number): void {
    if (!figure) return;
    const id = alertId('backlog-growing', device);
    const previous = this.backlogs.get(device);
    const comparable = previous !== undefined && previous.figure.figure === figure.figure;
    const fell = comparable && figure.value < previous.figure.value;
    if (figure.value === 0 || fell || !comparable) {
      // A new run of not decreasing starts here (or there is no backlog at all).
      this.backlogs.set(device, { figure, firstValue: figure.value, notDecreasingSinceMs: figure.value > 0 ? atMs : undefined });
      if (figure.value === 0 || fell) {
        this.alerts.clear(id, `The backlog of ${device} is falling again (${figure.figure} ${figure.value}).`, { [figure.figure]: figure.value });
      }
      return;
    }
    const since = previous.notDecreasingSinceMs ?? atMs;
    this.backlogs.set(device, { figure, firstValue: previous.notDecreasingSinceMs === undefined ? figure.value : previous.firstValue, notDecreasingSinceMs: since });
    const forMs = atMs - since;
    if (forMs <= this.backlogGrowingMs) return;
    const entry = this.backlogs.get(device)!;
    this.alerts.fire({
      kind: 'backlog-growing',
      device,
      message: `The backlog of ${device} has not decreased for ${Math.round(forMs / 1000)} s (${figure.figure} ${entry.firstValue} -> ${figure.value}): records are not leaving the device; check MqttPublisher and the link.`,
      details: { figure: figure.figure, from: entry.firstValue, to: figure.value, notDecreasingSince: new Date(since).toISOString(), backlogGrowingMs: this.backlogGrowingMs },
    });
  }
}

function positive(name: string, value: number): number {
  if (!(value > 0) || !Number.isFinite(value)) throw new RangeError(`${name} must be a finite number > 0, got ${value}`);
  return value;
}
