/**
 * The elevator simulator as a signal source: one car serving a floor table, with trapezoidal or
 * S-curve runs and door cycles, sampled every signalIntervalMs of simulated time. It produces
 * signal samples only; the deriver (derive.ts) turns them into events exactly as it does for a
 * replay or a real driver, so an event describes what the signals showed. Fault modes change the
 * signals the way a failing installation or sensor would. Deterministic for a given random().
 */
import { DEFAULT_DETECTOR_CONFIG, Deriver, DerivedSource, type DetectorConfig, type SampledRecord, type SensorSource } from './derive';
import { landingHeights, NUMERIC_SIGNALS, type NumericSignal, type RejectedInput, type SignalBatch, type SignalSample, type SignalSource } from './signals';

export { PRIORITY, STREAM_DOOR_CYCLE, STREAM_MOTOR, STREAM_RAW_SAMPLE, STREAM_RUN } from '../shared/records';
export type { SampledRecord, SensorSource };

export type VelocityProfile = 'trapezoidal' | 's-curve';

/** Fault modes, each off by default. */
export interface SimulatorFaults {
  /** Door panels move at `factor` times the configured speeds. */
  slowDoors: { enabled: boolean; factor: number };
  /** Every door cycle re-opens `perCycle` times while closing (no obstruction: the door operator reverses). */
  repeatedReversals: { enabled: boolean; perCycle: number };
  /** Each run stops `mmPerRun` further above the landing than the one before, up to `maxMm`. */
  levelingDrift: { enabled: boolean; mmPerRun: number; maxMm: number };
  /** `signal` keeps the value it had at `afterMs` of simulated time. */
  stuckSensor: { enabled: boolean; signal: NumericSignal; afterMs: number };
  /** Each reading (each signal of each sample) is null with probability `fraction`. */
  dropouts: { enabled: boolean; fraction: number };
  /** Gaussian noise on every numeric signal, `level` times a per-signal standard deviation. */
  noise: { enabled: boolean; level: number };
  /** Each numeric reading is replaced by a physically impossible value with probability `fraction`. */
  outOfRange: { enabled: boolean; fraction: number };
}

export interface SimulatorConfig {
  floors: number;
  floorHeightM: number;
  /** Explicit landing heights, m above the lowest landing; when set it replaces floors x floorHeightM. */
  landingHeightsM?: number[];
  maxSpeedMps: number;
  accelMps2: number;
  /** Jerk limit of the S-curve profile, m/s^3. */
  jerkMps3: number;
  profile: VelocityProfile;
  doorWidthM: number;
  /** Panel speed while opening, m/s (a panel travels doorWidthM / 2). */
  doorOpeningSpeedMps: number;
  /** Panel speed while closing, m/s. */
  doorClosingSpeedMps: number;
  /** Shortest dwell fully open, ms; each dwell lasts 1 to 2 times this. */
  doorDwellMs: number;
  /** Chance that a passenger blocks the closing door (light curtain, then a reversal). */
  reversalProbability: number;
  /** A healthy stop lands within +- this of the landing, mm. */
  levelingErrorMm: number;
  /** Simulated ms between signal samples. */
  signalIntervalMs: number;
  /** Simulated milliseconds per real millisecond. */
  timeScale: number;
  /**
   * Real ms for which a timeScale above 1 runs ahead: the simulated clock starts
   * (timeScale - 1) x catchUpMs before the wall clock, so it reaches the wall clock after catchUpMs
   * of real time and from then on keeps to it. Sample times are never ahead of the wall clock.
   */
  catchUpMs: number;
  metricsIntervalMs: number;
  /** Longest idle time between trips, simulated ms. */
  maxIdleMs: number;
  faults: SimulatorFaults;
}

export const NO_FAULTS: SimulatorFaults = {
  slowDoors: { enabled: false, factor: 0.5 },
  repeatedReversals: { enabled: false, perCycle: 3 },
  levelingDrift: { enabled: false, mmPerRun: 3, maxMm: 150 },
  stuckSensor: { enabled: false, signal: 'currentA', afterMs: 0 },
  dropouts: { enabled: false, fraction: 0.05 },
  noise: { enabled: false, level: 1 },
  outOfRange: { enabled: false, fraction: 0.01 },
};

