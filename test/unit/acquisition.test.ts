import { afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Acquisition, type AcquisitionConfig } from '../../components/sensor-acquisition/acquisition';
import { LOSS_JOURNAL_FILE, LOSS_JOURNAL_NOTE } from '../../components/sensor-acquisition/loss-journal';
import { monotonicMs } from '../../components/shared/monotonic';
import { scheduleOffsetMs } from '../../components/shared/schedule';
import type { SampledRecord, SensorSource } from '../../components/sensor-acquisition/simulator';
import { DEFAULT_DETECTOR_CONFIG, Deriver, DerivedSource } from '../../components/sensor-acquisition/derive';
import { ReplaySignals } from '../../components/sensor-acquisition/replay';
import { StreamStore } from '../../components/shared/store';
import { captureLogger } from '../helpers/capture-logger';


/** A sensor source that returns one scripted batch per advance() call, then nothing. */
class ScriptedSource implements SensorSource {
  readonly elapsed: number[] = [];
  constructor(private readonly batches: SampledRecord[][]) {}
  advance(realElapsedMs: number): SampledRecord[] {
    this.elapsed.push(realElapsedMs);
    return this.batches.shift() ?? [];
  }
}

/** A source that produces one motor record per call, forever. */
class EndlessSource implements SensorSource {
  calls = 0;
  advance(): SampledRecord[] {
    this.calls += 1;
    return [motor(this.calls)];
  }
}

/** A valid motor record (motor.v1); currentA carries i, so a test can tell records apart. */
function motor(i: number): SampledRecord {
  return { stream: 'motor', priority: 1, data: { carState: 'idle', currentA: i, temperatureC: 31.5, vibrationMmS: 0.12 } };
}

const QUALITY = { samples: 140, missingSamples: 0, outOfRangeSamples: 0, stuckSignals: [] };

/** A valid run record (run.v1); toFloor carries i. */
const RUNS_START = Date.now() - 60_000;

function run(i: number): SampledRecord {
  const startTime = RUNS_START;
  return {
    stream: 'run',
    priority: 2,
    data: {
      fromFloor: 0,
      toFloor: i,
      direction: 'up',
      startTime,
      stopTime: startTime + 7000,
      durationMs: 7000,
      distanceM: 3.2 * i,
      peakSpeedMps: 1.6,
      peakAccelMps2: 0.8,
      peakJerkMps3: 1.2,
      levelingErrorMm: 1.5,
      quality: QUALITY,
    },
  };
}

const CONFIG: AcquisitionConfig = { sampleIntervalMs: 100, jitterFraction: 0.1, maxBatchRecords: 200, maxPendingRecords: 1000 };

const opened: StreamStore[] = [];
async function openStore(): Promise<StreamStore> {
  const path = join(mkdtempSync(join(tmpdir(), 'acquisition-test-')), 'buffer', 'store.db');
  const store = await StreamStore.open(path, { owner: true, logger: captureLogger().logger });
  opened.push(store);
  return store;
}

afterEach(async () => {
  while (opened.length > 0) await opened.pop()!.close();
});

const ALL = Number.MAX_SAFE_INTEGER;

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

