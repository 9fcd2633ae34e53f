import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_DETECTOR_CONFIG, Deriver, DerivedSource, type DeriverConfig, type SampledRecord } from '../../components/sensor-acquisition/derive';
import type { SignalSample, SignalSource } from '../../components/sensor-acquisition/signals';
import { STREAM_DOOR_CYCLE, STREAM_MOTOR, STREAM_RUN } from '../../components/shared/records';

const T0 = 1_700_000_000_000;
const CONFIG: DeriverConfig = { landingHeightsM: [0, 3, 6, 9], doorWidthM: 1, metricsIntervalMs: 1000, rawSamples: false, detector: DEFAULT_DETECTOR_CONFIG };

function at(t: number, fields: Partial<SignalSample> = {}): SignalSample {
  return { t: T0 + t, positionM: 0, velocityMps: 0, doorOpening: 0, obstructed: false, currentA: 0.6, temperatureC: 35, vibrationMmS: 0.15, ...fields };
}

/** A run from `fromM` to `toM` at constant 1 m/s^2 up to 1 m/s and down (100 ms samples), then 1 s at rest. */
function runSamples(startMs: number, fromM: number, toM: number): SignalSample[] {
  const out: SignalSample[] = [];
  const dir = Math.sign(toM - fromM);
  const distance = Math.abs(toM - fromM);
  let x = 0;
  let v = 0;
  let t = startMs;
  const dt = 0.1;
  while (x < distance - 1e-9) {
    const remaining = distance - x;
    const a = v * v / 2 >= remaining - 1e-9 ? -1 : v < 1 ? 1 : 0;
    v = Math.max(0, Math.min(1, v + a * dt));
    x = Math.min(distance, x + v * dt);
    t += 100;
    out.push(at(t, { positionM: fromM + dir * x, velocityMps: dir * v, currentA: 10 + t / 1e5, temperatureC: 35 + t / 1e5, vibrationMmS: 1 + v }));
    if (v === 0) break;
  }
  for (let i = 1; i <= 10; i += 1) out.push(at(t + 100 * i, { positionM: fromM + dir * x }));
  return out;
}

function derive(samples: SignalSample[], config: DeriverConfig = CONFIG): { records: SampledRecord[]; deriver: Deriver } {
  const deriver = new Deriver(config);
  return { records: deriver.push(samples), deriver };
}

