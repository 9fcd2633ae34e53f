// Figures for judging reconnect intervals.
//
// The SDK's default ("full") jitter draws each delay uniformly from [0, min * 2^n], so a single
// interval says little; the statistics below are chosen to hold up under that much noise:
// - growth of the mean: late intervals versus early ones;
// - exponential growth: the slope of ln(interval) against the attempt number, pooled over several
//   devices (uniform jitter shifts ln by a constant on average, so the slope still measures the
//   per-attempt growth factor; linear or constant backoff gives a factor that tends to 1);
// - jitter: identical devices at the same attempt wait different times (coefficient of variation
//   across devices); a deterministic backoff gives every device the same interval.

export function round(value: number, digits = 2): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

export function mean(values: number[]): number {
  return values.length === 0 ? NaN : values.reduce((a, b) => a + b, 0) / values.length;
}

export function coefficientOfVariation(values: number[]): number {
  if (values.length < 2) return NaN;
  const m = mean(values);
  const variance = values.reduce((sum, v) => sum + (v - m) ** 2, 0) / (values.length - 1);
  return Math.sqrt(variance) / m;
}

export function ratios(intervals: number[]): number[] {
  return intervals.slice(1).map((value, i) => value / Math.max(1, intervals[i]!));
}

/** Mean of the last two thirds over the mean of the first third. */
export function lateOverEarlyGrowth(intervals: number[]): number {
  const third = Math.max(1, Math.floor(intervals.length / 3));
  return mean(intervals.slice(third)) / Math.max(1, mean(intervals.slice(0, third)));
}

/**
 * Per-attempt growth factor exp(slope) of a least-squares line through ln(interval) against the
 * attempt number, over every device's series (series[d][n] = device d's n-th interval).
 * Intervals are floored at 1 ms so a zero draw of full jitter does not become -Infinity.
 */
export function pooledGrowthFactor(series: number[][], fromAttempt = 0): number {
  const points: Array<[number, number]> = [];
  for (const intervals of series) intervals.forEach((value, n) => n >= fromAttempt && points.push([n, Math.log(Math.max(1, value))]));
  const mx = mean(points.map(([x]) => x));
  const my = mean(points.map(([, y]) => y));
  const sxy = points.reduce((sum, [x, y]) => sum + (x - mx) * (y - my), 0);
  const sxx = points.reduce((sum, [x]) => sum + (x - mx) ** 2, 0);
  return sxx === 0 ? NaN : Math.exp(sxy / sxx);
}

/** Reconnect intervals: from each connection's close to the next connection's TCP accept (ms). */
export function reconnectIntervals(events: Array<{ at: number; conn: number; kind: string }>): number[] {
  const opens = new Map<number, number>();
  const closes = new Map<number, number>();
  for (const e of events) {
    if (e.kind === 'open') opens.set(e.conn, e.at);
    if (e.kind === 'close') closes.set(e.conn, e.at);
  }
  const intervals: number[] = [];
  for (const [conn, closedAt] of [...closes].sort((a, b) => a[0] - b[0])) {
    const nextOpen = opens.get(conn + 1);
    if (nextOpen !== undefined) intervals.push(round(nextOpen - closedAt, 1));
  }
  return intervals;
}