describe('Acquisition: storing valid records', () => {
  test('valid records are appended with seq 1..n per stream, in sampling order, with their priority and data', async () => {
    const store = await openStore();
    const source = new ScriptedSource([[motor(1), run(1), motor(2)], [motor(3), run(2)]]);
    const acquisition = new Acquisition(source, store, CONFIG, captureLogger().logger);
    acquisition.sampleOnce();
    acquisition.sampleOnce();
    await acquisition.flush();
    const motors = await store.readPending('motor', 100, ALL);
    const runs = await store.readPending('run', 100, ALL);
    assert.deepEqual(motors.map((r) => [r.seq, r.data.currentA, r.priority]), [[1, 1, 1], [2, 2, 1], [3, 3, 1]]);
    assert.deepEqual(runs.map((r) => [r.seq, r.data.toFloor, r.priority]), [[1, 1, 2], [2, 2, 2]]);
    assert.deepEqual(runs[1].data, run(2).data);
    assert.deepEqual(await store.streams(), ['motor', 'run']);
  });

  test('each record is stamped with the wall-clock and monotonic time at which it was sampled', async () => {
    const store = await openStore();
    const acquisition = new Acquisition(new ScriptedSource([[motor(1), motor(2)]]), store, CONFIG, captureLogger().logger);
    const wallBefore = Date.now();
    const monoBefore = monotonicMs();
    acquisition.sampleOnce();
    const monoAfter = monotonicMs();
    const wallAfter = Date.now();
    await delay(20); // stamps must come from sampling, not from the later flush
    await acquisition.flush();
    const stored = await store.readPending('motor', 100, ALL);
    assert.equal(stored.length, 2);
    for (const record of stored) {
      assert.ok(record.time >= wallBefore && record.time <= wallAfter, `time ${record.time} not in [${wallBefore}, ${wallAfter}]`);
      assert.ok(record.mono >= monoBefore && record.mono <= monoAfter, `mono ${record.mono} not in [${monoBefore}, ${monoAfter}]`);
    }
    assert.ok(stored[1].mono >= stored[0].mono);
  });

  test('metrics count sampled and appended records, batches and the last append time', async () => {
    const store = await openStore();
    const acquisition = new Acquisition(new ScriptedSource([[motor(1), motor(2), motor(3), motor(4), motor(5)]]), store, { ...CONFIG, maxBatchRecords: 2 }, captureLogger().logger);
    acquisition.sampleOnce();
    await acquisition.flush();
    const m = acquisition.metrics;
    assert.equal(m.sampled, 5);
    assert.equal(m.appended, 5);
    assert.equal(m.appendBatches, 3, 'batches of at most maxBatchRecords: 2 + 2 + 1');
    assert.equal(m.pending, 0);
    assert.equal(m.appendFailures, 0);
    assert.ok(m.lastAppendAt !== null && !Number.isNaN(Date.parse(m.lastAppendAt)), String(m.lastAppendAt));
  });

  test('the source is told how much real time passed since the previous sample', async () => {
    const store = await openStore();
    const source = new ScriptedSource([]);
    const acquisition = new Acquisition(source, store, CONFIG, captureLogger().logger);
    acquisition.sampleOnce();
    await delay(50);
    acquisition.sampleOnce();
    assert.equal(source.elapsed.length, 2);
    assert.ok(source.elapsed[1] >= 45 && source.elapsed[1] < 1000, `elapsed ${source.elapsed[1]}`);
  });

  test('a tick that samples more than maxBatchRecords records is appended in several transactions, all of it', async () => {
    const store = await openStore();
    const acquisition = new Acquisition(new ScriptedSource([[motor(1), motor(2), motor(3), motor(4), motor(5)]]), store, { ...CONFIG, maxBatchRecords: 2 }, captureLogger().logger);
    acquisition.sampleOnce();
    await acquisition.flush();
    assert.equal(acquisition.metrics.appended, 5);
    assert.equal(acquisition.metrics.appendBatches, 3);
    assert.equal((await store.readPending('motor', 100, ALL)).length, 5);
  });
});

