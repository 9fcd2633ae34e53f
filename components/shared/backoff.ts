/**
 * Exponential backoff with "full jitter" (AWS Architecture Blog, "Exponential Backoff And
 * Jitter", 2015): the delay is uniform in [0, min(max, base * 2^attempt)], which spreads a
 * fleet's retries instead of synchronising them.
 */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly baseMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {
    if (!(baseMs > 0) || !(maxMs >= baseMs)) {
      throw new RangeError(`backoff needs 0 < baseMs <= maxMs, got baseMs=${baseMs} maxMs=${maxMs}`);
    }
  }

  nextDelayMs(): number {
    const ceiling = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(this.attempt, 30));
    this.attempt += 1;
    return Math.max(1, Math.round(this.random() * ceiling));
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * True when the promise resolves within ms, false when ms pass first (the timer is then cleared
 * and the promise left to settle on its own). A rejection within ms is passed on.
 */
export async function resolvesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const timer = new AbortController();
  try {
    return await Promise.race([promise.then(() => true), sleep(ms, timer.signal).then(() => false)]);
  } finally {
    timer.abort();
  }
}
