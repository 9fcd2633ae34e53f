import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import {
  DEFAULT_SIMULATOR_CONFIG,
  ElevatorSimulator,
  planMotion,
  PRIORITY,
  SimulatedSignals,
  STREAM_DOOR_CYCLE,
  STREAM_MOTOR,
  STREAM_RAW_SAMPLE,
  STREAM_RUN,
  type SampledRecord,
  type SimulatorConfig,
} from '../../components/sensor-acquisition/simulator';
import { sensorAcquisitionConfigSchema } from '../../components/sensor-acquisition/config';
import { checkRecord, type DomainLimits } from '../../components/shared/records';
import { compileValidator } from '../../components/shared/validation';
import { mulberry32 } from '../helpers/prng';
import { componentSettings } from '../../components/shared/deployment-hooks';

const HOUR_MS = 60 * 60 * 1000;
const START = 1_700_000_000_000;

/** Advances `totalMs` of real time in steps of `stepMs`; returns every record. */
function runFor(sim: ElevatorSimulator, totalMs: number, stepMs: number): SampledRecord[] {
  const out: SampledRecord[] = [];
  for (let real = stepMs; real <= totalMs; real += stepMs) out.push(...sim.advance(stepMs));
  return out;
}

// 12 floors of 3 m, 2.5 m/s rated, 1 m/s^2, trapezoidal: 1-2 floor trips are triangular, longer ones trapezoidal.
const CONFIG: SimulatorConfig = {
  ...DEFAULT_SIMULATOR_CONFIG,
  floors: 12,
  floorHeightM: 3,
  maxSpeedMps: 2.5,
  accelMps2: 1,
  profile: 'trapezoidal',
  metricsIntervalMs: 1000,
  maxIdleMs: 8000,
  timeScale: 1,
};
const LIMITS: DomainLimits = { ratedSpeedMps: CONFIG.maxSpeedMps, maxFutureMs: 5 * 60_000 };

type Run = { fromFloor: number; toFloor: number; direction: string; startTime: number; stopTime: number; durationMs: number; distanceM: number; peakSpeedMps: number; peakAccelMps2: number; peakJerkMps3: number; levelingErrorMm: number };
type Door = { floor: number; openStartTime: number; closeEndTime: number; openingMs: number; dwellMs: number; closingMs: number; totalMs: number; doorSpeedMps: number; reversals: number; obstructions: number };

