/**
 * The one deriver: turns a stream of signal samples into door-cycle, run, motor and (when
 * rawSamples is on) raw-sample records. Two state machines run over the signals, one for the car
 * and one for the door, plus a metrics clock on the source time. Every event carries a `quality`
 * object saying how trustworthy the samples behind it were.
 */
import type { DoorCycleV1, MotorV1, RawSampleV1, RunV1 } from '../shared/contracts.generated';
import { PRIORITY, STREAM_DOOR_CYCLE, STREAM_MOTOR, STREAM_RAW_SAMPLE, STREAM_RUN } from '../shared/records';
import {
  inRange,
  nearestLanding,
  NUMERIC_SIGNALS,
  type NumericSignal,
  type RejectedInput,
  type SignalSample,
  type SignalSource,
} from './signals';

export interface SampledRecord {
  stream: string;
  priority: number;
  data: Record<string, unknown>;
}

/** Any sensor source (simulator, replay, real driver): sampled records for a step of real time. */
export interface SensorSource {
  advance(realElapsedMs: number): SampledRecord[];
  /** Input lines the source rejected since the last call (for quarantine). Optional. */
  takeRejected?(): RejectedInput[];
  /** Counters for the heartbeat. Optional. */
  metrics?(): Record<string, number | string | boolean>;
  /** Releases files and devices. Optional. */
  close?(): void | Promise<void>;
}

/** Detection thresholds. Defaults suit a passenger car with a clean signal and the simulator's noise. */
export interface DetectorConfig {
  /** A run starts when |velocity| rises above this, m/s. */
  runStartSpeedMps: number;
  /** The car counts as stopped when |velocity| is at or below this, m/s. */
  stopSpeedMps: number;
  /** A stop must last this long (source ms) before the run ends; the leveling error is read then. */
  settleMs: number;
  /** A stop ends a run only within this distance of a landing, m. */
  landingToleranceM: number;
  /** The door counts as closed at or below this opening (0..1). */
  doorClosedMax: number;
  /** The door counts as fully open at or above this opening (0..1). */
  doorOpenMin: number;
  /** A door turning back by more than this (0..1) changes direction (closing -> opening is a reversal). */
  doorHysteresis: number;
}

export const DEFAULT_DETECTOR_CONFIG: DetectorConfig = {
  runStartSpeedMps: 0.1,
  stopSpeedMps: 0.05,
  settleMs: 300,
  landingToleranceM: 0.25,
  doorClosedMax: 0.02,
  doorOpenMin: 0.98,
  doorHysteresis: 0.05,
};

export interface DeriverConfig {
  /** Landing heights, m, strictly increasing; index = floor number in the records. */
  landingHeightsM: number[];
  /** Door width, m: a panel of a centre-opening door travels half of it. */
  doorWidthM: number;
  /** Source ms between motor records. */
  metricsIntervalMs: number;
  /** Emit every sample as a raw-sample record. */
  rawSamples: boolean;
  detector: DetectorConfig;
}

export interface DeriverMetrics {
  samples: number;
  outOfOrderSamples: number;
  runs: number;
  doorCycles: number;
  /** Runs that ended at the landing they started from (a re-level or a false start), not reported. */
  discardedRuns: number;
  /** Door cycles without any valid position to name the floor, not reported. */
  discardedDoorCycles: number;
  /** Motor instants with no valid current, temperature or vibration reading yet. */
  skippedMotor: number;
}

interface Quality {
  samples: number;
  missing: number;
  outOfRange: number;
  /** Per signal checked for sticking: first valid value, whether it changed, how many valid readings. */
  first: Map<NumericSignal, number>;
  changed: Set<NumericSignal>;
  seen: Map<NumericSignal, number>;
}

const RUN_STUCK_CANDIDATES: readonly NumericSignal[] = ['positionM', 'velocityMps', 'currentA', 'temperatureC', 'vibrationMmS'];
const DOOR_STUCK_CANDIDATES: readonly NumericSignal[] = ['doorOpening'];

