import { createHash } from 'node:crypto';

/**
 * A per-device offset in [0, interval): the same thing always starts at the same phase, and
 * different things spread across the interval instead of reporting in lock-step, even when a
 * fleet deployment restarts them all in the same second.
 */
export function scheduleOffsetMs(thingName: string, intervalMs: number): number {
  const hash = createHash('sha256').update(thingName).digest();
  return hash.readUInt32BE(0) % Math.max(1, Math.floor(intervalMs));
}