describe('ElevatorSimulator: events derived from one simulated hour of signals', () => {
  const records = runFor(new ElevatorSimulator(CONFIG, mulberry32(12345), { startTimeMs: START }), HOUR_MS, 100);
  const events = records.filter((r) => r.stream !== STREAM_MOTOR);
  const runs = events.filter((r) => r.stream === STREAM_RUN).map((r) => r.data as Run);
  const doors = events.filter((r) => r.stream === STREAM_DOOR_CYCLE).map((r) => r.data as Door);

  test('an hour produces a realistic number of trips, one door cycle per trip', () => {
    assert.ok(runs.length >= 100 && runs.length <= 400, `runs: ${runs.length}`);
    assert.ok(Math.abs(runs.length - doors.length) <= 1, `runs ${runs.length}, door cycles ${doors.length}`);
  });

  test('every derived record passes its data contract and the domain checks (no raw samples by default)', () => {
    assert.equal(records.filter((r) => r.stream === STREAM_RAW_SAMPLE).length, 0);
    const now = START + HOUR_MS;
    for (const record of records) {
      const checked = checkRecord(record.stream, record.data, LIMITS, now);
      assert.ok(checked.ok, `${record.stream} ${JSON.stringify(record.data)}: ${checked.ok ? '' : checked.reason}`);
    }
  });

  test('runs and door cycles alternate, starting with a run', () => {
    events.forEach((r, i) => assert.equal(r.stream, i % 2 === 0 ? STREAM_RUN : STREAM_DOOR_CYCLE, `event ${i}`));
  });

  test('each run starts where the previous one ended, at floor 0 first, goes to another floor, every floor served', () => {
    let floor = 0;
    for (const run of runs) {
      assert.equal(run.fromFloor, floor);
      assert.notEqual(run.toFloor, run.fromFloor);
      assert.equal(run.direction, run.toFloor > run.fromFloor ? 'up' : 'down');
      assert.ok(run.toFloor >= 0 && run.toFloor < CONFIG.floors, `toFloor ${run.toFloor}`);
      floor = run.toFloor;
    }
    assert.equal(new Set(runs.map((r) => r.toFloor)).size, CONFIG.floors);
  });

  test('a healthy car levels within the configured +-3 mm (plus sampling) and travels the floor distance', () => {
    for (const run of runs) {
      assert.ok(Math.abs(run.levelingErrorMm) <= CONFIG.levelingErrorMm + 0.5, `leveling ${run.levelingErrorMm}`);
      const floorsM = Math.abs(run.toFloor - run.fromFloor) * CONFIG.floorHeightM;
      assert.ok(Math.abs(run.distanceM - floorsM) <= 0.01, `distance ${run.distanceM} for ${floorsM} m`);
    }
  });

  test('a door cycle happens at the floor the preceding run arrived at, after it stopped', () => {
    for (let i = 1; i < events.length; i += 2) {
      const run = events[i - 1].data as Run;
      const door = events[i].data as Door;
      assert.equal(door.floor, run.toFloor, `event ${i}`);
      assert.ok(door.openStartTime >= run.stopTime, `event ${i}`);
    }
  });

  test('runs follow the trapezoidal / triangular profile: peak speed, acceleration and duration', () => {
    let triangular = 0;
    let trapezoidal = 0;
    for (const run of runs) {
      const plan = planMotion(run.distanceM, CONFIG.maxSpeedMps, CONFIG.accelMps2, CONFIG.jerkMps3, 'trapezoidal');
      // Sampled every 50 ms: the sampled peak is at most 0.05 s x 1 m/s^2 below the true one.
      assert.ok(run.peakSpeedMps <= plan.peakSpeedMps + 1e-3 && run.peakSpeedMps >= plan.peakSpeedMps - 0.051, `peak ${run.peakSpeedMps}, planned ${plan.peakSpeedMps}`);
      assert.ok(Math.abs(run.peakAccelMps2 - CONFIG.accelMps2) <= 0.001, `accel ${run.peakAccelMps2}`);
      // The run is seen from |v| > 0.1 m/s to |v| <= 0.05 m/s: 0.15 s less than planned, +- a sample.
      assert.ok(Math.abs(run.durationMs - (plan.durationS * 1000 - 150)) <= 100, `duration ${run.durationMs}, planned ${plan.durationS * 1000}`);
      assert.equal(run.durationMs, run.stopTime - run.startTime);
      if (plan.peakSpeedMps < CONFIG.maxSpeedMps) triangular += 1;
      else trapezoidal += 1;
    }
    assert.ok(triangular > 0 && trapezoidal > 0, `triangular ${triangular}, trapezoidal ${trapezoidal}`);
  });

  test('a one-floor run of 3 m at 1 m/s^2 peaks near sqrt(3) m/s', () => {
    const oneFloor = runs.find((r) => Math.abs(r.toFloor - r.fromFloor) === 1);
    assert.ok(oneFloor, 'no one-floor run in an hour');
    assert.ok(oneFloor.peakSpeedMps > 1.68 && oneFloor.peakSpeedMps <= 1.737, `peak ${oneFloor.peakSpeedMps}`);
  });

  test('door cycle figures: phases from the door timings, total is open to closed, speed is half the width over the opening time', () => {
    const openMs = ((CONFIG.doorWidthM / 2) / CONFIG.doorOpeningSpeedMps) * 1000;
    const closeMs = ((CONFIG.doorWidthM / 2) / CONFIG.doorClosingSpeedMps) * 1000;
    let withReversal = 0;
    for (const d of doors) {
      assert.ok(Math.abs(d.openingMs - openMs * 0.96) <= 100, `openingMs ${d.openingMs}, door takes ${openMs}`);
      assert.equal(d.totalMs, d.closeEndTime - d.openStartTime);
      assert.ok(d.openingMs + d.dwellMs + d.closingMs <= d.totalMs, JSON.stringify(d));
      assert.ok(Math.abs(d.doorSpeedMps - CONFIG.doorWidthM / 2 / (d.openingMs / 1000)) <= 0.001, `doorSpeedMps ${d.doorSpeedMps}`);
      if (d.reversals === 0) assert.ok(Math.abs(d.closingMs - closeMs) <= 150, `closingMs ${d.closingMs}`);
      else {
        withReversal += 1;
        assert.ok(d.obstructions >= d.reversals, 'a healthy door reverses only when the light curtain sees someone');
      }
    }
    assert.ok(withReversal > 0 && withReversal < doors.length * 0.2, `cycles with a reversal: ${withReversal} of ${doors.length}`);
  });

  test('events carry priority 2 and motor records priority 1', () => {
    assert.equal(PRIORITY.event, 2);
    assert.equal(PRIORITY.metric, 1);
    for (const record of records) assert.equal(record.priority, record.stream === STREAM_MOTOR ? 1 : 2, record.stream);
  });

  test('motor records name the car state, and the motor draws more current and vibrates more while moving', () => {
    const motor = records.filter((r) => r.stream === STREAM_MOTOR).map((r) => r.data as { carState: string; currentA: number; vibrationMmS: number; temperatureC: number });
    assert.deepEqual([...new Set(motor.map((m) => m.carState))].sort(), ['door', 'idle', 'moving']);
    const mean = (state: string, key: 'currentA' | 'vibrationMmS') => {
      const values = motor.filter((m) => m.carState === state).map((m) => m[key]);
      return values.reduce((a, b) => a + b, 0) / values.length;
    };
    assert.ok(mean('moving', 'currentA') > 5 * mean('idle', 'currentA'), `moving ${mean('moving', 'currentA')} A, idle ${mean('idle', 'currentA')} A`);
    assert.ok(mean('moving', 'vibrationMmS') > 3 * mean('door', 'vibrationMmS'));
    for (const m of motor) {
      if (m.carState === 'moving') assert.ok(m.currentA >= 4 && m.vibrationMmS >= 0.4, JSON.stringify(m));
      if (m.carState === 'door') assert.ok(m.currentA < 2 && m.vibrationMmS < 0.25, JSON.stringify(m));
      assert.ok(m.temperatureC >= 25 && m.temperatureC <= 90, JSON.stringify(m));
    }
  });
});