interface RunState {
  startTime: number;
  fromPositionM: number;
  lastPositionM: number;
  peakSpeed: number;
  peakAccel: number;
  peakJerk: number;
  /** Time the car first came to a stop in this run (reset if it moves again). */
  stoppedAt: number | null;
  quality: Quality;
}

type DoorPhase = 'opening' | 'open' | 'closing';

interface DoorState {
  floor: number | null;
  openStartTime: number;
  phase: DoorPhase;
  firstOpeningDone: boolean;
  openingMs: number;
  /** Opening reached when the first opening ended (1 if fully open). */
  firstOpeningFraction: number;
  dwellMs: number;
  closingMs: number;
  phaseSince: number;
  /** Highest opening while opening, lowest while closing. */
  extreme: number;
  reversals: number;
  obstructions: number;
  quality: Quality;
}

function newQuality(): Quality {
  return { samples: 0, missing: 0, outOfRange: 0, first: new Map(), changed: new Set(), seen: new Map() };
}

/**
 * A derived record. Its data is typed with the type generated from its stream's schema, so the
 * compiler checks every field the deriver writes against the contract.
 */
function derived(stream: string, priority: number, data: DoorCycleV1 | RunV1 | MotorV1 | RawSampleV1): SampledRecord {
  return { stream, priority, data: { ...data } };
}

function qualityData(q: Quality, candidates: readonly NumericSignal[]): RunV1['quality'] {
  const stuck = candidates.filter((name) => (q.seen.get(name) ?? 0) >= 2 && !q.changed.has(name));
  return { samples: q.samples, missingSamples: q.missing, outOfRangeSamples: q.outOfRange, stuckSignals: stuck };
}

export class Deriver {
  readonly metrics: DeriverMetrics = { samples: 0, outOfOrderSamples: 0, runs: 0, doorCycles: 0, discardedRuns: 0, discardedDoorCycles: 0, skippedMotor: 0 };
  private lastT = -Infinity;
  private nextMetricsT: number | null = null;
  // Latest valid (present, in range) readings.
  private position: number | null = null;
  private restPosition: number | null = null;
  private current: number | null = null;
  private temperature: number | null = null;
  private vibration: number | null = null;
  private obstructed = false;
  // Differentiation of velocity: the last velocity and acceleration with the instants they belong to.
  private lastV: number | null = null;
  private lastVT = 0;
  private lastA: number | null = null;
  private lastAT = 0;
  private run: RunState | null = null;
  private doorCycle: DoorState | null = null;

  constructor(private config: DeriverConfig) {
    checkDeriverConfig(config);
  }

  reconfigure(config: DeriverConfig): void {
    checkDeriverConfig(config);
    this.config = config;
  }

  /** What the car is doing now, as the motor record names it. */
  get carState(): 'idle' | 'moving' | 'door' {
    if (this.doorCycle) return 'door';
    if (this.run && this.run.stoppedAt === null) return 'moving';
    return 'idle';
  }

  /** Derives records from samples in time order; appends them to out and returns out. */
  push(samples: readonly SignalSample[], out: SampledRecord[] = []): SampledRecord[] {
    for (const sample of samples) this.pushOne(sample, out);
    return out;
  }

  private pushOne(s: SignalSample, out: SampledRecord[]): void {
    if (!(s.t > this.lastT)) {
      this.metrics.outOfOrderSamples += 1;
      return;
    }
    this.lastT = s.t;
    this.metrics.samples += 1;
    if (this.config.rawSamples) out.push(derived(STREAM_RAW_SAMPLE, PRIORITY.raw, s));

    // Valid readings of this sample (null when missing or out of range).
    const position = this.valid('positionM', s.positionM);
    const velocity = this.valid('velocityMps', s.velocityMps);
    const door = this.valid('doorOpening', s.doorOpening);
    const current = this.valid('currentA', s.currentA);
    const temperature = this.valid('temperatureC', s.temperatureC);
    const vibration = this.valid('vibrationMmS', s.vibrationMmS);
    if (current !== null) this.current = current;
    if (temperature !== null) this.temperature = temperature;
    if (vibration !== null) this.vibration = vibration;
    const obstructedEdge = s.obstructed === true && !this.obstructed;
    if (s.obstructed !== null) this.obstructed = s.obstructed;

    const accel = this.differentiate(s.t, velocity);
    this.trackRun(s, position, velocity, accel, out);
    if (position !== null) this.position = position;
    this.trackDoor(s, door, obstructedEdge, out);
    this.metricsTick(s.t, out);
  }