describe('Deriver: runs', () => {
  test('a run from landing 0 to landing 2: floors, direction, times, distance and leveling error from the stop position', () => {
    const samples = [at(0), ...runSamples(0, 0, 6.004)];
    const { records } = derive(samples);
    const runs = records.filter((r) => r.stream === STREAM_RUN);
    assert.equal(runs.length, 1);
    const run = runs[0].data;
    assert.equal(run.fromFloor, 0);
    assert.equal(run.toFloor, 2);
    assert.equal(run.direction, 'up');
    assert.ok(Math.abs((run.levelingErrorMm as number) - 4) < 1e-6, `leveling ${run.levelingErrorMm}`);
    assert.ok(Math.abs((run.distanceM as number) - 6.004) < 1e-3);
    assert.equal(run.peakSpeedMps, 1);
    assert.equal(run.peakAccelMps2, 1);
    assert.equal(run.durationMs, (run.stopTime as number) - (run.startTime as number));
    assert.deepEqual(run.quality, { samples: (run.quality as { samples: number }).samples, missingSamples: 0, outOfRangeSamples: 0, stuckSignals: [] });
  });

  test('a down run names direction down; a sample repeating the last t is dropped, not differentiated (no division by zero)', () => {
    const samples = runSamples(0, 9, 3);
    samples.splice(20, 0, { ...samples[19], velocityMps: 0.3 }); // same t as its neighbour, another velocity
    const { records, deriver } = derive([at(0, { positionM: 9 }), ...samples]);
    const run = records.find((r) => r.stream === STREAM_RUN)!.data;
    assert.equal(run.direction, 'down');
    assert.equal(run.fromFloor, 3);
    assert.equal(run.toFloor, 1);
    assert.ok(Number.isFinite(run.peakJerkMps3) && (run.peakJerkMps3 as number) <= 10.001, `jerk ${run.peakJerkMps3}`);
    assert.equal(deriver.metrics.outOfOrderSamples, 1);
  });

  test('an out-of-range reading is counted and left out: a 99 m/s velocity does not become the peak speed', () => {
    const samples = runSamples(0, 0, 3);
    samples[8] = { ...samples[8], velocityMps: 99 };
    samples[9] = { ...samples[9], temperatureC: 900 };
    const run = derive([at(0), ...samples]).records.find((r) => r.stream === STREAM_RUN)!.data;
    assert.equal(run.peakSpeedMps, 1);
    assert.equal((run.quality as { outOfRangeSamples: number }).outOfRangeSamples, 2);
  });

  test('null readings count as missing and decide nothing', () => {
    const samples = runSamples(0, 0, 3).map((s, i) => (i % 4 === 0 ? { ...s, velocityMps: null, obstructed: null } : s));
    const run = derive([at(0), ...samples]).records.find((r) => r.stream === STREAM_RUN)!.data;
    assert.equal(run.toFloor, 1);
    const quality = run.quality as { samples: number; missingSamples: number };
    assert.ok(quality.missingSamples >= quality.samples / 2 - 2 && quality.missingSamples <= quality.samples / 2 + 2, JSON.stringify(quality));
  });

  test('a signal with one exact value while the car moves is named stuck; the others are not', () => {
    const samples = runSamples(0, 0, 6).map((s) => ({ ...s, vibrationMmS: 1.234 }));
    const run = derive([at(0), ...samples]).records.find((r) => r.stream === STREAM_RUN)!.data;
    assert.deepEqual((run.quality as { stuckSignals: string[] }).stuckSignals, ['vibrationMmS']);
  });

  test('a stop between landings does not end the run; the run ends at the landing the car then reaches', () => {
    const first = runSamples(0, 0, 4.5); // stops 1.5 m above landing 1
    const last = first[first.length - 1].t - T0;
    const second = runSamples(last, 4.5, 6);
    const { records } = derive([at(0), ...first, ...second]);
    const runs = records.filter((r) => r.stream === STREAM_RUN).map((r) => r.data);
    assert.equal(runs.length, 1);
    assert.equal(runs[0].fromFloor, 0);
    assert.equal(runs[0].toFloor, 2);
  });

  test('a move that ends at the landing it started from (a re-level) is counted, not reported as a run', () => {
    const samples = [...runSamples(0, 3, 3.2)];
    const back = runSamples(samples[samples.length - 1].t - T0, 3.2, 3.001);
    const { records, deriver } = derive([at(0, { positionM: 3 }), ...samples, ...back]);
    assert.equal(records.filter((r) => r.stream === STREAM_RUN).length, 0);
    assert.equal(deriver.metrics.discardedRuns, 2);
  });
});

describe('Deriver: door cycles', () => {
  /** Door script: (ms, opening, obstructed) keyframes, sampled every 100 ms by linear interpolation. */
  function doorSamples(keys: Array<[number, number, boolean?]>, positionM = 3): SignalSample[] {
    const out: SignalSample[] = [];
    for (let t = 0; t <= keys[keys.length - 1][0]; t += 100) {
      let i = 0;
      while (i < keys.length - 2 && t >= keys[i + 1][0]) i += 1;
      const [t0, o0] = keys[i];
      const [t1, o1] = keys[i + 1];
      const f = t1 > t0 ? Math.min(1, (t - t0) / (t1 - t0)) : 1;
      out.push(at(t, { positionM, doorOpening: o0 + (o1 - o0) * f, obstructed: keys[i][2] ?? false }));
    }
    return out;
  }

  test('open 2 s, dwell 3 s, close 3 s: phases, total, panel speed and floor from the position', () => {
    const { records } = derive(doorSamples([[0, 0], [1000, 0], [3000, 1], [6000, 1], [9000, 0], [10000, 0]]));
    const cycles = records.filter((r) => r.stream === STREAM_DOOR_CYCLE).map((r) => r.data);
    assert.equal(cycles.length, 1);
    const d = cycles[0];
    assert.equal(d.floor, 1);
    assert.equal(d.openStartTime, T0 + 1100);
    assert.equal(d.closeEndTime, T0 + 9000);
    assert.equal(d.totalMs, 7900);
    assert.equal(d.openingMs, 1900);
    assert.equal(d.dwellMs, 3100);
    assert.equal(d.closingMs, 2900);
    assert.equal(d.doorSpeedMps, Math.round((0.5 / 1.9) * 1000) / 1000);
    assert.equal(d.reversals, 0);
    assert.equal(d.obstructions, 0);
  });

  test('a closing door that turns back is a reversal, each time; obstruction counts false -> true edges only', () => {
    const keys: Array<[number, number, boolean?]> = [
      [0, 0], [2000, 1], [4000, 1],
      [5000, 0.5, true], [5300, 0.5, true], [5600, 1], // blocked: reverses (obstructed for 3 samples: one edge)
      [7000, 1], [8000, 0.6], [8600, 1], // reverses without the light curtain
      [9000, 1, true], [9200, 1], [9400, 1, true], [9600, 1], // two crossings while open
      [12000, 0], [12500, 0],
    ];
    const d = derive(doorSamples(keys)).records.find((r) => r.stream === STREAM_DOOR_CYCLE)!.data;
    assert.equal(d.reversals, 2);
    assert.equal(d.obstructions, 3);
  });

  test('door noise below the hysteresis is not a reversal', () => {
    const samples = doorSamples([[0, 0], [2000, 1], [4000, 1], [7000, 0], [7500, 0]]).map((s, i) =>
      s.doorOpening! > 0.05 && s.doorOpening! < 0.95 ? { ...s, doorOpening: s.doorOpening! + (i % 2 ? 0.02 : -0.02) } : s,
    );
    const d = derive(samples).records.find((r) => r.stream === STREAM_DOOR_CYCLE)!.data;
    assert.equal(d.reversals, 0);
  });
});