describe('Acquisition: invalid records', () => {
  test('a record with NaN, Infinity, null or a missing field is quarantined with its reason, counted per stream, and the valid ones are stored', async () => {
    const store = await openStore();
    const { logger, entries } = captureLogger();
    const bad: SampledRecord[] = [
      { stream: 'motor', priority: 1, data: { ...motor(9).data, currentA: Number.NaN } },
      { stream: 'motor', priority: 1, data: { ...motor(9).data, temperatureC: Number.POSITIVE_INFINITY } },
      { stream: 'run', priority: 2, data: { ...run(4).data, durationMs: null } },
      { stream: 'run', priority: 2, data: { ...run(4).data, durationMs: undefined } },
    ];
    const acquisition = new Acquisition(new ScriptedSource([[motor(1), ...bad, motor(2)]]), store, CONFIG, logger);
    acquisition.sampleOnce();
    await acquisition.flush();
    assert.deepEqual(acquisition.metrics.invalid, { motor: 2, run: 2 });
    assert.equal(acquisition.metrics.quarantined, 4);
    assert.equal(acquisition.metrics.sampled, 6);
    assert.equal(acquisition.metrics.appended, 6, 'every sampled record is stored: two in motor, four in quarantine');
    assert.deepEqual((await store.readPending('motor', 100, ALL)).map((r) => [r.seq, r.data.currentA]), [[1, 1], [2, 2]]);
    assert.deepEqual(await store.streams(), ['motor', 'quarantine'], 'no run record reached the run stream');
    const quarantined = await store.readPending('quarantine', 100, ALL);
    assert.deepEqual(
      quarantined.map((r) => [r.data.stream, r.data.detectedBy, r.priority]),
      [['motor', 'acquisition', 2], ['motor', 'acquisition', 2], ['run', 'acquisition', 2], ['run', 'acquisition', 2]],
    );
    assert.match(String(quarantined[0].data.reason), /motor: \/currentA is NaN/);
    assert.equal((quarantined[0].data.value as Record<string, unknown>).currentA, 'NaN', 'the bad value travels as text');
    assert.match(String(quarantined[1].data.reason), /\/temperatureC is Infinity/);
    assert.match(String(quarantined[2].data.reason), /\/durationMs must be number/);
    assert.match(String(quarantined[3].data.reason), /must have required property 'durationMs'/);
    assert.equal(entries.filter((e) => e.level === 'warn' && e.message === 'sampled record failed its data contract; quarantined').length, 4);
  });

  test('impossible values are quarantined: a negative duration, a speed above 1.5 x rated, a time far in the future, wrong units, an unknown stream', async () => {
    const store = await openStore();
    const now = Date.now();
    const bad: SampledRecord[] = [
      { stream: 'run', priority: 2, data: { ...run(2).data, startTime: now - 1000, stopTime: now - 5000 } },
      { stream: 'run', priority: 2, data: { ...run(2).data, peakSpeedMps: 2.41 } },
      { stream: 'run', priority: 2, data: { ...run(2).data, startTime: now + 3_600_000, stopTime: now + 3_607_000 } },
      // Kelvin where Celsius is due.
      { stream: 'motor', priority: 1, data: { ...motor(1).data, temperatureC: 310.2 } },
      { stream: 'Bad Stream', priority: 1, data: { x: 1 } },
    ];
    const acquisition = new Acquisition(new ScriptedSource([[...bad, run(3)]]), store, CONFIG, captureLogger().logger, Math.random, undefined, { ratedSpeedMps: 1.6, maxFutureMs: 60_000 });
    acquisition.sampleOnce();
    await acquisition.flush();
    const reasons = (await store.readPending('quarantine', 100, ALL)).map((r) => String(r.data.reason));
    assert.equal(reasons.length, 5);
    assert.match(reasons[0], /\/stopTime is before \/startTime \(a negative duration\)/);
    assert.match(reasons[1], /\/peakSpeedMps 2\.41 m\/s is above 1\.5 x the rated speed of 1\.6 m\/s/);
    assert.match(reasons[2], /\/stopTime .* is more than 60000 ms ahead of the device clock/);
    assert.match(reasons[3], /\/temperatureC must be <= 200/);
    assert.match(reasons[4], /stream "Bad Stream" has no data contract/);
    assert.deepEqual(acquisition.metrics.invalid, { run: 3, motor: 1, 'Bad Stream': 1 });
    assert.deepEqual((await store.readPending('run', 100, ALL)).map((r) => r.data.toFloor), [3], 'the valid run still got through');
  });
});