  private valid(name: NumericSignal, value: number | null): number | null {
    return value !== null && inRange(name, value) ? value : null;
  }

  /** Updates acceleration and jerk from a new velocity; returns {a, j} at this sample (null when not computable). */
  private differentiate(t: number, v: number | null): { a: number | null; j: number | null } {
    if (v === null) return { a: null, j: null };
    let a: number | null = null;
    let j: number | null = null;
    if (this.lastV !== null && t > this.lastVT) {
      a = (v - this.lastV) / ((t - this.lastVT) / 1000);
      const aT = (t + this.lastVT) / 2; // the difference quotient belongs to the middle of its interval
      if (this.lastA !== null && aT > this.lastAT) j = (a - this.lastA) / ((aT - this.lastAT) / 1000);
      this.lastA = a;
      this.lastAT = aT;
    }
    this.lastV = v;
    this.lastVT = t;
    return { a, j };
  }

  private observe(q: Quality, s: SignalSample, candidates: readonly NumericSignal[]): void {
    q.samples += 1;
    for (const name of NUMERIC_SIGNALS) {
      const value = s[name];
      if (value === null) {
        q.missing += 1;
        continue;
      }
      if (!inRange(name, value)) {
        q.outOfRange += 1;
        continue;
      }
      if (!candidates.includes(name)) continue;
      const first = q.first.get(name);
      if (first === undefined) q.first.set(name, value);
      else if (value !== first) q.changed.add(name);
      q.seen.set(name, (q.seen.get(name) ?? 0) + 1);
    }
    if (s.obstructed === null) q.missing += 1;
  }

  private trackRun(s: SignalSample, position: number | null, v: number | null, d: { a: number | null; j: number | null }, out: SampledRecord[]): void {
    const det = this.config.detector;
    let run = this.run;
    if (!run) {
      if (v !== null && position !== null && Math.abs(v) <= det.stopSpeedMps) this.restPosition = position;
      if (v === null || Math.abs(v) <= det.runStartSpeedMps) return;
      // Where the car stood before it moved (the last position at rest), else the last one seen.
      const from = this.restPosition ?? this.position ?? position;
      if (from === null) return; // no position yet: cannot name the floor; wait for one
      run = this.run = {
        startTime: s.t,
        fromPositionM: from,
        lastPositionM: position ?? from,
        peakSpeed: 0,
        peakAccel: 0,
        peakJerk: 0,
        stoppedAt: null,
        quality: newQuality(),
      };
    }
    this.observe(run.quality, s, RUN_STUCK_CANDIDATES);
    if (position !== null) run.lastPositionM = position;
    if (v !== null) run.peakSpeed = Math.max(run.peakSpeed, Math.abs(v));
    if (d.a !== null) run.peakAccel = Math.max(run.peakAccel, Math.abs(d.a));
    if (d.j !== null) run.peakJerk = Math.max(run.peakJerk, Math.abs(d.j));
    if (v === null) return; // a dropout decides nothing
    if (Math.abs(v) > det.stopSpeedMps) {
      run.stoppedAt = null;
      return;
    }
    if (run.stoppedAt === null) run.stoppedAt = s.t;
    if (s.t - run.stoppedAt < det.settleMs) return;
    const heights = this.config.landingHeightsM;
    const at = run.lastPositionM;
    const toFloor = nearestLanding(heights, at);
    if (Math.abs(at - heights[toFloor]) > det.landingToleranceM) return; // stopped between landings: the run goes on
    const fromFloor = nearestLanding(heights, run.fromPositionM);
    this.run = null;
    this.restPosition = at;
    if (fromFloor === toFloor) {
      this.metrics.discardedRuns += 1;
      return;
    }
    this.metrics.runs += 1;
    out.push(
      derived(STREAM_RUN, PRIORITY.event, {
        fromFloor,
        toFloor,
        direction: toFloor > fromFloor ? 'up' : 'down',
        startTime: run.startTime,
        stopTime: run.stoppedAt,
        durationMs: run.stoppedAt - run.startTime,
        distanceM: round3(Math.abs(at - run.fromPositionM)),
        peakSpeedMps: round3(run.peakSpeed),
        peakAccelMps2: round3(run.peakAccel),
        peakJerkMps3: round3(run.peakJerk),
        levelingErrorMm: round3((at - heights[toFloor]) * 1000),
        quality: qualityData(run.quality, RUN_STUCK_CANDIDATES),
      }),
    );
  }

