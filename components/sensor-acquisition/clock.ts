import { existsSync } from 'node:fs';
import { monotonicMs } from '../shared/monotonic';
import type { Logger } from '../shared/logger';
import type { ClockSync } from '../shared/store';

/**
 * Watches the wall clock against CLOCK_MONOTONIC. Sequence numbers, not timestamps, decide order
 * and dedupe, so a clock step cannot reorder or duplicate records; what a step can do is make
 * wall-clock stamps wrong, and this says so on every record.
 *
 * - 'synced': systemd-timesyncd reports synchronisation (it creates /run/systemd/timesync/synchronized),
 *   and no step was seen recently;
 * - 'unsynced': the wall clock stepped by more than STEP_THRESHOLD_MS relative to the monotonic
 *   clock within the last UNSYNCED_HOLD_MS: stamps around the step may be wrong;
 * - 'unknown': nothing tells either way (no timesyncd, e.g. chrony or no NTP at all).
 */
export const STEP_THRESHOLD_MS = 1000;
export const UNSYNCED_HOLD_MS = 60_000;
const TIMESYNCD_FLAG = '/run/systemd/timesync/synchronized';

export class ClockMonitor {
  private lastWall = Date.now();
  private lastMono = monotonicMs();
  private lastStepAt = -Infinity;
  /** In every SensorAcquisition heartbeat: HealthReporter's clock rule reads clockState. */
  readonly metrics: { clockSteps: number; lastStepMs: number; clockState: ClockSync } = { clockSteps: 0, lastStepMs: 0, clockState: 'unknown' };

  constructor(
    private readonly logger: Logger,
    private readonly syncedFlag: () => boolean = () => existsSync(TIMESYNCD_FLAG),
  ) {}

  /** Call once per sampling tick; returns the state to stamp on this tick's records. */
  check(): ClockSync {
    const wall = Date.now();
    const mono = monotonicMs();
    const step = wall - this.lastWall - (mono - this.lastMono);
    this.lastWall = wall;
    this.lastMono = mono;
    if (Math.abs(step) > STEP_THRESHOLD_MS) {
      this.lastStepAt = mono;
      this.metrics.clockSteps += 1;
      this.metrics.lastStepMs = Math.round(step);
      this.logger.warn('wall clock stepped; records are ordered by sequence number, their wall time may be off', { stepMs: Math.round(step) });
    }
    this.metrics.clockState = mono - this.lastStepAt < UNSYNCED_HOLD_MS ? 'unsynced' : this.syncedFlag() ? 'synced' : 'unknown';
    return this.metrics.clockState;
  }
}