describe('Acquisition: stop()', () => {
  test('stop() writes everything sampled so far and leaves pending 0; a later flush() changes nothing', async () => {
    const store = await openStore();
    const acquisition = new Acquisition(new ScriptedSource([[motor(1), run(1), motor(2)]]), store, CONFIG, captureLogger().logger);
    acquisition.sampleOnce();
    assert.equal(acquisition.metrics.pending, 3);
    await acquisition.stop();
    assert.equal(acquisition.metrics.pending, 0);
    assert.equal(acquisition.metrics.appended, 3);
    await acquisition.flush();
    assert.equal(acquisition.metrics.appended, 3);
    assert.equal(acquisition.metrics.appendBatches, 1);
    assert.equal((await store.readPending('motor', 100, ALL)).length, 2);
    assert.equal((await store.readPending('run', 100, ALL)).length, 1);
  });

  test('start() samples on its schedule and flushes on its interval; stop() ends sampling', async () => {
    const store = await openStore();
    const source = new EndlessSource();
    const acquisition = new Acquisition(source, store, { ...CONFIG, sampleIntervalMs: 20, jitterFraction: 0.1 }, captureLogger().logger);
    acquisition.start(0);
    for (let i = 0; i < 300 && acquisition.metrics.appended < 3; i += 1) await delay(10);
    assert.ok(acquisition.metrics.appended >= 3, `appended ${acquisition.metrics.appended} without an explicit flush`);
    await acquisition.stop();
    const callsAtStop = source.calls;
    await delay(100);
    assert.equal(source.calls, callsAtStop, 'no sampling after stop()');
    assert.equal(acquisition.metrics.pending, 0);
    const stored = await store.readPending('motor', 10_000, ALL);
    assert.equal(stored.length, callsAtStop);
    assert.deepEqual(stored.map((r) => r.seq), stored.map((_, i) => i + 1));
  });

  test('stop() with records the store cannot take logs an error with the pending count', async () => {
    const store = await openStore();
    const { logger, entries } = captureLogger();
    const acquisition = new Acquisition(new ScriptedSource([[motor(1), motor(2)]]), store, CONFIG, logger);
    acquisition.sampleOnce();
    await store.close();
    await acquisition.stop();
    const error = entries.find((e) => e.level === 'error' && e.message === 'stopping with records that could not be stored');
    assert.ok(error, JSON.stringify(entries));
    assert.equal(error.pending, 2);
  });
});

describe('Acquisition: store unavailable', () => {
  test('a closed store makes the flush fail: appendFailures counts it and the records stay pending', async () => {
    const store = await openStore();
    const acquisition = new Acquisition(new ScriptedSource([[motor(1), motor(2)]]), store, CONFIG, captureLogger().logger);
    acquisition.sampleOnce();
    await store.close();
    await acquisition.flush();
    assert.equal(acquisition.metrics.appendFailures, 1);
    assert.equal(acquisition.metrics.appended, 0);
    assert.equal(acquisition.metrics.pending, 2);
    await acquisition.flush();
    assert.equal(acquisition.metrics.appendFailures, 2);
  });

  test('beyond maxPendingRecords the oldest pending record is dropped and counted in droppedOverflow', async () => {
    const store = await openStore();
    const { logger, entries } = captureLogger();
    const acquisition = new Acquisition(new ScriptedSource([[motor(1), motor(2), motor(3)], [motor(4), motor(5)]]), store, { ...CONFIG, maxPendingRecords: 3 }, logger);
    await store.close();
    acquisition.sampleOnce();
    await acquisition.flush();
    acquisition.sampleOnce();
    await acquisition.flush();
    assert.equal(acquisition.metrics.appendFailures, 2);
    assert.equal(acquisition.metrics.pending, 3, 'pending stays at the bound');
    assert.equal(acquisition.metrics.droppedOverflow, 2);
    assert.equal(acquisition.metrics.sampled, 5);
    assert.equal(entries.filter((e) => e.level === 'error' && e.message === 'store unavailable too long; dropping the oldest unstored sample').length, 2);
  });

  test('when the store comes back, the records kept through the outage are stored, the newest maxPendingRecords in order, after the dropped ones recorded as a lost range (acquisition-overflow)', async () => {
    const store = await openStore();
    let available = false;
    const flaky = {
      append: (...args: Parameters<StreamStore['append']>) => (available ? store.append(...args) : Promise.reject(new Error('SQLITE_FULL: database or disk is full'))),
    } as unknown as StreamStore;
    const acquisition = new Acquisition(new ScriptedSource([[motor(1), motor(2), motor(3), motor(4), motor(5)]]), flaky, { ...CONFIG, maxPendingRecords: 3 }, captureLogger().logger);
    acquisition.sampleOnce();
    await acquisition.flush();
    assert.equal(acquisition.metrics.appendFailures, 1);
    available = true;
    await acquisition.flush();
    assert.equal(acquisition.metrics.pending, 0);
    assert.equal(acquisition.metrics.appended, 3);
    assert.equal(acquisition.metrics.droppedOverflow, 2);
    // The two dropped samples were the oldest: they take seqs 1-2, recorded as dropped, and the
    // kept ones follow, so the cloud sees every sample as archived or lost with a reason.
    assert.deepEqual((await store.readPending('motor', 100, ALL)).map((r) => [r.seq, r.data.currentA]), [[3, 3], [4, 4], [5, 5]]);
    assert.deepEqual(
      (await store.unreportedDrops(10)).map((d) => [d.stream, d.reason, d.seqFrom, d.seqTo, d.count]),
      [['motor', 'acquisition-overflow', 1, 2, 2]],
    );
    const motorStats = (await store.stats()).streams.find((st) => st.stream === 'motor');
    assert.equal(motorStats?.appended, 5, 'every sampled record has a seq');
    assert.equal(motorStats?.drops['acquisition-overflow'], 2);
    const backfill = await store.requeueRange('motor', store.epoch, 1, 5);
    assert.deepEqual(backfill.missing, [{ from: 1, to: 2, reason: 'acquisition-overflow' }], 'a backfill for them is answered with the reason');
    assert.equal(backfill.requeued, 3);
  });
});