describe('ElevatorSimulator: velocity profiles', () => {
  test('the S-curve limits jerk to the configured limit; the trapezoidal profile jerks an order of magnitude harder', () => {
    const jerks = (profile: 'trapezoidal' | 's-curve') =>
      runFor(new ElevatorSimulator({ ...DEFAULT_SIMULATOR_CONFIG, profile }, mulberry32(77), { startTimeMs: START }), 1_200_000, 1000)
        .filter((r) => r.stream === STREAM_RUN)
        .map((r) => (r.data as Run).peakJerkMps3);
    const sCurve = jerks('s-curve');
    const trapezoidal = jerks('trapezoidal');
    assert.ok(sCurve.length > 20 && trapezoidal.length > 20);
    for (const jerk of sCurve) assert.ok(jerk <= DEFAULT_SIMULATOR_CONFIG.jerkMps3 * 1.05, `s-curve jerk ${jerk}`);
    for (const jerk of trapezoidal) assert.ok(jerk >= 5 * DEFAULT_SIMULATOR_CONFIG.jerkMps3, `trapezoidal jerk ${jerk}`);
  });

  test('planMotion covers the distance exactly and stops at rest, for both profiles, long and short trips', () => {
    for (const profile of ['trapezoidal', 's-curve'] as const) {
      for (const distance of [0.01, 1, 3.2, 10, 38.4]) {
        const plan = planMotion(distance, 1.6, 0.8, 1.2, profile);
        const last = plan.segments[plan.segments.length - 1];
        const d = last.dur;
        const x = last.x0 + last.v0 * d + (last.a0 * d * d) / 2 + (last.j * d ** 3) / 6;
        const v = last.v0 + last.a0 * d + (last.j * d * d) / 2;
        assert.ok(Math.abs(x - distance) < 1e-9, `${profile} ${distance} m: ends at ${x}`);
        assert.ok(Math.abs(v) < 1e-9, `${profile} ${distance} m: ends at ${v} m/s`);
        assert.ok(plan.peakSpeedMps <= 1.6 + 1e-12);
      }
    }
  });
});