  private trackDoor(s: SignalSample, door: number | null, obstructedEdge: boolean, out: SampledRecord[]): void {
    const det = this.config.detector;
    let cycle = this.doorCycle;
    if (!cycle) {
      if (door === null || door <= det.doorClosedMax) return;
      const position = this.position;
      cycle = this.doorCycle = {
        floor: position === null ? null : nearestLanding(this.config.landingHeightsM, position),
        openStartTime: s.t,
        phase: 'opening',
        firstOpeningDone: false,
        openingMs: 0,
        firstOpeningFraction: 0,
        dwellMs: 0,
        closingMs: 0,
        phaseSince: s.t,
        extreme: door,
        reversals: 0,
        obstructions: 0,
        quality: newQuality(),
      };
    }
    this.observe(cycle.quality, s, DOOR_STUCK_CANDIDATES);
    if (obstructedEdge) cycle.obstructions += 1;
    if (door === null) return;
    const t = s.t;
    switch (cycle.phase) {
      case 'opening':
        if (door <= det.doorClosedMax) {
          // Back to closed without a turn the hysteresis could see (a twitch of the door).
          this.endFirstOpening(cycle, t, cycle.extreme);
          this.finishDoor(cycle, t, out);
        } else if (door >= det.doorOpenMin) {
          this.endFirstOpening(cycle, t, 1);
          cycle.phase = 'open';
          cycle.phaseSince = t;
        } else if (door < cycle.extreme - det.doorHysteresis) {
          // Turned back before it was fully open.
          this.endFirstOpening(cycle, t, cycle.extreme);
          cycle.phase = 'closing';
          cycle.phaseSince = t;
          cycle.extreme = door;
        } else {
          cycle.extreme = Math.max(cycle.extreme, door);
        }
        break;
      case 'open':
        if (door < det.doorOpenMin) {
          cycle.dwellMs += t - cycle.phaseSince;
          cycle.phase = 'closing';
          cycle.phaseSince = t;
          cycle.extreme = door;
        }
        break;
      case 'closing':
        if (door <= det.doorClosedMax) {
          cycle.closingMs += t - cycle.phaseSince;
          this.finishDoor(cycle, t, out);
        } else if (door > cycle.extreme + det.doorHysteresis) {
          cycle.closingMs += t - cycle.phaseSince;
          cycle.reversals += 1;
          cycle.phase = door >= det.doorOpenMin ? 'open' : 'opening';
          cycle.phaseSince = t;
          cycle.extreme = door;
        } else {
          cycle.extreme = Math.min(cycle.extreme, door);
        }
        break;
    }
  }

  private endFirstOpening(cycle: DoorState, t: number, fraction: number): void {
    if (cycle.firstOpeningDone) return;
    cycle.firstOpeningDone = true;
    cycle.openingMs = t - cycle.openStartTime;
    cycle.firstOpeningFraction = fraction;
  }

