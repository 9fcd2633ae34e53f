import { sleep } from './naive';

/**
 * The sustained search, shared by both pipelines so that the ratio compares like with like: offer
 * a rate, watch what is delivered and whether the backlog grows, double until it does, try once
 * between the last good and the first bad rate, then hold the best rate for holdSec and report what
 * was delivered over the hold (once more, a little lower, if the backlog grew during the hold).
 */
export interface SustainedTarget {
  setRate(perSec: number): Promise<void>;
  /** Cumulative records delivered (acknowledged by the cloud) and records offered but not delivered yet. */
  sample(): Promise<{ delivered: number; backlog: number }>;
  /** CPU-seconds used so far by each process that takes part, to tell a CPU bound from the others. */
  cpuSeconds?(): Record<string, number>;
}

export interface SustainedPlan {
  startRate: number;
  maxRate: number;
  stepSec: number;
  holdSec: number;
  /** Longest wait for the backlog of a failed step to clear before the hold. */
  settleSec: number;
}

export interface StepResult {
  offered: number;
  delivered: number;
  backlogGrowthPerSec: number;
  flat: boolean;
  /** Cores each process kept busy during the step (CPU-seconds per second); total is the sum. */
  cpuCores?: Record<string, number>;
}

export interface SustainedResult {
  recordsPerSec: number;
  offeredPerSec: number;
  holdSeconds: number;
  backlogGrowthPerSec: number;
  /** The backlog stayed flat over the hold (growth below 5% of the offered rate). */
  flat: boolean;
  steps: StepResult[];
}

/**
 * Backlog growth allowed before a rate counts as not sustained, as a fraction of the offered rate.
 * The backlog of a healthy pipeline is lumpy (envelopes of hundreds of records, acks batched per
 * 200 ms), so growth is the least-squares slope over many samples, not the difference of two.
 */
const GROWTH_TOLERANCE = 0.05;
/** A flat backlog with so little delivered would mean the counters are wrong, not that the rate is sustained. */
const MIN_DELIVERED_FRACTION = 0.8;
/** A step starts measuring after this, once the in-flight window has grown to the new rate. */
const WARM_UP_MS = 1500;
const SAMPLE_MS = 250;

async function measure(target: SustainedTarget, rate: number, seconds: number): Promise<StepResult> {
  await target.setRate(rate);
  await sleep(WARM_UP_MS);
  const start = await target.sample();
  const cpu0 = target.cpuSeconds?.();
  const startedAt = performance.now();
  const backlog: Array<[number, number]> = [[0, start.backlog]];
  const endAt = startedAt + seconds * 1000;
  while (performance.now() < endAt) {
    await sleep(Math.min(SAMPLE_MS, Math.max(10, endAt - performance.now())));
    const s = await target.sample();
    backlog.push([(performance.now() - startedAt) / 1000, s.backlog]);
  }
  const end = await target.sample();
  const cpu1 = target.cpuSeconds?.();
  const elapsed = (performance.now() - startedAt) / 1000;
  const delivered = (end.delivered - start.delivered) / elapsed;
  const growth = slope(backlog);
  const step: StepResult = { offered: rate, delivered, backlogGrowthPerSec: growth, flat: growth <= GROWTH_TOLERANCE * rate && delivered >= MIN_DELIVERED_FRACTION * rate };
  if (cpu0 && cpu1) {
    const cores = Object.fromEntries(Object.keys(cpu1).map((name) => [name, (cpu1[name] - (cpu0[name] ?? 0)) / elapsed]));
    step.cpuCores = { ...cores, total: Object.values(cores).reduce((a, b) => a + b, 0) };
  }
  return step;
}

export async function findSustained(target: SustainedTarget, plan: SustainedPlan): Promise<SustainedResult> {
  const steps: StepResult[] = [];
  let best = 0;
  let firstBad = 0;
  for (let rate = plan.startRate; rate <= plan.maxRate; rate *= 2) {
    const step = await measure(target, rate, plan.stepSec);
    steps.push(step);
    if (!step.flat) {
      firstBad = rate;
      break;
    }
    best = rate;
  }
  if (firstBad > 0) {
    const between = Math.round(best > 0 ? Math.sqrt(best * firstBad) : firstBad / 2);
    await settle(target, plan.settleSec, best);
    const step = await measure(target, between, plan.stepSec);
    steps.push(step);
    if (step.flat) best = between;
  }
  if (best === 0) best = Math.round(plan.startRate / 2);
  await settle(target, plan.settleSec, best);
  let hold = await measure(target, best, plan.holdSec);
  steps.push(hold);
  if (!hold.flat) {
    // A rate that passed a short step can still be just over capacity; what a saturated hold
    // delivered is that capacity, so the second hold offers a little less than it.
    best = Math.round(0.9 * Math.min(best, hold.delivered));
    await settle(target, plan.settleSec, best);
    hold = await measure(target, best, plan.holdSec);
    steps.push(hold);
  }
  await target.setRate(0);
  return {
    recordsPerSec: hold.delivered,
    offeredPerSec: best,
    holdSeconds: plan.holdSec,
    backlogGrowthPerSec: hold.backlogGrowthPerSec,
    flat: hold.flat,
    steps,
  };
}

/**
 * Stops offering and waits, at most settleSec, until the backlog a failed step left behind is down
 * to what is normally in flight at `rate` (about a second's worth), so the next step starts clean.
 */
async function settle(target: SustainedTarget, settleSec: number, rate: number): Promise<void> {
  await target.setRate(0);
  const deadline = Date.now() + settleSec * 1000;
  const inFlight = Math.max(500, rate);
  while (Date.now() < deadline && (await target.sample()).backlog > inFlight) await sleep(250);
}

/** Least-squares slope of (seconds, backlog) points, in records per second. */
export function slope(points: Array<[number, number]>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}
