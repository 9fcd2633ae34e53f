/**
 * What every heartbeat adds to a component's own figures, so one dashboard query works for all
 * components: per-second rates of the counters that have them, IPC reconnects, and the age of the
 * last successful publish. Rates compare two heartbeats, so the first heartbeat has none.
 */

/** Counters that only grow; a rate of each is worth a glance (append, publish and ack rates). */
export const RATE_COUNTERS = ['sampled', 'appended', 'quarantined', 'envelopesSent', 'recordsSent', 'recordsResent', 'recordsAcked', 'published'] as const;

export interface IpcCounters {
  connects: number;
  disconnects: number;
  callFailures: number;
}

export interface CommonFigures {
  /** Per second since the previous heartbeat, for each RATE_COUNTERS entry the component has. */
  ratesPerSec: Record<string, number>;
  /** IPC connections re-established after the first one. */
  ipcReconnects: number;
  ipcCallFailures: number;
  /** Seconds since the component's lastPublishAt, when it has one (null: never published). */
  sinceLastPublishSec?: number | null;
}

export class HeartbeatFigures {
  private previous?: { atMs: number; counters: Record<string, number> };

  common(metrics: Record<string, unknown>, ipc: IpcCounters, nowMs: number): CommonFigures {
    const counters: Record<string, number> = {};
    for (const name of RATE_COUNTERS) {
      const value = metrics[name];
      if (typeof value === 'number' && Number.isFinite(value)) counters[name] = value;
    }
    const ratesPerSec: Record<string, number> = {};
    if (this.previous && nowMs > this.previous.atMs) {
      const seconds = (nowMs - this.previous.atMs) / 1000;
      for (const [name, value] of Object.entries(counters)) {
        const before = this.previous.counters[name];
        // A counter that went down was reset (a restart of the part that owns it): no rate this time.
        if (before !== undefined && value >= before) ratesPerSec[name] = Math.round(((value - before) / seconds) * 100) / 100;
      }
    }
    this.previous = { atMs: nowMs, counters };
    const figures: CommonFigures = { ratesPerSec, ipcReconnects: Math.max(0, ipc.connects - 1), ipcCallFailures: ipc.callFailures };
    if ('lastPublishAt' in metrics) {
      const last = typeof metrics.lastPublishAt === 'string' ? Date.parse(metrics.lastPublishAt) : NaN;
      figures.sinceLastPublishSec = Number.isFinite(last) ? Math.max(0, Math.round((nowMs - last) / 100) / 10) : null;
    }
    return figures;
  }
}

/**
 * Adds to a counter keyed by a name that may come from outside (a stream name in bad sensor
 * input, an IPC operation header, a gap reason from the archive). Written as an own property, so
 * a key such as "toString", "constructor" or "__proto__" counts like any other instead of
 * corrupting the counters or their prototype.
 */
export function countInto(counts: Record<string, number>, key: string, by = 1): void {
  const current = Object.hasOwn(counts, key) ? counts[key] : 0;
  Object.defineProperty(counts, key, { value: current + by, enumerable: true, writable: true, configurable: true });
}