describe('Acquisition: the loss journal (samples held in memory when a process ends)', () => {
  /** The store file of `store`, opened again as the next process would. */
  async function reopen(store: StreamStore): Promise<StreamStore> {
    const next = await StreamStore.open(store.path, { owner: true, logger: captureLogger().logger });
    opened.push(next);
    return next;
  }
  const journalOf = (store: StreamStore) => join(dirname(store.path), LOSS_JOURNAL_FILE);
  /** The real store, whose appends are refused (as by a lock) until the test lets some through. */
  function refusing(store: StreamStore): { flaky: StreamStore; letThrough: (appends: number) => void } {
    let left = 0;
    const flaky = {
      epoch: store.epoch,
      append: (...args: Parameters<StreamStore['append']>) => (left-- > 0 ? store.append(...args) : Promise.reject(new Error('SQLITE_BUSY: database is locked'))),
      note: (key: string) => store.note(key),
    } as unknown as StreamStore;
    return { flaky, letThrough: (appends) => (left = appends) };
  }
  const drops = async (store: StreamStore) => (await store.unreportedDrops(10)).map((d) => [d.stream, d.reason, d.seqFrom, d.seqTo, d.count]);

  test('a process that ends while the store refuses appends leaves a journal; the next one records those samples as lost, before its own', async () => {
    const first = await openStore();
    const journal = journalOf(first);
    const before = new Acquisition(new ScriptedSource([[motor(1), motor(2), run(1)], [motor(3)]]), first, CONFIG, captureLogger().logger);
    await before.recoverLossJournal(journal, 60_000); // rewritten at most once a minute here, so the next check holds on a slow machine
    assert.equal(existsSync(journal), false, 'no journal while nothing is held');
    await first.close(); // the store refuses every append from now on
    before.sampleOnce();
    await before.flush();
    assert.deepEqual(JSON.parse(readFileSync(journal, 'utf8')).remaining, { motor: 2, run: 1 });
    before.sampleOnce();
    await before.flush(); // within the rewrite interval: not rewritten
    assert.deepEqual(JSON.parse(readFileSync(journal, 'utf8')).remaining, { motor: 2, run: 1 });
    // The process ends here, SIGKILLed: no stop(), the four samples only in its memory.

    const store = await reopen(first);
    const { logger, entries } = captureLogger();
    const after = new Acquisition(new ScriptedSource([[motor(10)]]), store, CONFIG, logger);
    await after.recoverLossJournal(journal);
    assert.equal(after.metrics.lostByPreviousProcess, 3, 'what the journal named: the sample after its last write is beyond it');
    assert.ok(entries.some((e) => e.level === 'error' && e.message.startsWith('samples held in memory by the previous process were lost')));
    after.sampleOnce();
    await after.flush();
    assert.deepEqual(await drops(store), [
      ['motor', 'acquisition-overflow', 1, 2, 2],
      ['run', 'acquisition-overflow', 1, 1, 1],
    ]);
    assert.deepEqual((await store.readPending('motor', 10, ALL)).map((r) => [r.seq, r.data.currentA]), [[3, 10]]);
    assert.equal(existsSync(journal), false, 'recorded, the journal is gone');
  });

  test('a recovery cut short: only what the appends had not stored yet is lost, by the note they kept in the store', async () => {
    const store = await openStore();
    const journal = journalOf(store);
    // Refused, then one batch taken, then refused again.
    const { flaky, letThrough } = refusing(store);
    const before = new Acquisition(new ScriptedSource([[motor(1), motor(2), motor(3), motor(4), motor(5)]]), flaky, { ...CONFIG, maxBatchRecords: 2 }, captureLogger().logger);
    await before.recoverLossJournal(journal, 60_000); // no rewrite within the test: the note must tell
    before.sampleOnce();
    await before.flush();
    assert.deepEqual(JSON.parse(readFileSync(journal, 'utf8')).remaining, { motor: 5 });
    letThrough(1);
    await before.flush();
    assert.equal(before.metrics.appended, 2, 'one batch of two stored, then refused again');
    assert.deepEqual(JSON.parse((await store.note(LOSS_JOURNAL_NOTE))!).remaining, { motor: 3 });
    // Ends here.

    const after = new Acquisition(new ScriptedSource([]), store, CONFIG, captureLogger().logger);
    await after.recoverLossJournal(journal);
    assert.equal(after.metrics.lostByPreviousProcess, 3, 'not 5: two of them are in the store');
    await after.flush();
    assert.deepEqual(await drops(store), [['motor', 'acquisition-overflow', 3, 5, 3]]);
    assert.deepEqual((await store.readPending('motor', 10, ALL)).map((r) => r.seq), [1, 2]);
  });

  test('a journal written after the note (more samples, the store refusing again) is counted whole: the note of another journal says nothing of it', async () => {
    const store = await openStore();
    const journal = journalOf(store);
    const { flaky, letThrough } = refusing(store);
    const before = new Acquisition(new ScriptedSource([[motor(1), motor(2), motor(3), motor(4), motor(5)], [motor(6), motor(7)]]), flaky, { ...CONFIG, maxBatchRecords: 2 }, captureLogger().logger);
    await before.recoverLossJournal(journal, 0); // rewritten at every refusal
    before.sampleOnce();
    await before.flush();
    letThrough(1);
    await before.flush(); // two stored, noted under the first journal; refused again
    assert.deepEqual(JSON.parse((await store.note(LOSS_JOURNAL_NOTE))!).remaining, { motor: 3 });
    before.sampleOnce();
    await before.flush(); // two more samples, refused: a newer journal names all five held
    assert.deepEqual(JSON.parse(readFileSync(journal, 'utf8')).remaining, { motor: 5 });
    // Ends here.

    const after = new Acquisition(new ScriptedSource([]), store, CONFIG, captureLogger().logger);
    await after.recoverLossJournal(journal);
    assert.equal(after.metrics.lostByPreviousProcess, 5, 'the file, not the older journal\'s note');
    await after.flush();
    assert.deepEqual(await drops(store), [['motor', 'acquisition-overflow', 3, 7, 5]]);
  });

  test('after an append that waited out a lock, the samples that came meanwhile are journaled before the next append waits', async () => {
    const store = await openStore();
    const journal = journalOf(store);
    // Each append waits (as for SQLite's busy timeout) and then fails, until the test lets one through.
    const waits: Array<() => void> = [];
    const flaky = {
      epoch: store.epoch,
      append: () => new Promise((_resolve, reject) => waits.push(() => reject(new Error('SQLITE_BUSY: database is locked')))),
      note: (key: string) => store.note(key),
    } as unknown as StreamStore;
    const before = new Acquisition(new ScriptedSource([[motor(1), motor(2)], [motor(3), motor(4), motor(5)]]), flaky, CONFIG, captureLogger().logger);
    await before.recoverLossJournal(journal, 200);
    before.sampleOnce();
    const first = before.flush();
    await delay(20);
    assert.equal(existsSync(journal), false, 'nothing journaled before the first failure');
    await delay(300); // the wait outlasts the rewrite interval
    waits.shift()!();
    await first;
    assert.deepEqual(JSON.parse(readFileSync(journal, 'utf8')).remaining, { motor: 2 });
    before.sampleOnce(); // the samples of the wait, caught up at the next tick
    const second = before.flush();
    await delay(20);
    assert.deepEqual(JSON.parse(readFileSync(journal, 'utf8')).remaining, { motor: 5 }, 'named while the second append waits, not after it');
    waits.shift()!();
    await second;
  });

  test('a journal that cannot be rewritten at start still ends: the append that records its loss notes the old one done', async () => {
    const store = await openStore();
    const journal = journalOf(store);
    writeFileSync(journal, JSON.stringify({ id: 'journal-of-a-dead-process', epoch: store.epoch, remaining: { motor: 4 } }));
    mkdirSync(`${journal}.tmp`); // the rewrite's temporary file cannot be created
    const { logger, entries } = captureLogger();
    const after = new Acquisition(new ScriptedSource([]), store, CONFIG, logger);
    await after.recoverLossJournal(journal);
    assert.equal(after.metrics.lostByPreviousProcess, 4);
    assert.equal(after.metrics.journalWriteFailures, 1);
    assert.ok(entries.some((e) => e.level === 'error' && e.message.startsWith('could not write the loss journal')));
    await after.flush();
    assert.deepEqual(await drops(store), [['motor', 'acquisition-overflow', 1, 4, 4]]);
    assert.equal(existsSync(journal), false);
    const next = new Acquisition(new ScriptedSource([]), store, CONFIG, captureLogger().logger);
    await next.recoverLossJournal(journal);
    assert.equal(next.metrics.lostByPreviousProcess, 0, 'not counted twice');
  });

  test('a damaged or tampered journal is set aside with an error and never reaches the store; sampling goes on', async () => {
    for (const [content, reason] of [
      ['null', /not an object with a string id/],
      ['{"id":"x","remaining":{"motor":1e16}}', /remaining\.motor is not a count/],
      ['{"id":"x","remaining":{"made-up":3}}', /names "made-up", which is not a stream/],
      ['{"id":"x","remaining":[]}', /remaining is not an object/],
      ['{not json', /not JSON/],
    ] as const) {
      const store = await openStore();
      const journal = journalOf(store);
      writeFileSync(journal, content);
      const { logger, entries } = captureLogger();
      const acquisition = new Acquisition(new ScriptedSource([[motor(1)]]), store, CONFIG, logger);
      await acquisition.recoverLossJournal(journal);
      const error = entries.find((e) => e.level === 'error' && e.message.startsWith('loss journal is not valid'));
      assert.ok(error, `${content}: ${JSON.stringify(entries)}`);
      assert.match(String(error.reason), reason);
      assert.equal(existsSync(`${journal}.invalid`), true, 'kept for a person to read');
      assert.equal(acquisition.metrics.lostByPreviousProcess, 0);
      acquisition.sampleOnce();
      await acquisition.flush();
      assert.deepEqual((await store.readPending('motor', 10, ALL)).map((r) => r.seq), [1], `${content}: the store takes samples as before`);
      assert.deepEqual(await drops(store), []);
    }
  });

  test('a recovery that stores everything removes the journal, and the next process records no loss', async () => {
    const store = await openStore();
    const journal = journalOf(store);
    const { flaky, letThrough } = refusing(store);
    const before = new Acquisition(new ScriptedSource([[motor(1), motor(2), motor(3)]]), flaky, { ...CONFIG, maxBatchRecords: 2, maxPendingRecords: 2 }, captureLogger().logger);
    await before.recoverLossJournal(journal);
    before.sampleOnce(); // three samples, room for two: one dropped past maxPendingRecords
    await before.flush();
    assert.deepEqual(JSON.parse(readFileSync(journal, 'utf8')).remaining, { motor: 3 }, 'the dropped one is named too, until it is recorded');
    letThrough(Number.POSITIVE_INFINITY);
    await before.flush();
    assert.equal(existsSync(journal), false);
    assert.deepEqual(await drops(store), [['motor', 'acquisition-overflow', 1, 1, 1]], 'the overflow drop, once');

    const after = new Acquisition(new ScriptedSource([]), store, CONFIG, captureLogger().logger);
    await after.recoverLossJournal(journal);
    assert.equal(after.metrics.lostByPreviousProcess, 0);
  });

  test('stopping with samples the store refused writes the journal at once, for the next process', async () => {
    const first = await openStore();
    const journal = journalOf(first);
    const before = new Acquisition(new ScriptedSource([[motor(1), motor(2)]]), first, CONFIG, captureLogger().logger);
    await before.recoverLossJournal(journal);
    before.sampleOnce();
    await first.close();
    await before.stop();
    assert.deepEqual(JSON.parse(readFileSync(journal, 'utf8')).remaining, { motor: 2 });
    const after = new Acquisition(new ScriptedSource([]), await reopen(first), CONFIG, captureLogger().logger);
    await after.recoverLossJournal(journal);
    assert.equal(after.metrics.lostByPreviousProcess, 2);
  });
});

