/**
 * A small elevator simulator: one car serving a floor table, with door cycles and trapezoidal
 * velocity runs, plus periodic motor metrics. It runs on simulated time so tests and demos can
 * speed it up (timeScale). Events are derived from the state machine's transitions, so a door
 * cycle record describes a cycle that really happened in the simulation.
 */
export const STREAM_DOOR_CYCLE = 'door-cycle';
export const STREAM_RUN = 'run';
export const STREAM_MOTOR = 'motor';

/** Retention priority: events outrank periodic metrics (the brief, StreamBuffer). */
export const PRIORITY = { event: 2, metric: 1, raw: 0 } as const;

export interface SampledRecord {
  stream: string;
  priority: number;
  data: Record<string, unknown>;
}

/** Any sensor source (simulator, replay, real driver): sampled records for a step of real time. */
export interface SensorSource {
  advance(realElapsedMs: number): SampledRecord[];
}

export interface SimulatorConfig {
  floors: number;
  floorHeightM: number;
  maxSpeedMps: number;
  accelMps2: number;
  doorWidthM: number;
  /** Simulated milliseconds per real millisecond. */
  timeScale: number;
  metricsIntervalMs: number;
  /** Longest idle time between trips, simulated ms. */
  maxIdleMs: number;
}

export const DEFAULT_SIMULATOR_CONFIG: SimulatorConfig = {
  floors: 12,
  floorHeightM: 3.2,
  // Typical mid-rise traction elevator: 1.6 m/s rated speed, 0.8 m/s^2 acceleration.
  maxSpeedMps: 1.6,
  accelMps2: 0.8,
  doorWidthM: 0.9,
  timeScale: 1,
  metricsIntervalMs: 1000,
  maxIdleMs: 8000,
};

type Phase =
  | { kind: 'idle'; untilMs: number }
  | { kind: 'door'; floor: number; startedMs: number; openMs: number; dwellMs: number; closeMs: number; reversals: number }
  | { kind: 'run'; from: number; to: number; startedMs: number; durationMs: number; peakSpeed: number };

export class ElevatorSimulator implements SensorSource {
  private simMs = 0;
  private floor = 0;
  private phase: Phase;
  private nextMetricsMs: number;
  private motorTempC = 35;

  constructor(
    private config: SimulatorConfig = DEFAULT_SIMULATOR_CONFIG,
    private readonly random: () => number = Math.random,
  ) {
    if (config.floors < 2) throw new RangeError(`floors must be >= 2, got ${config.floors}`);
    if (!(config.timeScale > 0)) throw new RangeError(`timeScale must be > 0, got ${config.timeScale}`);
    this.phase = { kind: 'idle', untilMs: this.random() * config.maxIdleMs };
    this.nextMetricsMs = config.metricsIntervalMs;
  }

  /** Takes effect from the next phase; the run or door cycle in progress completes as planned. */
  reconfigure(config: SimulatorConfig): void {
    if (config.floors < 2) throw new RangeError(`floors must be >= 2, got ${config.floors}`);
    if (!(config.timeScale > 0)) throw new RangeError(`timeScale must be > 0, got ${config.timeScale}`);
    this.config = config;
  }

  advance(realElapsedMs: number): SampledRecord[] {
    const records: SampledRecord[] = [];
    const target = this.simMs + realElapsedMs * this.config.timeScale;
    // Step through every transition and metrics instant inside the interval, in time order.
    for (;;) {
      const transitionAt = this.phaseEndMs();
      const next = Math.min(transitionAt, this.nextMetricsMs);
      if (next > target) break;
      this.simMs = next;
      if (next === this.nextMetricsMs) {
        records.push(this.motorSample());
        this.nextMetricsMs += this.config.metricsIntervalMs;
      } else {
        const event = this.completePhase();
        if (event) records.push(event);
      }
    }
    this.simMs = target;
    return records;
  }

  private phaseEndMs(): number {
    const p = this.phase;
    if (p.kind === 'idle') return p.untilMs;
    if (p.kind === 'door') return p.startedMs + p.openMs + p.dwellMs + p.closeMs;
    return p.startedMs + p.durationMs;
  }

  private completePhase(): SampledRecord | undefined {
    const p = this.phase;
    if (p.kind === 'idle') {
      this.startRun();
      return undefined;
    }
    if (p.kind === 'door') {
      this.phase = { kind: 'idle', untilMs: this.simMs + this.random() * this.config.maxIdleMs };
      return {
        stream: STREAM_DOOR_CYCLE,
        priority: PRIORITY.event,
        data: {
          floor: p.floor,
          openMs: round(p.openMs),
          dwellMs: round(p.dwellMs),
          closeMs: round(p.closeMs),
          totalMs: round(p.openMs + p.dwellMs + p.closeMs),
          doorSpeedMps: round3(this.config.doorWidthM / 2 / (p.openMs / 1000)),
          reversals: p.reversals,
          obstructed: p.reversals > 0,
        },
      };
    }
    this.floor = p.to;
    this.startDoorCycle();
    return {
      stream: STREAM_RUN,
      priority: PRIORITY.event,
      data: {
        fromFloor: p.from,
        toFloor: p.to,
        durationMs: round(p.durationMs),
        peakSpeedMps: round3(p.peakSpeed),
        accelMps2: this.config.accelMps2,
        levelingErrorMm: round3((this.random() - 0.5) * 6),
      },
    };
  }

  private startRun(): void {
    let to = this.floor;
    while (to === this.floor) to = Math.floor(this.random() * this.config.floors);
    const distance = Math.abs(to - this.floor) * this.config.floorHeightM;
    const { maxSpeedMps: v, accelMps2: a } = this.config;
    // Trapezoidal profile; a short trip never reaches rated speed and is triangular.
    const accelDistance = (v * v) / a;
    const peakSpeed = distance >= accelDistance ? v : Math.sqrt(distance * a);
    const durationS = distance >= accelDistance ? distance / v + v / a : 2 * Math.sqrt(distance / a);
    this.phase = { kind: 'run', from: this.floor, to, startedMs: this.simMs, durationMs: durationS * 1000, peakSpeed };
  }

  private startDoorCycle(): void {
    const reversals = this.random() < 0.05 ? 1 : 0;
    this.phase = {
      kind: 'door',
      floor: this.floor,
      startedMs: this.simMs,
      openMs: 2200 + this.random() * 600,
      dwellMs: 3000 + this.random() * 3000 + reversals * 2500,
      closeMs: 2600 + this.random() * 600,
      reversals,
    };
  }

  private motorSample(): SampledRecord {
    const moving = this.phase.kind === 'run';
    this.motorTempC += moving ? 0.02 : -0.01;
    this.motorTempC = Math.min(90, Math.max(25, this.motorTempC));
    return {
      stream: STREAM_MOTOR,
      priority: PRIORITY.metric,
      data: {
        state: this.phase.kind,
        currentA: round3(moving ? 18 + this.random() * 6 : 0.5 + this.random() * 0.3),
        temperatureC: round3(this.motorTempC),
        vibrationMmS: round3(moving ? 1.5 + this.random() * 1.5 : 0.1 + this.random() * 0.1),
      },
    };
  }
}

function round(value: number): number {
  return Math.round(value);
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}