export const DEFAULT_SIMULATOR_CONFIG: SimulatorConfig = {
  floors: 12,
  floorHeightM: 3.2,
  // Typical mid-rise traction elevator: 1.6 m/s rated speed, 0.8 m/s^2 acceleration, 1.2 m/s^3 jerk.
  maxSpeedMps: 1.6,
  accelMps2: 0.8,
  jerkMps3: 1.2,
  profile: 's-curve',
  doorWidthM: 0.9,
  doorOpeningSpeedMps: 0.18,
  doorClosingSpeedMps: 0.15,
  doorDwellMs: 3000,
  reversalProbability: 0.05,
  levelingErrorMm: 3,
  signalIntervalMs: 50,
  timeScale: 1,
  catchUpMs: 3_600_000,
  metricsIntervalMs: 1000,
  maxIdleMs: 8000,
  faults: NO_FAULTS,
};

/** Standard deviation of the noise fault per signal at level 1. */
export const NOISE_SIGMA: Readonly<Record<NumericSignal, number>> = {
  positionM: 0.001,
  velocityMps: 0.01,
  doorOpening: 0.003,
  currentA: 0.3,
  temperatureC: 0.1,
  vibrationMmS: 0.05,
};

/** What the out-of-range fault puts in place of a reading: far outside the raw-sample ranges. */
export const IMPOSSIBLE_READING: Readonly<Record<NumericSignal, number>> = {
  positionM: -500,
  velocityMps: 99,
  doorOpening: 3,
  currentA: -5,
  temperatureC: 900,
  vibrationMmS: 5000,
};

/** Simulated time the simulator catches up in one read at most; a longer pause (a stopped process) is skipped. */
export const MAX_CATCH_UP_SAMPLES = 200_000;

// ---------------------------------------------------------------------------------------------
// Kinematics: a run is a list of constant-jerk segments, integrated exactly.

interface Segment {
  /** Start, s from the start of the run. */
  t0: number;
  dur: number;
  x0: number;
  v0: number;
  a0: number;
  j: number;
}

export interface MotionPlan {
  segments: Segment[];
  durationS: number;
  distanceM: number;
  peakSpeedMps: number;
}

/** Plans a run over distanceM (> 0) with a trapezoidal (infinite jerk) or S-curve (jerk-limited) velocity profile. */
export function planMotion(distanceM: number, vmax: number, amax: number, jerk: number, profile: VelocityProfile): MotionPlan {
  const rampDistance = (vp: number): number => {
    if (profile === 'trapezoidal') return (vp * vp) / (2 * amax);
    const ap = Math.min(amax, Math.sqrt(vp * jerk));
    const tj = ap / jerk;
    const tc = vp / ap - tj;
    return (vp * (2 * tj + tc)) / 2;
  };
  let vp = vmax;
  if (2 * rampDistance(vmax) > distanceM) {
    if (profile === 'trapezoidal') vp = Math.sqrt(distanceM * amax);
    else {
      let lo = 0;
      let hi = vmax;
      for (let i = 0; i < 60; i += 1) {
        const mid = (lo + hi) / 2;
        if (2 * rampDistance(mid) > distanceM) hi = mid;
        else lo = mid;
      }
      vp = lo;
    }
  }
  const cruise = Math.max(0, (distanceM - 2 * rampDistance(vp)) / vp);
  const raw: Array<{ dur: number; a0: number; j: number }> = [];
  if (profile === 'trapezoidal') {
    const ta = vp / amax;
    raw.push({ dur: ta, a0: amax, j: 0 }, { dur: cruise, a0: 0, j: 0 }, { dur: ta, a0: -amax, j: 0 });
  } else {
    const ap = Math.min(amax, Math.sqrt(vp * jerk));
    const tj = ap / jerk;
    const tc = Math.max(0, vp / ap - tj);
    raw.push(
      { dur: tj, a0: 0, j: jerk },
      { dur: tc, a0: ap, j: 0 },
      { dur: tj, a0: ap, j: -jerk },
      { dur: cruise, a0: 0, j: 0 },
      { dur: tj, a0: 0, j: -jerk },
      { dur: tc, a0: -ap, j: 0 },
      { dur: tj, a0: -ap, j: jerk },
    );
  }
  const segments: Segment[] = [];
  let t = 0;
  let x = 0;
  let v = 0;
  for (const s of raw) {
    if (!(s.dur > 0)) continue;
    segments.push({ t0: t, dur: s.dur, x0: x, v0: v, a0: s.a0, j: s.j });
    x += v * s.dur + (s.a0 * s.dur * s.dur) / 2 + (s.j * s.dur ** 3) / 6;
    v += s.a0 * s.dur + (s.j * s.dur * s.dur) / 2;
    t += s.dur;
  }
  return { segments, durationS: t, distanceM, peakSpeedMps: vp };
}