describe('scheduleOffsetMs', () => {
  test('is the same for the same thing every time', () => {
    assert.equal(scheduleOffsetMs('elevator-0001', 1000), scheduleOffsetMs('elevator-0001', 1000));
  });

  test('is an integer within [0, interval) for many things and intervals', () => {
    for (const interval of [1, 2, 7, 100, 1000, 60_000]) {
      for (let i = 0; i < 200; i += 1) {
        const offset = scheduleOffsetMs(`elevator-${i}`, interval);
        assert.ok(Number.isInteger(offset) && offset >= 0 && offset < interval, `thing ${i}, interval ${interval}: ${offset}`);
      }
    }
  });

  test('a fractional interval is floored, and an interval below 1 gives 0', () => {
    for (let i = 0; i < 50; i += 1) assert.ok(scheduleOffsetMs(`t-${i}`, 10.9) < 10);
    assert.equal(scheduleOffsetMs('elevator-0001', 0.5), 0);
  });

  test('differs for different things, and a fleet spreads across the interval', () => {
    assert.notEqual(scheduleOffsetMs('elevator-0001', 60_000), scheduleOffsetMs('elevator-0002', 60_000));
    const offsets = new Set(Array.from({ length: 200 }, (_, i) => scheduleOffsetMs(`elevator-${String(i).padStart(4, '0')}`, 100)));
    assert.ok(offsets.size >= 60, `only ${offsets.size} distinct offsets out of 100 for 200 things`);
    const buckets = [0, 0, 0, 0];
    for (let i = 0; i < 200; i += 1) buckets[Math.floor(scheduleOffsetMs(`thing-${i}`, 1000) / 250)] += 1;
    for (const count of buckets) assert.ok(count >= 25, `quarter buckets ${buckets.join(', ')}`);
  });
});

