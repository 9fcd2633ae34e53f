import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_SIMULATOR_CONFIG,
  ElevatorSimulator,
  PRIORITY,
  STREAM_DOOR_CYCLE,
  STREAM_MOTOR,
  STREAM_RUN,
  type SampledRecord,
  type SimulatorConfig,
} from '../../components/sensor-acquisition/simulator';
import { mulberry32 } from '../helpers/prng';


const HOUR_MS = 60 * 60 * 1000;

interface Timed {
  record: SampledRecord;
  /** Simulated time at the end of the advance() call that returned it. */
  at: number;
}

/** Advances `totalMs` of real time in steps of `stepMs`; returns each record with the simulated time it was returned at. */
function runFor(sim: ElevatorSimulator, totalMs: number, stepMs: number, timeScale: number): Timed[] {
  const out: Timed[] = [];
  for (let real = stepMs; real <= totalMs; real += stepMs) {
    for (const record of sim.advance(stepMs)) out.push({ record, at: real * timeScale });
  }
  return out;
}

/** Run duration for a distance under a trapezoidal profile (accelerate at a to v, cruise, decelerate) or a triangular one when v is not reached. */
function expectedRun(distanceM: number, v: number, a: number): { durationMs: number; peak: number } {
  const rampDistance = (v * v) / (2 * a); // to reach v, and again to stop
  if (2 * rampDistance <= distanceM) {
    const rampS = v / a;
    const cruiseS = (distanceM - 2 * rampDistance) / v;
    return { durationMs: (2 * rampS + cruiseS) * 1000, peak: v };
  }
  const halfS = Math.sqrt(distanceM / 2 / (a / 2)); // d/2 = a t^2 / 2
  return { durationMs: 2 * halfS * 1000, peak: a * halfS };
}

// 12 floors of 3 m, 2.5 m/s rated, 1 m/s^2: a 6.25 m ramp pair, so 1-2 floor trips are triangular and longer ones trapezoidal.
const CONFIG: SimulatorConfig = { ...DEFAULT_SIMULATOR_CONFIG, floors: 12, floorHeightM: 3, maxSpeedMps: 2.5, accelMps2: 1, metricsIntervalMs: 1000, maxIdleMs: 8000, timeScale: 1 };

