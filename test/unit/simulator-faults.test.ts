import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_SIMULATOR_CONFIG,
  ElevatorSimulator,
  NO_FAULTS,
  STREAM_DOOR_CYCLE,
  STREAM_MOTOR,
  STREAM_RAW_SAMPLE,
  STREAM_RUN,
  type SampledRecord,
  type SimulatorConfig,
  type SimulatorFaults,
} from '../../components/sensor-acquisition/simulator';
import { checkRecord, DEFAULT_DOMAIN_LIMITS } from '../../components/shared/records';
import { mulberry32 } from '../helpers/prng';

const START = 1_700_000_000_000;
const TWENTY_MINUTES = 20 * 60_000;

type Quality = { samples: number; missingSamples: number; outOfRangeSamples: number; stuckSignals: string[] };
type Run = { fromFloor: number; toFloor: number; levelingErrorMm: number; peakJerkMps3: number; peakSpeedMps: number; quality: Quality };
type Door = { openingMs: number; closingMs: number; doorSpeedMps: number; reversals: number; obstructions: number; quality: Quality };

/** Twenty simulated minutes (at timeScale 20, in 1 s steps), with the given faults on top of none. */
function simulate(faults: Partial<SimulatorFaults>, extra: Partial<SimulatorConfig> = {}, options: { rawSamples?: boolean } = {}): SampledRecord[] {
  const config: SimulatorConfig = { ...DEFAULT_SIMULATOR_CONFIG, timeScale: 20, ...extra, faults: { ...NO_FAULTS, ...faults } };
  const sim = new ElevatorSimulator(config, mulberry32(31337), { startTimeMs: START, ...options });
  const out: SampledRecord[] = [];
  for (let real = 0; real < TWENTY_MINUTES / 20; real += 1000) out.push(...sim.advance(1000));
  return out;
}

const runs = (records: SampledRecord[]) => records.filter((r) => r.stream === STREAM_RUN).map((r) => r.data as Run);
const doors = (records: SampledRecord[]) => records.filter((r) => r.stream === STREAM_DOOR_CYCLE).map((r) => r.data as Door);
const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
const events = (records: SampledRecord[]) => [...runs(records), ...doors(records)];