describe('ElevatorSimulator: simulated time', () => {
  test('motor records arrive exactly every metricsIntervalMs of simulated time, however the real time is sliced', () => {
    const interval = 250;
    const sim = new ElevatorSimulator({ ...CONFIG, metricsIntervalMs: interval }, mulberry32(7), { startTimeMs: START });
    const slices = mulberry32(99);
    let simulated = 0;
    let total = 0;
    while (simulated < HOUR_MS) {
      const step = Math.floor(slices() * 3000); // 0..2999 ms, including zero-length steps
      const before = simulated;
      simulated += step;
      const motor = sim.advance(step).filter((r) => r.stream === STREAM_MOTOR).length;
      // The first motor record comes one interval after the first sample (at 50 ms).
      const expected = (s: number) => Math.max(0, Math.floor((s - CONFIG.signalIntervalMs) / interval));
      assert.equal(motor, expected(simulated) - expected(before), `step ${before}..${simulated}`);
      total += motor;
    }
    assert.ok(total > 14000);
  });

  test('signal samples come every signalIntervalMs of simulated time, stamped startTimeMs + simulated ms', () => {
    const signals = new SimulatedSignals({ ...CONFIG, signalIntervalMs: 20, timeScale: 10 }, mulberry32(1), { startTimeMs: START });
    const { samples } = signals.read(100);
    assert.equal(samples.length, 50);
    samples.forEach((s, i) => assert.equal(s.t, START + 20 * (i + 1)));
  });

  test('timeScale multiplies simulated time: advance(1000) at timeScale 10 gives 10 motor records at a 1000 ms interval', () => {
    const fast = new ElevatorSimulator({ ...CONFIG, timeScale: 10, metricsIntervalMs: 1000 }, mulberry32(1), { startTimeMs: START });
    assert.equal(fast.advance(1050).filter((r) => r.stream === STREAM_MOTOR).length, 10);
    assert.equal(fast.advance(500).filter((r) => r.stream === STREAM_MOTOR).length, 5);
    const normal = new ElevatorSimulator({ ...CONFIG, timeScale: 1, metricsIntervalMs: 1000 }, mulberry32(1), { startTimeMs: START });
    assert.equal(normal.advance(1050).filter((r) => r.stream === STREAM_MOTOR).length, 1);
  });

  test('the same seed at timeScale 60 over one real minute replays the same hour as timeScale 1 over one real hour', () => {
    const fast = runFor(new ElevatorSimulator({ ...CONFIG, timeScale: 60 }, mulberry32(2024), { startTimeMs: START }), 60_000, 100);
    const slow = runFor(new ElevatorSimulator({ ...CONFIG, timeScale: 1 }, mulberry32(2024), { startTimeMs: START }), HOUR_MS, 6000);
    assert.ok(fast.length > 3600);
    assert.deepEqual(fast, slow);
  });

  test('the same seed gives the same records, and another seed different ones', () => {
    const a = runFor(new ElevatorSimulator(CONFIG, mulberry32(5), { startTimeMs: START }), 600_000, 250);
    const b = runFor(new ElevatorSimulator(CONFIG, mulberry32(5), { startTimeMs: START }), 600_000, 250);
    const c = runFor(new ElevatorSimulator(CONFIG, mulberry32(6), { startTimeMs: START }), 600_000, 250);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
  });

  test('timeScale 20 without a start time: the simulated clock starts 19 x catchUpMs back and never passes the wall clock', () => {
    let now = 1_750_000_000_000;
    const signals = new SimulatedSignals({ ...CONFIG, timeScale: 20, catchUpMs: 60_000 }, mulberry32(1), { now: () => now });
    assert.equal(signals.startTimeMs, now - 19 * 60_000);
    let count = 0;
    for (let i = 0; i < 70; i += 1) {
      now += 1000;
      const { samples } = signals.read(1000);
      for (const sample of samples) assert.ok(sample.t <= now, `sample at ${sample.t}, wall clock ${now}`);
      count += samples.length;
      // 20 s of simulated time per real second while catching up (60 s), then 1 s per second.
      if (i < 59) assert.equal(samples.length, 400, `second ${i}`);
      if (i > 60) assert.equal(samples.length, 20, `second ${i}`);
    }
    assert.ok(count > 60 * 400);
  });

  test('advance(0) returns nothing', () => {
    assert.deepEqual(new ElevatorSimulator(CONFIG, mulberry32(3)).advance(0), []);
  });

  // No bound on how long this takes: a timed unit test fails on a slow machine, not on slow code.
  test('at timeScale 100 a real second derives 2000 samples, whether advanced at once or in ten steps', () => {
    const sim = new ElevatorSimulator({ ...DEFAULT_SIMULATOR_CONFIG, timeScale: 100 }, mulberry32(8), { startTimeMs: START });
    sim.advance(1000);
    assert.equal(sim.metrics().samples, 2000);
    for (let i = 0; i < 10; i += 1) sim.advance(100);
    assert.equal(sim.metrics().samples, 4000);
  });

  test('rawSamples: every signal sample becomes a raw-sample record with priority 0 that passes its contract', () => {
    const sim = new ElevatorSimulator(CONFIG, mulberry32(4), { startTimeMs: START, rawSamples: true });
    const raw = sim.advance(10_000).filter((r) => r.stream === STREAM_RAW_SAMPLE);
    assert.equal(raw.length, 200);
    for (const record of raw) {
      assert.equal(record.priority, PRIORITY.raw);
      const checked = checkRecord(STREAM_RAW_SAMPLE, record.data, LIMITS, START + 10_000);
      assert.ok(checked.ok, checked.ok ? '' : checked.reason);
    }
  });
});