  private finishDoor(cycle: DoorState, t: number, out: SampledRecord[]): void {
    this.doorCycle = null;
    const floor = cycle.floor ?? (this.position === null ? null : nearestLanding(this.config.landingHeightsM, this.position));
    if (floor === null) {
      this.metrics.discardedDoorCycles += 1;
      return;
    }
    this.metrics.doorCycles += 1;
    const panelM = (this.config.doorWidthM / 2) * cycle.firstOpeningFraction;
    out.push(
      derived(STREAM_DOOR_CYCLE, PRIORITY.event, {
        floor,
        openStartTime: cycle.openStartTime,
        closeEndTime: t,
        openingMs: cycle.openingMs,
        dwellMs: cycle.dwellMs,
        closingMs: cycle.closingMs,
        totalMs: t - cycle.openStartTime,
        doorSpeedMps: cycle.openingMs > 0 ? round3(panelM / (cycle.openingMs / 1000)) : 0,
        reversals: cycle.reversals,
        obstructions: cycle.obstructions,
        quality: qualityData(cycle.quality, DOOR_STUCK_CANDIDATES),
      }),
    );
  }

  private metricsTick(t: number, out: SampledRecord[]): void {
    const interval = this.config.metricsIntervalMs;
    if (this.nextMetricsT === null) {
      this.nextMetricsT = t + interval;
      return;
    }
    if (t < this.nextMetricsT) return;
    // At most one motor record per sample; a gap in the samples skips the instants it spans.
    while (this.nextMetricsT <= t) this.nextMetricsT += interval;
    if (this.current === null || this.temperature === null || this.vibration === null) {
      this.metrics.skippedMotor += 1;
      return;
    }
    out.push(derived(STREAM_MOTOR, PRIORITY.metric, { carState: this.carState, currentA: round3(this.current), temperatureC: round3(this.temperature), vibrationMmS: round3(this.vibration) }));
  }
}

function checkDeriverConfig(config: DeriverConfig): void {
  const heights = config.landingHeightsM;
  if (heights.length < 2) throw new RangeError(`the floor table needs at least 2 landings, got ${heights.length}`);
  for (let i = 1; i < heights.length; i += 1) {
    if (!(heights[i] > heights[i - 1])) throw new RangeError(`landing heights must be strictly increasing (index ${i})`);
  }
  if (!(config.metricsIntervalMs > 0)) throw new RangeError(`metricsIntervalMs must be > 0, got ${config.metricsIntervalMs}`);
  const d = config.detector;
  if (!(d.stopSpeedMps < d.runStartSpeedMps)) throw new RangeError(`detector.stopSpeedMps (${d.stopSpeedMps}) must be below runStartSpeedMps (${d.runStartSpeedMps})`);
  if (!(d.doorClosedMax < d.doorOpenMin)) throw new RangeError(`detector.doorClosedMax (${d.doorClosedMax}) must be below doorOpenMin (${d.doorOpenMin})`);
}

/** The most rejected inputs held for takeRejected(); beyond it the oldest go and are counted. */
export const MAX_HELD_REJECTED = 1000;

/**
 * A SensorSource made of a SignalSource and the deriver. Rejected input lines are handed to
 * onRejected as they come (log them) and held, bounded, for takeRejected() (quarantine them).
 */
export class DerivedSource implements SensorSource {
  private held: RejectedInput[] = [];
  private rejectedTotal = 0;
  private rejectedDropped = 0;

  constructor(
    readonly signals: SignalSource,
    readonly deriver: Deriver,
    private readonly onRejected?: (rejected: RejectedInput) => void,
  ) {}

  advance(realElapsedMs: number): SampledRecord[] {
    const { samples, rejected } = this.signals.read(realElapsedMs);
    for (const entry of rejected) {
      this.rejectedTotal += 1;
      this.onRejected?.(entry);
      if (this.held.length >= MAX_HELD_REJECTED) {
        this.held.shift();
        this.rejectedDropped += 1;
      }
      this.held.push(entry);
    }
    return this.deriver.push(samples);
  }

  takeRejected(): RejectedInput[] {
    const taken = this.held;
    this.held = [];
    return taken;
  }

  metrics(): Record<string, number | string | boolean> {
    return { ...this.deriver.metrics, rejectedInputs: this.rejectedTotal, rejectedNotTaken: this.rejectedDropped, ...(this.signals.metrics?.() ?? {}) };
  }

  close(): void | Promise<void> {
    return this.signals.close?.();
  }
}

export function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}