describe('ElevatorSimulator: events over one simulated hour', () => {
  const timed = runFor(new ElevatorSimulator(CONFIG, mulberry32(12345)), HOUR_MS, 100, 1);
  const events = timed.filter((t) => t.record.stream !== STREAM_MOTOR);
  const runs = events.filter((t) => t.record.stream === STREAM_RUN);
  const doors = events.filter((t) => t.record.stream === STREAM_DOOR_CYCLE);

  test('an hour produces a realistic number of trips (each trip takes roughly 10-30 s)', () => {
    assert.ok(runs.length >= 100 && runs.length <= 400, `runs: ${runs.length}`);
    assert.ok(Math.abs(runs.length - doors.length) <= 1, `runs ${runs.length}, door cycles ${doors.length}`);
  });

  test('runs and door cycles alternate, starting with a run', () => {
    events.forEach((t, i) => assert.equal(t.record.stream, i % 2 === 0 ? STREAM_RUN : STREAM_DOOR_CYCLE, `event ${i}`));
  });

  test('each run starts where the previous one ended, at floor 0 first, and goes to another existing floor', () => {
    let floor = 0;
    for (const { record } of runs) {
      const { fromFloor, toFloor } = record.data as { fromFloor: number; toFloor: number };
      assert.equal(fromFloor, floor);
      assert.notEqual(toFloor, fromFloor);
      assert.ok(Number.isInteger(toFloor) && toFloor >= 0 && toFloor < CONFIG.floors, `toFloor ${toFloor}`);
      floor = toFloor;
    }
    const visited = new Set(runs.map((t) => (t.record.data as { toFloor: number }).toFloor));
    assert.equal(visited.size, CONFIG.floors, 'every floor is served within an hour');
  });

  test('a door cycle happens at the floor the preceding run arrived at', () => {
    for (let i = 1; i < events.length; i += 2) {
      const run = events[i - 1].record.data as { toFloor: number };
      const door = events[i].record.data as { floor: number };
      assert.equal(door.floor, run.toFloor, `event ${i}`);
    }
  });

  test('run durationMs and peakSpeedMps follow the trapezoidal / triangular profile for the distance', () => {
    let triangular = 0;
    let trapezoidal = 0;
    for (const { record } of runs) {
      const data = record.data as { fromFloor: number; toFloor: number; durationMs: number; peakSpeedMps: number; accelMps2: number };
      const distance = Math.abs(data.toFloor - data.fromFloor) * CONFIG.floorHeightM;
      const expected = expectedRun(distance, CONFIG.maxSpeedMps, CONFIG.accelMps2);
      assert.ok(Math.abs(data.durationMs - expected.durationMs) <= 0.5 + 1e-9, `${distance} m: ${data.durationMs} ms, expected ${expected.durationMs}`);
      assert.ok(Math.abs(data.peakSpeedMps - expected.peak) <= 0.0005 + 1e-9, `${distance} m: peak ${data.peakSpeedMps}, expected ${expected.peak}`);
      assert.equal(data.accelMps2, CONFIG.accelMps2);
      if (expected.peak < CONFIG.maxSpeedMps) triangular += 1;
      else trapezoidal += 1;
    }
    assert.ok(triangular > 0 && trapezoidal > 0, `triangular ${triangular}, trapezoidal ${trapezoidal}`);
  });

  test('a one-floor run of 3 m at 1 m/s^2 takes 2*sqrt(3) s and peaks at sqrt(3) m/s', () => {
    const oneFloor = runs.find((t) => Math.abs((t.record.data.toFloor as number) - (t.record.data.fromFloor as number)) === 1);
    assert.ok(oneFloor, 'no one-floor run in an hour');
    assert.equal(oneFloor.record.data.durationMs, 3464);
    assert.equal(oneFloor.record.data.peakSpeedMps, 1.732);
  });

  test('a door cycle is reported when it ends: it arrives totalMs after the run that preceded it', () => {
    for (let i = 1; i < events.length; i += 2) {
      const totalMs = events[i].record.data.totalMs as number;
      const gap = events[i].at - events[i - 1].at;
      assert.ok(Math.abs(gap - totalMs) <= 100 + 1, `event ${i}: arrived ${gap} ms after the run, totalMs ${totalMs}`);
    }
  });

  test('door cycle figures are consistent: phases in range, total is their sum, speed is half the door width over the opening time', () => {
    for (const { record } of doors) {
      const d = record.data as { openMs: number; dwellMs: number; closeMs: number; totalMs: number; doorSpeedMps: number; reversals: number; obstructed: boolean };
      assert.ok(d.openMs >= 2200 && d.openMs <= 2800, `openMs ${d.openMs}`);
      assert.ok(d.closeMs >= 2600 && d.closeMs <= 3200, `closeMs ${d.closeMs}`);
      assert.ok(d.dwellMs >= 3000 && d.dwellMs <= 6000 + 2500 * d.reversals, `dwellMs ${d.dwellMs}`);
      assert.ok(Math.abs(d.totalMs - (d.openMs + d.dwellMs + d.closeMs)) <= 1, `totalMs ${d.totalMs}`);
      assert.ok(Math.abs(d.doorSpeedMps - CONFIG.doorWidthM / 2 / (d.openMs / 1000)) <= 0.001, `doorSpeedMps ${d.doorSpeedMps}`);
      assert.equal(d.obstructed, d.reversals > 0);
    }
  });

  test('events carry priority 2 and motor samples priority 1', () => {
    assert.equal(PRIORITY.event, 2);
    assert.equal(PRIORITY.metric, 1);
    for (const { record } of timed) {
      assert.equal(record.priority, record.stream === STREAM_MOTOR ? 1 : 2, record.stream);
    }
  });

  test('motor samples report the phase, and draw more current and vibrate more while running', () => {
    const motor = timed.filter((t) => t.record.stream === STREAM_MOTOR).map((t) => t.record.data as { state: string; currentA: number; vibrationMmS: number; temperatureC: number });
    const states = new Set(motor.map((m) => m.state));
    assert.deepEqual([...states].sort(), ['door', 'idle', 'run']);
    for (const m of motor) {
      if (m.state === 'run') assert.ok(m.currentA >= 18 && m.currentA <= 24 && m.vibrationMmS >= 1.5, JSON.stringify(m));
      else assert.ok(m.currentA < 1 && m.vibrationMmS < 0.25, JSON.stringify(m));
      assert.ok(m.temperatureC >= 25 && m.temperatureC <= 90, JSON.stringify(m));
    }
  });
});