describe('ElevatorSimulator: configuration', () => {
  test('the constructor rejects fewer than 2 floors with the value named', () => {
    assert.throws(() => new ElevatorSimulator({ ...CONFIG, floors: 1 }), { name: 'RangeError', message: 'floors must be >= 2, got 1' });
    assert.throws(() => new ElevatorSimulator({ ...CONFIG, floors: 0 }), RangeError);
  });

  test('the constructor rejects timeScale <= 0 or NaN with the value named', () => {
    assert.throws(() => new ElevatorSimulator({ ...CONFIG, timeScale: 0 }), { name: 'RangeError', message: 'timeScale must be > 0, got 0' });
    assert.throws(() => new ElevatorSimulator({ ...CONFIG, timeScale: -1 }), RangeError);
    assert.throws(() => new ElevatorSimulator({ ...CONFIG, timeScale: Number.NaN }), RangeError);
  });

  test('an explicit landing table must rise strictly', () => {
    assert.throws(() => new ElevatorSimulator({ ...CONFIG, landingHeightsM: [0, 4, 4] }), /strictly increasing/);
  });

  test('two floors are enough: every run alternates between floor 0 and floor 1', () => {
    const records = runFor(new ElevatorSimulator({ ...CONFIG, floors: 2 }, mulberry32(11), { startTimeMs: START }), 600_000, 100);
    const runs = records.filter((r) => r.stream === STREAM_RUN).map((r) => [r.data.fromFloor, r.data.toFloor]);
    assert.ok(runs.length > 10);
    runs.forEach((run, i) => assert.deepEqual(run, i % 2 === 0 ? [0, 1] : [1, 0], `run ${i}`));
  });

  test('an uneven landing table (lobby 5 m, then 3.5 m floors): floors come from position, leveling stays small', () => {
    const landingHeightsM = [0, 5, 8.5, 12, 15.5];
    const records = runFor(new ElevatorSimulator({ ...CONFIG, landingHeightsM }, mulberry32(21), { startTimeMs: START }), 900_000, 500);
    const runs = records.filter((r) => r.stream === STREAM_RUN).map((r) => r.data as Run);
    assert.ok(runs.length > 20);
    for (const run of runs) {
      assert.ok(Math.abs(run.distanceM - Math.abs(landingHeightsM[run.toFloor] - landingHeightsM[run.fromFloor])) <= 0.01, JSON.stringify(run));
      assert.ok(Math.abs(run.levelingErrorMm) <= 3.5);
    }
  });

  test('the configuration schema fills every simulator, fault, detector and source default, and the recipe defaults validate', () => {
    const validate = compileValidator<Record<string, any>>(sensorAcquisitionConfigSchema);
    const filled = validate({});
    assert.ok(filled.ok);
    const { faults, ...simulator } = filled.value.simulator;
    const { faults: defaultFaults, ...defaults } = DEFAULT_SIMULATOR_CONFIG;
    assert.deepEqual(simulator, defaults);
    assert.deepEqual(faults, defaultFaults);
    assert.equal(filled.value.rawSamples, false);
    assert.deepEqual(filled.value.source, { type: 'simulator', timeScale: 1, rebase: false, loop: false, clock: 'device' });
    for (const fault of Object.values(faults as unknown as Record<string, { enabled: boolean }>)) assert.equal(fault.enabled, false);

    const recipe = parseYaml(readFileSync(join(__dirname, '..', '..', '..', 'recipes', 'com.elevator.SensorAcquisition.yaml'), 'utf8')) as {
      ComponentConfiguration: { DefaultConfiguration: Record<string, unknown> };
    };
    const recipeDefaults = componentSettings(recipe.ComponentConfiguration.DefaultConfiguration);
    const checked = validate(structuredClone(recipeDefaults));
    assert.ok(checked.ok, checked.ok ? '' : checked.reason);
  });

  test('the schema refuses a replay or line source without a path, and an unknown fault', () => {
    const validate = compileValidator<Record<string, unknown>>(sensorAcquisitionConfigSchema);
    const noPath = validate({ source: { type: 'replay' } });
    assert.ok(!noPath.ok && /path/.test(noPath.reason), JSON.stringify(noPath));
    assert.ok(!validate({ source: { type: 'line' } }).ok);
    assert.ok(validate({ source: { type: 'line', path: '-' } }).ok);
    assert.ok(!validate({ simulator: { faults: { brokenCable: { enabled: true } } } }).ok);
    assert.ok(!validate({ simulator: { faults: { stuckSensor: { enabled: true, signal: 'obstructed' } } } }).ok);
  });
});
