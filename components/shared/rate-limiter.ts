/**
 * A smooth token bucket with the semantics of the one the nucleus paces its IoT Core connection
 * with (Guava's RateLimiter in AwsIotMqtt5Client: 100 publishes/s and 512 KiB/s of payload): unused
 * time builds up at most one second of permits, and a large request is granted at once while the
 * next one pays for it ("the current transaction's cost is paid by future transactions").
 */
export class RateLimiter {
  private storedPermits = 0;
  private nextFreeMs: number;
  private readonly maxStoredPermits: number;

  constructor(
    readonly permitsPerSec: number,
    private readonly now: () => number = () => performance.now(),
    maxBurstSec = 1,
  ) {
    if (!(permitsPerSec > 0)) throw new RangeError(`permitsPerSec must be > 0, got ${permitsPerSec}`);
    this.maxStoredPermits = permitsPerSec * maxBurstSec;
    this.nextFreeMs = now();
  }

  /** Milliseconds until take() may be called without going over the rate; 0 when it may now. */
  waitMs(): number {
    const now = this.now();
    this.resync(now);
    return Math.max(0, this.nextFreeMs - now);
  }

  /** Takes permits; what stored permits do not cover pushes the next free moment back. */
  take(permits: number): void {
    const now = this.now();
    this.resync(now);
    const fromStore = Math.min(permits, this.storedPermits);
    this.storedPermits -= fromStore;
    this.nextFreeMs = Math.max(this.nextFreeMs, now) + ((permits - fromStore) * 1000) / this.permitsPerSec;
  }

  private resync(now: number): void {
    if (now <= this.nextFreeMs) return;
    this.storedPermits = Math.min(this.maxStoredPermits, this.storedPermits + ((now - this.nextFreeMs) * this.permitsPerSec) / 1000);
    this.nextFreeMs = now;
  }
}

/** AWS IoT Core's per-connection limits, not adjustable (IoT Core quotas), that the nucleus paces to. */
export const IOT_CORE_PACING = { publishesPerSec: 100, bytesPerSec: 512 * 1024 } as const;

/**
 * A connection's publish pace: one bucket of publishes and one of payload bytes, as the nucleus
 * keeps per IoT Core connection. A limit of 0 leaves that dimension unpaced.
 */
export class PublishPacer {
  private readonly publishes?: RateLimiter;
  private readonly bytes?: RateLimiter;

  constructor(limits: { publishesPerSec: number; bytesPerSec: number }) {
    if (limits.publishesPerSec > 0) this.publishes = new RateLimiter(limits.publishesPerSec);
    if (limits.bytesPerSec > 0) this.bytes = new RateLimiter(limits.bytesPerSec);
  }

  /** Milliseconds until the next publish may go; 0 when it may now. */
  waitMs(): number {
    return Math.max(this.publishes?.waitMs() ?? 0, this.bytes?.waitMs() ?? 0);
  }

  /** Accounts one publish of this many payload bytes. */
  take(payloadBytes: number): void {
    this.publishes?.take(1);
    this.bytes?.take(payloadBytes);
  }
}