describe('Deriver: motor records and raw samples', () => {
  test('one motor record per metricsIntervalMs of source time, with the latest valid readings and the car state', () => {
    const samples = Array.from({ length: 50 }, (_, i) => at(100 * (i + 1), { currentA: i === 29 ? null : i, temperatureC: i === 29 ? 900 : 30 + i }));
    const motor = derive(samples).records.filter((r) => r.stream === STREAM_MOTOR).map((r) => r.data);
    assert.equal(motor.length, 4); // at 1100, 2100, 3100, 4100 ms
    assert.deepEqual(motor[0], { carState: 'idle', currentA: 10, temperatureC: 40, vibrationMmS: 0.15 });
    // At 3100 ms the sample before (3000 ms) had a dropout and an impossible temperature: the ones before stand.
    assert.deepEqual(motor[2], { carState: 'idle', currentA: 30, temperatureC: 60, vibrationMmS: 0.15 });
  });

  test('a motor record waits for a first valid reading of each figure', () => {
    const samples = Array.from({ length: 30 }, (_, i) => at(100 * (i + 1), { vibrationMmS: i < 25 ? null : 0.2 }));
    const { records, deriver } = derive(samples);
    assert.equal(records.filter((r) => r.stream === STREAM_MOTOR).length, 0);
    assert.equal(deriver.metrics.skippedMotor, 2);
  });

  test('rawSamples on: each sample as it was read, nulls and all', () => {
    const samples = [at(100, { currentA: null }), at(200, { temperatureC: 900 })];
    const records = derive(samples, { ...CONFIG, rawSamples: true }).records;
    assert.deepEqual(records.map((r) => r.data), samples);
  });

  test('the configuration is checked: too few landings, thresholds in the wrong order', () => {
    assert.throws(() => new Deriver({ ...CONFIG, landingHeightsM: [0] }), /at least 2/);
    assert.throws(() => new Deriver({ ...CONFIG, detector: { ...DEFAULT_DETECTOR_CONFIG, stopSpeedMps: 0.2 } }), /stopSpeedMps/);
  });
});

describe('DerivedSource', () => {
  test('rejected inputs go to the callback as they come and are held for takeRejected(), bounded', () => {
    let calls = 0;
    const source: SignalSource = {
      read: () => ({ samples: [], rejected: Array.from({ length: 600 }, (_, i) => ({ line: i + 1, text: 'x', reason: 'bad', origin: 'f' })) }),
    };
    const derived = new DerivedSource(source, new Deriver(CONFIG), () => (calls += 1));
    derived.advance(1);
    derived.advance(1);
    assert.equal(calls, 1200);
    const taken = derived.takeRejected();
    assert.equal(taken.length, 1000);
    assert.equal(taken[0].line, 201);
    assert.equal(derived.takeRejected().length, 0);
    assert.equal(derived.metrics().rejectedInputs, 1200);
    assert.equal(derived.metrics().rejectedNotTaken, 200);
  });
});