describe('ElevatorSimulator: simulated time', () => {
  test('motor samples arrive exactly every metricsIntervalMs of simulated time, however the real time is sliced', () => {
    const interval = 250;
    const sim = new ElevatorSimulator({ ...CONFIG, metricsIntervalMs: interval }, mulberry32(7));
    const slices = mulberry32(99);
    let simulated = 0;
    let total = 0;
    while (simulated < HOUR_MS) {
      const step = Math.floor(slices() * 3000); // 0..2999 ms, including zero-length steps
      const before = simulated;
      simulated += step;
      const motor = sim.advance(step).filter((r) => r.stream === STREAM_MOTOR).length;
      assert.equal(motor, Math.floor(simulated / interval) - Math.floor(before / interval), `step ${before}..${simulated}`);
      total += motor;
    }
    assert.equal(total, Math.floor(simulated / interval));
  });

  test('timeScale multiplies simulated time: advance(1000) at timeScale 10 gives 10 motor samples at a 1000 ms interval', () => {
    const fast = new ElevatorSimulator({ ...CONFIG, timeScale: 10, metricsIntervalMs: 1000 }, mulberry32(1));
    assert.equal(fast.advance(1000).filter((r) => r.stream === STREAM_MOTOR).length, 10);
    assert.equal(fast.advance(500).filter((r) => r.stream === STREAM_MOTOR).length, 5);
    const normal = new ElevatorSimulator({ ...CONFIG, timeScale: 1, metricsIntervalMs: 1000 }, mulberry32(1));
    assert.equal(normal.advance(1000).filter((r) => r.stream === STREAM_MOTOR).length, 1);
  });

  test('the same seed at timeScale 60 over one real minute replays the same hour as timeScale 1 over one real hour', () => {
    const fast = runFor(new ElevatorSimulator({ ...CONFIG, timeScale: 60 }, mulberry32(2024)), 60_000, 100, 60).map((t) => t.record);
    const slow = runFor(new ElevatorSimulator({ ...CONFIG, timeScale: 1 }, mulberry32(2024)), HOUR_MS, 6000, 1).map((t) => t.record);
    assert.ok(fast.length > 3600);
    assert.deepEqual(fast, slow);
  });

  test('the same seed gives the same records, and another seed different ones', () => {
    const a = runFor(new ElevatorSimulator(CONFIG, mulberry32(5)), 600_000, 250, 1).map((t) => t.record);
    const b = runFor(new ElevatorSimulator(CONFIG, mulberry32(5)), 600_000, 250, 1).map((t) => t.record);
    const c = runFor(new ElevatorSimulator(CONFIG, mulberry32(6)), 600_000, 250, 1).map((t) => t.record);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
  });

  test('advance(0) returns nothing', () => {
    assert.deepEqual(new ElevatorSimulator(CONFIG, mulberry32(3)).advance(0), []);
  });
});

describe('ElevatorSimulator: configuration checks', () => {
  test('the constructor rejects fewer than 2 floors with the value named', () => {
    assert.throws(() => new ElevatorSimulator({ ...CONFIG, floors: 1 }), { name: 'RangeError', message: 'floors must be >= 2, got 1' });
    assert.throws(() => new ElevatorSimulator({ ...CONFIG, floors: 0 }), RangeError);
  });

  test('the constructor rejects timeScale <= 0 or NaN with the value named', () => {
    assert.throws(() => new ElevatorSimulator({ ...CONFIG, timeScale: 0 }), { name: 'RangeError', message: 'timeScale must be > 0, got 0' });
    assert.throws(() => new ElevatorSimulator({ ...CONFIG, timeScale: -1 }), RangeError);
    assert.throws(() => new ElevatorSimulator({ ...CONFIG, timeScale: Number.NaN }), RangeError);
  });

  test('two floors are enough: every run alternates between floor 0 and floor 1', () => {
    const records = runFor(new ElevatorSimulator({ ...CONFIG, floors: 2 }, mulberry32(11)), 600_000, 100, 1).map((t) => t.record);
    const runs = records.filter((r) => r.stream === STREAM_RUN).map((r) => [r.data.fromFloor, r.data.toFloor]);
    assert.ok(runs.length > 10);
    runs.forEach((run, i) => assert.deepEqual(run, i % 2 === 0 ? [0, 1] : [1, 0], `run ${i}`));
  });
});
