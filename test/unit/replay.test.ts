import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_DETECTOR_CONFIG, Deriver, DerivedSource, type SampledRecord } from '../../components/sensor-acquisition/derive';
import { formatFromPath, ReplaySignals, type ReplayFormat, type ReplayOptions } from '../../components/sensor-acquisition/replay';
import { STREAM_DOOR_CYCLE, STREAM_MOTOR, STREAM_RUN } from '../../components/shared/records';

const FIXTURES = join(__dirname, '..', '..', '..', 'test', 'fixtures');
const NDJSON = readFileSync(join(FIXTURES, 'replay-two-runs.ndjson'), 'utf8');
const CSV = readFileSync(join(FIXTURES, 'replay-two-runs.csv'), 'utf8');
const FIRST_T = 1_700_000_000_100;
/** The recording's installation: 4 landings 3 m apart (see test/fixtures/make-replay-fixture.ts). */
const deriver = () => new Deriver({ landingHeightsM: [0, 3, 6, 9], doorWidthM: 0.9, metricsIntervalMs: 1000, rawSamples: false, detector: DEFAULT_DETECTOR_CONFIG });

function replay(text: string, format: ReplayFormat, options: ReplayOptions = {}): { source: DerivedSource; signals: ReplaySignals } {
  const signals = new ReplaySignals(text, format, { origin: `fixture.${format}`, ...options });
  return { source: new DerivedSource(signals, deriver()), signals };
}

const events = (records: SampledRecord[]) => records.filter((r) => r.stream !== STREAM_MOTOR);

describe('replay of the committed two-run recording', () => {
  for (const [format, text] of [['ndjson', NDJSON], ['csv', CSV]] as const) {
    test(`${format}: exactly two runs (0 -> 1, 1 -> 2) and two door cycles (floor 1 without, floor 2 with one reversal)`, () => {
      const { source, signals } = replay(text, format);
      const records = source.advance(60_000);
      assert.deepEqual(
        events(records).map((r) => r.stream),
        [STREAM_RUN, STREAM_DOOR_CYCLE, STREAM_RUN, STREAM_DOOR_CYCLE],
      );
      const [run1, door1, run2, door2] = events(records).map((r) => r.data);
      assert.deepEqual([run1.fromFloor, run1.toFloor, run1.direction], [0, 1, 'up']);
      assert.deepEqual([run2.fromFloor, run2.toFloor, run2.direction], [1, 2, 'up']);
      assert.equal(run1.startTime, 1_700_000_001_100);
      assert.equal(run1.stopTime, 1_700_000_005_000);
      assert.equal(run1.levelingErrorMm, 1.176);
      assert.equal(run2.levelingErrorMm, -2.639);
      assert.deepEqual([door1.floor, door1.reversals, door1.obstructions, door1.openingMs, door1.totalMs], [1, 0, 0, 2400, 7800]);
      assert.deepEqual([door2.floor, door2.reversals, door2.obstructions, door2.openingMs, door2.totalMs], [2, 1, 2, 2400, 10600]);
      assert.equal(records.filter((r) => r.stream === STREAM_MOTOR).length, 29);
      assert.equal(signals.metrics().replayedSamples, 291);
      assert.equal(signals.done, true);
      assert.deepEqual(source.takeRejected(), []);
    });
  }

  test('NDJSON and CSV of the same data give identical records', () => {
    assert.deepEqual(replay(NDJSON, 'ndjson').source.advance(60_000), replay(CSV, 'csv').source.advance(60_000));
  });

  test('the format follows the file extension; fromFile reads the file', () => {
    assert.equal(formatFromPath('a/b.ndjson'), 'ndjson');
    assert.equal(formatFromPath('b.CSV'), 'csv');
    assert.throws(() => formatFromPath('b.txt'), /source.format/);
    const signals = ReplaySignals.fromFile(join(FIXTURES, 'replay-two-runs.csv'));
    assert.equal(signals.format, 'csv');
    assert.equal(signals.read(60_000).samples.length, 291);
  });
});

