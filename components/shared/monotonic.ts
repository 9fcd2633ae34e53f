/**
 * Milliseconds on CLOCK_MONOTONIC (process.hrtime): time since boot on Linux, shared by every
 * process of the device and untouched by wall-clock steps, so records of different components and
 * restarts stay comparable within one boot.
 */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint() / 1000n) / 1000;
}