/** Position (0..distance) and velocity (>= 0) at tau seconds into the run; `hint` is the segment index to start from. */
function evalMotion(plan: MotionPlan, tau: number, out: { x: number; v: number; a: number; index: number }): void {
  if (tau >= plan.durationS) {
    out.x = plan.distanceM;
    out.v = 0;
    out.a = 0;
    return;
  }
  let i = out.index;
  while (i < plan.segments.length - 1 && tau >= plan.segments[i + 1].t0) i += 1;
  out.index = i;
  const s = plan.segments[i];
  const d = Math.max(0, tau - s.t0);
  out.x = Math.min(plan.distanceM, s.x0 + s.v0 * d + (s.a0 * d * d) / 2 + (s.j * d * d * d) / 6);
  out.v = Math.max(0, s.v0 + s.a0 * d + (s.j * d * d) / 2);
  out.a = s.a0 + s.j * d;
}

// ---------------------------------------------------------------------------------------------
// Door plan: opening keyframes (ms from the start of the cycle) and obstruction intervals.

interface DoorPlan {
  keyMs: number[];
  keyOpening: number[];
  obstructed: Array<[number, number]>;
  totalMs: number;
}

type Phase =
  | { kind: 'idle'; startMs: number; endMs: number }
  | { kind: 'run'; startMs: number; endMs: number; fromM: number; dir: 1 | -1; toFloor: number; plan: MotionPlan; cursor: { x: number; v: number; a: number; index: number } }
  | { kind: 'door'; startMs: number; endMs: number; plan: DoorPlan; index: number };

/** A tiny seeded generator for the signal faults, so turning a fault on does not change the trips. */
function splitRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return ((z ^ (z >>> 16)) >>> 0) / 4294967296;
  };
}

function checkConfig(config: SimulatorConfig): number[] {
  if (config.floors < 2 && !(config.landingHeightsM && config.landingHeightsM.length >= 2)) throw new RangeError(`floors must be >= 2, got ${config.floors}`);
  if (!(config.timeScale > 0)) throw new RangeError(`timeScale must be > 0, got ${config.timeScale}`);
  if (!(config.signalIntervalMs >= 1) || !Number.isInteger(config.signalIntervalMs)) throw new RangeError(`signalIntervalMs must be an integer >= 1, got ${config.signalIntervalMs}`);
  for (const key of ['maxSpeedMps', 'accelMps2', 'jerkMps3', 'doorWidthM', 'doorOpeningSpeedMps', 'doorClosingSpeedMps'] as const) {
    if (!(config[key] > 0)) throw new RangeError(`${key} must be > 0, got ${config[key]}`);
  }
  if (config.faults.slowDoors.enabled && !(config.faults.slowDoors.factor > 0)) throw new RangeError(`faults.slowDoors.factor must be > 0, got ${config.faults.slowDoors.factor}`);
  return landingHeights(config);
}

export interface SimulatedSignalsOptions {
  /**
   * Wall-clock ms of simulated time 0 (sample t = startTimeMs + simulated ms). Default: the wall
   * clock at construction minus (timeScale - 1) x catchUpMs.
   */
  startTimeMs?: number;
  /** The wall clock (ms since 1970); simulated time never passes it. Default Date.now. */
  now?: () => number;
}