describe('replay pacing and time mapping', () => {
  test('timeScale 10 delivers the 29 s recording in 2.9 s of real time (advance steps, no sleeping)', () => {
    const { signals } = replay(NDJSON, 'ndjson', { timeScale: 10 });
    assert.equal(signals.read(1000).samples.length, 101); // recorded offsets 0 .. 10 000 ms
    assert.equal(signals.read(1000).samples.length, 100);
    assert.equal(signals.read(899).samples.length, 89);
    assert.equal(signals.done, false);
    assert.equal(signals.read(1).samples.length, 1);
    assert.equal(signals.done, true);
    assert.equal(signals.read(10_000).samples.length, 0);
    const slow = replay(NDJSON, 'ndjson', { timeScale: 1 }).signals;
    assert.equal(slow.read(2900).samples.length, 30);
  });

  test('recorded times are kept by default; rebase moves the first sample to startTimeMs and keeps the spacing', () => {
    const kept = replay(NDJSON, 'ndjson').signals.read(60_000).samples;
    assert.equal(kept[0].t, FIRST_T);
    const start = 1_600_000_000_000;
    const { source, signals } = replay(NDJSON, 'ndjson', { rebase: true, startTimeMs: start });
    const rebased = signals.read(60_000).samples;
    assert.equal(rebased[0].t, start);
    assert.deepEqual(rebased.map((s) => s.t - start), kept.map((s) => s.t - FIRST_T));
    const run = events(replay(NDJSON, 'ndjson', { rebase: true, startTimeMs: start }).source.advance(60_000))[0].data;
    assert.equal(run.startTime, 1_700_000_001_100 - FIRST_T + start);
    void source;
  });

  test('rebase without a start time: at timeScale 10 the last sample is stamped the moment it plays, none is ever in the future', () => {
    let now = 1_750_000_000_000;
    const { signals } = replay(NDJSON, 'ndjson', { rebase: true, timeScale: 10, now: () => now });
    const played: number[] = [];
    for (let step = 0; step < 40; step += 1) {
      now += 100;
      for (const sample of signals.read(100).samples) {
        assert.ok(sample.t <= now, `sample at ${sample.t} played at ${now}`);
        played.push(sample.t);
      }
    }
    assert.equal(played.length, 291);
    assert.equal(played[played.length - 1], 1_750_000_000_000 + 2900);
    assert.equal(played[0], 1_750_000_000_000 + 2900 - 29_000);
  });

  test('loop: the recording plays again, shifted by its span plus one interval, so time keeps going forward', () => {
    const { source, signals } = replay(NDJSON, 'ndjson', { loop: true });
    const records = source.advance(2 * 29_100 - 50); // recorded span 29 000 ms + one 100 ms interval per pass
    assert.equal(events(records).filter((r) => r.stream === STREAM_RUN).length, 4);
    assert.equal(signals.done, false);
    assert.equal(signals.metrics().replayedSamples, 2 * 291);
    const runs = events(records).filter((r) => r.stream === STREAM_RUN).map((r) => r.data.startTime as number);
    assert.equal(runs[2] - runs[0], 29_100);
  });
});

describe('replay of bad input: each bad line is reported with its number and reason, the rest plays on', () => {
  test('NDJSON: not JSON, a missing field, a wrong type, unknown field, time going back; events unchanged', () => {
    const lines = NDJSON.split('\n');
    const broken = [...lines];
    broken.splice(2, 0, '{"t": 1700000000250, "positionM": 0'); // becomes line 3
    broken.splice(4, 0, JSON.stringify({ t: 1_700_000_000_260, positionM: 0, velocityMps: 0, doorOpening: 0, obstructed: false, currentA: 0.6, temperatureC: 35 })); // line 5
    broken.splice(6, 0, JSON.stringify({ ...JSON.parse(lines[4]), t: 1_700_000_000_450, currentA: 'high' })); // line 7
    broken.splice(8, 0, JSON.stringify({ ...JSON.parse(lines[4]), t: 1_700_000_000_460, humidity: 3 })); // line 9
    broken.splice(10, 0, JSON.stringify({ ...JSON.parse(lines[4]), t: 1_700_000_000_100 })); // line 11
    const { source } = replay(broken.join('\n'), 'ndjson');
    const records = source.advance(60_000);
    const rejected = source.takeRejected();
    assert.deepEqual(rejected.map((r) => r.line), [3, 5, 7, 9, 11]);
    assert.match(rejected[0].reason, /not JSON/);
    assert.match(rejected[1].reason, /missing field vibrationMmS/);
    assert.match(rejected[2].reason, /currentA is "high"/);
    assert.match(rejected[3].reason, /unknown field "humidity"/);
    assert.match(rejected[4].reason, /not after the previous sample/);
    assert.equal(rejected[0].text, '{"t": 1700000000250, "positionM": 0');
    assert.equal(rejected[0].origin, 'fixture.ndjson');
    assert.deepEqual(events(records), events(replay(NDJSON, 'ndjson').source.advance(60_000)));
  });

  test('CSV: a short row and a cell that is not a number are rejected with line numbers (header = line 1)', () => {
    const lines = CSV.split('\n');
    lines.splice(3, 0, '1700000000250,0,0'); // line 4
    lines.splice(6, 0, lines[5].replace(/,0\.6,/, ',lots,')); // line 7, same t as line 6
    const { source } = replay(lines.join('\n'), 'csv');
    const records = source.advance(60_000);
    const rejected = source.takeRejected();
    assert.deepEqual(rejected.map((r) => [r.line, r.reason]), [
      [4, '3 cells, the header has 8'],
      [7, 'currentA "lots" is not a number or empty'],
    ]);
    assert.equal(events(records).length, 4);
  });

  test('CSV: an empty cell is a dropout (null), counted as missing in the events', () => {
    const lines = CSV.split('\n').map((line, i) => (i > 0 && i % 10 === 0 ? line.replace(/,[^,]*$/, ',') : line));
    const records = replay(lines.join('\n'), 'csv').source.advance(60_000);
    const run = events(records)[0].data as { quality: { missingSamples: number } };
    assert.ok(run.quality.missingSamples >= 3, JSON.stringify(run.quality));
  });

  test('a CSV header that cannot be read is a clear error at start, naming the column', () => {
    assert.throws(() => new ReplaySignals('t,positionM,speed\n1,2,3\n', 'csv', { origin: 'x.csv' }), /x\.csv: line 1: CSV header has unknown column "speed"/);
    assert.throws(() => new ReplaySignals('t,positionM\n', 'csv'), /lacks column velocityMps/);
    assert.throws(() => ReplaySignals.fromFile(join(FIXTURES, 'no-such-file.ndjson')), /ENOENT/);
  });
});