describe('simulator fault modes show up in the derived events', () => {
  const healthy = simulate({});

  test('fault-free: every event has clean quality, and the run count is realistic', () => {
    assert.ok(runs(healthy).length > 30, `runs ${runs(healthy).length}`);
    for (const event of events(healthy)) {
      assert.deepEqual(event.quality.stuckSignals, []);
      assert.equal(event.quality.missingSamples, 0);
      assert.equal(event.quality.outOfRangeSamples, 0);
      assert.ok(event.quality.samples > 10);
    }
    for (const door of doors(healthy)) assert.ok(door.reversals <= 1);
  });

  test('slow doors: openingMs and closingMs go up, doorSpeedMps goes down (factor 0.5: about twice as slow)', () => {
    const slow = doors(simulate({ slowDoors: { enabled: true, factor: 0.5 } }));
    const normal = doors(healthy);
    assert.ok(slow.length > 20);
    const ratio = (key: 'openingMs' | 'closingMs' | 'doorSpeedMps') => mean(slow.map((d) => d[key])) / mean(normal.map((d) => d[key]));
    assert.ok(ratio('openingMs') > 1.9 && ratio('openingMs') < 2.1, `openingMs x${ratio('openingMs')}`);
    assert.ok(ratio('closingMs') > 1.8, `closingMs x${ratio('closingMs')}`);
    assert.ok(ratio('doorSpeedMps') > 0.45 && ratio('doorSpeedMps') < 0.55, `doorSpeedMps x${ratio('doorSpeedMps')}`);
  });

  test('repeated reversals: every door cycle re-opens at least twice (3 per cycle configured), without the light curtain', () => {
    const cycles = doors(simulate({ repeatedReversals: { enabled: true, perCycle: 3 } }));
    assert.ok(cycles.length > 10);
    for (const cycle of cycles) assert.ok(cycle.reversals >= 3, `reversals ${cycle.reversals}`);
    assert.ok(mean(cycles.map((c) => c.reversals)) > mean(cycles.map((c) => c.obstructions)), 'reversals outnumber obstructions');
  });

  test('leveling drift: |levelingErrorMm| grows run after run, up to the cap', () => {
    const drifting = runs(simulate({ levelingDrift: { enabled: true, mmPerRun: 3, maxMm: 60 } }));
    assert.ok(drifting.length > 30);
    const errors = drifting.map((r) => r.levelingErrorMm);
    assert.ok(mean(errors.slice(0, 5).map(Math.abs)) < 15, `first runs ${errors.slice(0, 5)}`);
    assert.ok(mean(errors.slice(-5).map(Math.abs)) > 55, `last runs ${errors.slice(-5)}`);
    // Grows: each of the first 15 runs stops further above the landing than the run two before it.
    for (let i = 2; i < 15; i += 1) assert.ok(errors[i] > errors[i - 2], `run ${i}: ${errors[i]} after ${errors[i - 2]}`);
    for (const error of errors) assert.ok(error <= 60 + DEFAULT_SIMULATOR_CONFIG.levelingErrorMm + 0.5, `${error} over the cap`);
    // The healthy car with the same seed stays within +-3 mm.
    for (const run of runs(healthy)) assert.ok(Math.abs(run.levelingErrorMm) <= 3.5);
  });

  test('stuck sensor: quality.stuckSignals names the frozen signal in every run after it froze', () => {
    const stuck = runs(simulate({ stuckSensor: { enabled: true, signal: 'currentA', afterMs: 60_000 } }));
    const afterFreeze = stuck.filter((_, i) => i >= 5);
    assert.ok(afterFreeze.length > 20);
    for (const run of afterFreeze) assert.deepEqual(run.quality.stuckSignals, ['currentA']);
    assert.deepEqual(stuck[0].quality.stuckSignals, [], 'not stuck before afterMs');
    const vibration = runs(simulate({ stuckSensor: { enabled: true, signal: 'vibrationMmS', afterMs: 0 } }));
    for (const run of vibration) assert.deepEqual(run.quality.stuckSignals, ['vibrationMmS']);
  });

  test('dropouts: quality.missingSamples > 0, and the events are still derived (runs between floors, same count)', () => {
    const records = simulate({ dropouts: { enabled: true, fraction: 0.05 } });
    for (const event of events(records)) assert.ok(event.quality.missingSamples > 0, JSON.stringify(event.quality));
    assert.ok(Math.abs(runs(records).length - runs(healthy).length) <= 1);
    // 7 readings per sample, 5 % each.
    const q = events(records).map((e) => e.quality);
    const share = q.reduce((a, b) => a + b.missingSamples, 0) / q.reduce((a, b) => a + b.samples * 7, 0);
    assert.ok(share > 0.04 && share < 0.06, `missing share ${share}`);
  });

  test('out-of-range: quality.outOfRangeSamples > 0, the events stay valid, and the raw samples out of range fail their contract', () => {
    const records = simulate({ outOfRange: { enabled: true, fraction: 0.01 } }, {}, { rawSamples: true });
    const derived = events(records);
    assert.ok(derived.filter((e) => e.quality.outOfRangeSamples > 0).length > derived.length * 0.8);
    const now = START + TWENTY_MINUTES;
    for (const record of records.filter((r) => r.stream !== STREAM_RAW_SAMPLE)) {
      const checked = checkRecord(record.stream, record.data, DEFAULT_DOMAIN_LIMITS, now);
      assert.ok(checked.ok, checked.ok ? '' : checked.reason);
    }
    // Out-of-range readings are left out: the runs look like the healthy ones.
    assert.deepEqual(runs(records).map((r) => [r.fromFloor, r.toFloor]), runs(healthy).map((r) => [r.fromFloor, r.toFloor]));
    const raw = records.filter((r) => r.stream === STREAM_RAW_SAMPLE);
    const failing = raw.filter((r) => !checkRecord(STREAM_RAW_SAMPLE, r.data, DEFAULT_DOMAIN_LIMITS, now).ok);
    assert.ok(failing.length > raw.length * 0.03 && failing.length < raw.length * 0.1, `${failing.length} of ${raw.length} raw samples fail`);
    const reason = checkRecord(STREAM_RAW_SAMPLE, failing[0].data, DEFAULT_DOMAIN_LIMITS, now);
    assert.ok(!reason.ok && /must be (<=|>=)/.test(reason.reason), JSON.stringify(reason));
  });

  test('noise: peakJerkMps3 is far higher than without noise (S-curve: 1.2 m/s^3 limit)', () => {
    const noisy = runs(simulate({ noise: { enabled: true, level: 1 } }));
    const clean = runs(healthy);
    assert.equal(noisy.length, clean.length);
    for (const run of clean) assert.ok(run.peakJerkMps3 <= 1.3);
    assert.ok(mean(noisy.map((r) => r.peakJerkMps3)) > 10 * mean(clean.map((r) => r.peakJerkMps3)), `noisy ${mean(noisy.map((r) => r.peakJerkMps3))}`);
    // Noise does not invent or lose trips.
    assert.deepEqual(noisy.map((r) => [r.fromFloor, r.toFloor]), clean.map((r) => [r.fromFloor, r.toFloor]));
  });

  test('motor records keep coming through every fault (the latest valid readings)', () => {
    const all = simulate({ dropouts: { enabled: true, fraction: 0.2 }, outOfRange: { enabled: true, fraction: 0.05 }, noise: { enabled: true, level: 2 } });
    const motor = all.filter((r) => r.stream === STREAM_MOTOR);
    assert.ok(motor.length >= TWENTY_MINUTES / 1000 - 2, `${motor.length} motor records`);
    for (const record of motor) assert.ok(checkRecord(STREAM_MOTOR, record.data, DEFAULT_DOMAIN_LIMITS, START + TWENTY_MINUTES).ok, JSON.stringify(record.data));
  });
});