/** The simulator proper: signal samples of one car on simulated time. */
export class SimulatedSignals implements SignalSource {
  private config: SimulatorConfig;
  private pending?: SimulatorConfig;
  private heights: number[];
  private readonly faultRandom: () => number;
  readonly startTimeMs: number;
  private readonly now: () => number;
  private simTargetMs = 0;
  private nextSampleMs: number;
  private phase: Phase;
  private floor = 0;
  private positionM = 0;
  private temperatureC = 35;
  private lastSampleMs = 0;
  private runsDone = 0;
  private stuckValue: number | null | undefined;
  private samplesProduced = 0;
  private skippedSimMs = 0;

  constructor(
    config: SimulatorConfig = DEFAULT_SIMULATOR_CONFIG,
    private readonly random: () => number = Math.random,
    options: SimulatedSignalsOptions = {},
  ) {
    this.heights = checkConfig(config);
    this.config = config;
    this.now = options.now ?? Date.now;
    this.startTimeMs = Math.floor(options.startTimeMs ?? this.now() - Math.max(0, config.timeScale - 1) * config.catchUpMs);
    this.faultRandom = splitRandom(Math.floor(random() * 4294967296));
    this.nextSampleMs = config.signalIntervalMs;
    this.positionM = this.heights[0];
    this.phase = { kind: 'idle', startMs: 0, endMs: this.random() * config.maxIdleMs };
  }

  get landingHeightsM(): number[] {
    return this.heights;
  }

  /** timeScale applies at once; every other key from the next phase (the run or door cycle in progress completes as planned). */
  reconfigure(config: SimulatorConfig): void {
    checkConfig(config);
    this.pending = config;
  }

  read(realElapsedMs: number): SignalBatch {
    const timeScale = (this.pending ?? this.config).timeScale;
    // Never ahead of the wall clock: a sample time in the future breaks the data contracts.
    this.simTargetMs = Math.min(this.simTargetMs + Math.max(0, realElapsedMs) * timeScale, Math.max(this.simTargetMs, this.now() - this.startTimeMs));
    const samples: SignalSample[] = [];
    const interval = this.config.signalIntervalMs;
    if ((this.simTargetMs - this.nextSampleMs) / interval > MAX_CATCH_UP_SAMPLES) {
      const skipTo = this.simTargetMs - MAX_CATCH_UP_SAMPLES * interval;
      const skipped = Math.floor((skipTo - this.nextSampleMs) / interval) * interval;
      this.nextSampleMs += skipped;
      this.skippedSimMs += skipped;
    }
    while (this.nextSampleMs <= this.simTargetMs) {
      samples.push(this.sampleAt(this.nextSampleMs));
      this.nextSampleMs += this.config.signalIntervalMs;
    }
    return { samples, rejected: [] };
  }

  metrics(): Record<string, number> {
    return { simulatedMs: Math.floor(this.lastSampleMs), signalSamples: this.samplesProduced, simulatedRuns: this.runsDone, skippedSimulatedMs: this.skippedSimMs };
  }

  private sampleAt(simMs: number): SignalSample {
    while (simMs >= this.phase.endMs) this.nextPhase();
    const dtS = (simMs - this.lastSampleMs) / 1000;
    this.lastSampleMs = simMs;
    this.samplesProduced += 1;
    const cfg = this.config;
    const phase = this.phase;
    let x = this.positionM;
    let v = 0;
    let a = 0;
    let doorOpening = 0;
    let obstructed = false;
    if (phase.kind === 'run') {
      evalMotion(phase.plan, (simMs - phase.startMs) / 1000, phase.cursor);
      x = phase.fromM + phase.dir * phase.cursor.x;
      v = phase.dir * phase.cursor.v;
      a = phase.dir * phase.cursor.a;
    } else if (phase.kind === 'door') {
      const tau = simMs - phase.startMs;
      const { keyMs, keyOpening, obstructed: intervals } = phase.plan;
      while (phase.index < keyMs.length - 2 && tau >= keyMs[phase.index + 1]) phase.index += 1;
      const i = phase.index;
      const span = keyMs[i + 1] - keyMs[i];
      const f = span > 0 ? Math.min(1, Math.max(0, (tau - keyMs[i]) / span)) : 1;
      doorOpening = keyOpening[i] + (keyOpening[i + 1] - keyOpening[i]) * f;
      for (const [from, to] of intervals) if (tau >= from && tau < to) obstructed = true;
    }
    const speedShare = Math.abs(v) / cfg.maxSpeedMps;
    const accelShare = Math.abs(a) / cfg.accelMps2;
    const moving = phase.kind === 'run';
    const currentA = moving ? 4 + 14 * speedShare + 8 * accelShare * (a * v >= 0 ? 1 : 0.5) : phase.kind === 'door' ? 1.2 : 0.6;
    const vibrationMmS = moving ? 0.4 + 1.8 * speedShare + 0.3 * accelShare : 0.15;
    // First-order thermal model: I^2 heating against cooling towards 30 C with a 30 min time constant.
    this.temperatureC += dtS * (6.9e-5 * currentA * currentA - (this.temperatureC - 30) / 1800);
    const sample: SignalSample = {
      t: this.startTimeMs + simMs,
      positionM: x,
      velocityMps: v,
      doorOpening,
      obstructed,
      currentA,
      temperatureC: this.temperatureC,
      vibrationMmS,
    };
    this.applyFaults(sample, simMs);
    return sample;
  }