describe('Acquisition: input its source rejected', () => {
  test('a malformed line in a replay is quarantined with its origin, line number and reason; the rest of the recording is stored', async () => {
    const store = await openStore();
    const lines = readFileSync(join(__dirname, '..', '..', '..', 'test', 'fixtures', 'replay-two-runs.ndjson'), 'utf8').split('\n');
    lines.splice(10, 0, '{"t": 1700000001050, "positionM": "high"');
    const signals = new ReplaySignals(lines.join('\n'), 'ndjson', { origin: 'broken.ndjson', timeScale: 1e9 });
    const deriver = new Deriver({ landingHeightsM: [0, 3, 6, 9], doorWidthM: 0.9, metricsIntervalMs: 1000, rawSamples: false, detector: DEFAULT_DETECTOR_CONFIG });
    const acquisition = new Acquisition(new DerivedSource(signals, deriver), store, CONFIG, captureLogger().logger);
    acquisition.sampleOnce();
    await acquisition.flush();
    const quarantined = await store.readPending('quarantine', 10, ALL);
    assert.equal(quarantined.length, 1);
    assert.match(String(quarantined[0].data.reason), /^broken\.ndjson: line 11: /);
    assert.equal(quarantined[0].data.stream, '[sensor input]');
    assert.equal((quarantined[0].data.value as { text: string }).text, '{"t": 1700000001050, "positionM": "high"');
    assert.deepEqual(acquisition.metrics.invalid, { '[sensor input]': 1 });
    assert.equal((await store.readPending('run', 10, ALL)).length, 2, 'both runs of the recording still got through');
  });
});