  private applyFaults(sample: SignalSample, simMs: number): void {
    const faults = this.config.faults;
    const r = this.faultRandom;
    if (faults.noise.enabled) {
      for (const name of NUMERIC_SIGNALS) {
        const value = sample[name] as number;
        let noisy = value + gaussian(r) * NOISE_SIGMA[name] * faults.noise.level;
        // Noise stays physical: a door is not more than open, a current or vibration not negative.
        if (name === 'doorOpening') noisy = Math.min(1, Math.max(0, noisy));
        else if (name === 'currentA' || name === 'vibrationMmS') noisy = Math.max(0, noisy);
        sample[name] = noisy;
      }
    }
    if (faults.stuckSensor.enabled && simMs >= faults.stuckSensor.afterMs) {
      const name = faults.stuckSensor.signal;
      if (this.stuckValue === undefined) this.stuckValue = sample[name];
      sample[name] = this.stuckValue;
    }
    if (faults.outOfRange.enabled) {
      for (const name of NUMERIC_SIGNALS) if (r() < faults.outOfRange.fraction) sample[name] = IMPOSSIBLE_READING[name];
    }
    if (faults.dropouts.enabled) {
      for (const name of NUMERIC_SIGNALS) if (r() < faults.dropouts.fraction) sample[name] = null;
      if (r() < faults.dropouts.fraction) sample.obstructed = null;
    }
  }

  private nextPhase(): void {
    const ended = this.phase;
    if (this.pending) {
      this.config = this.pending;
      this.heights = landingHeights(this.config);
      this.pending = undefined;
      if (!this.config.faults.stuckSensor.enabled) this.stuckValue = undefined;
    }
    if (ended.kind === 'idle') this.phase = this.planRun(ended.endMs);
    else if (ended.kind === 'run') {
      this.positionM = ended.fromM + ended.dir * ended.plan.distanceM;
      this.floor = ended.toFloor;
      this.runsDone += 1;
      this.phase = this.planDoor(ended.endMs);
    } else {
      this.phase = { kind: 'idle', startMs: ended.endMs, endMs: ended.endMs + this.random() * this.config.maxIdleMs };
    }
  }

  private planRun(startMs: number): Phase {
    const cfg = this.config;
    const floors = this.heights.length;
    if (this.floor >= floors) this.floor = floors - 1;
    let to = this.floor;
    while (to === this.floor) to = Math.floor(this.random() * floors);
    let offsetMm = (this.random() * 2 - 1) * cfg.levelingErrorMm;
    const drift = cfg.faults.levelingDrift;
    if (drift.enabled) offsetMm += Math.min(drift.maxMm, (this.runsDone + 1) * drift.mmPerRun);
    const target = this.heights[to] + offsetMm / 1000;
    const distance = Math.abs(target - this.positionM);
    const plan = planMotion(distance, cfg.maxSpeedMps, cfg.accelMps2, cfg.jerkMps3, cfg.profile);
    return {
      kind: 'run',
      startMs,
      endMs: startMs + plan.durationS * 1000,
      fromM: this.positionM,
      dir: target >= this.positionM ? 1 : -1,
      toFloor: to,
      plan,
      cursor: { x: 0, v: 0, a: 0, index: 0 },
    };
  }

  private planDoor(startMs: number): Phase {
    const cfg = this.config;
    const slow = cfg.faults.slowDoors.enabled ? cfg.faults.slowDoors.factor : 1;
    const panelM = cfg.doorWidthM / 2;
    const openMs = (panelM / (cfg.doorOpeningSpeedMps * slow)) * 1000;
    const closeMs = (panelM / (cfg.doorClosingSpeedMps * slow)) * 1000;
    const keyMs: number[] = [0, openMs];
    const keyOpening: number[] = [0, 1];
    const obstructed: Array<[number, number]> = [];
    const key = (afterMs: number, opening: number) => {
      keyMs.push(keyMs[keyMs.length - 1] + afterMs);
      keyOpening.push(opening);
    };
    const dwell = cfg.doorDwellMs * (1 + this.random());
    // A passenger walking through the open door crosses the light curtain without a reversal.
    if (this.random() < 0.3) {
      const at = openMs + this.random() * dwell * 0.6;
      obstructed.push([at, at + 400 + this.random() * 500]);
    }
    key(dwell, 1);
    const natural = this.random() < cfg.reversalProbability ? 1 : 0;
    const forced = cfg.faults.repeatedReversals.enabled ? cfg.faults.repeatedReversals.perCycle : 0;
    for (let i = 0; i < natural + forced; i += 1) {
      const turnAt = 0.3 + this.random() * 0.5; // re-opens from 30-80 % open
      key((1 - turnAt) * closeMs, turnAt);
      if (i < natural) {
        // Blocked: the light curtain sees the passenger, the door turns back.
        const at = keyMs[keyMs.length - 1];
        obstructed.push([at - 150, at + 600]);
      }
      key((1 - turnAt) * openMs, 1);
      key(1000 + this.random() * 1000, 1);
    }
    key(closeMs, 0);
    const totalMs = keyMs[keyMs.length - 1];
    return { kind: 'door', startMs, endMs: startMs + totalMs, plan: { keyMs, keyOpening, obstructed, totalMs }, index: 0 };
  }
}

/** Standard normal variate (Box-Muller). */
function gaussian(random: () => number): number {
  const u = Math.max(random(), 1e-12);
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

export interface ElevatorSimulatorOptions extends SimulatedSignalsOptions {
  /** Emit raw-sample records. Default false. */
  rawSamples?: boolean;
  detector?: DetectorConfig;
  onRejected?: (rejected: RejectedInput) => void;
}

/** The simulator as a SensorSource: simulated signals through the deriver. */
export class ElevatorSimulator extends DerivedSource {
  private rawSamples: boolean;
  private detector: DetectorConfig;

  constructor(config: SimulatorConfig = DEFAULT_SIMULATOR_CONFIG, random: () => number = Math.random, options: ElevatorSimulatorOptions = {}) {
    const signals = new SimulatedSignals(config, random, options);
    const detector = options.detector ?? DEFAULT_DETECTOR_CONFIG;
    const rawSamples = options.rawSamples ?? false;
    super(signals, new Deriver(deriverConfigFor(config, signals.landingHeightsM, rawSamples, detector)), options.onRejected);
    this.rawSamples = rawSamples;
    this.detector = detector;
  }

  /** Simulator keys from the next phase (timeScale at once); the deriver's settings at once. */
  reconfigure(config: SimulatorConfig, options: { rawSamples?: boolean; detector?: DetectorConfig } = {}): void {
    (this.signals as SimulatedSignals).reconfigure(config);
    this.rawSamples = options.rawSamples ?? this.rawSamples;
    this.detector = options.detector ?? this.detector;
    this.deriver.reconfigure(deriverConfigFor(config, landingHeights(config), this.rawSamples, this.detector));
  }
}

export function deriverConfigFor(config: Pick<SimulatorConfig, 'floors' | 'floorHeightM' | 'landingHeightsM' | 'doorWidthM' | 'metricsIntervalMs'>, heights: number[], rawSamples: boolean, detector: DetectorConfig) {
  return { landingHeightsM: heights, doorWidthM: config.doorWidthM, metricsIntervalMs: config.metricsIntervalMs, rawSamples, detector };
}
