import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sqlite3 from 'sqlite3';
import winston from 'winston';
import YAML from 'yaml';
import { StreamStore, type AppendInput } from '../../components/shared/store';
import { compileValidator } from '../../components/shared/validation';
import {
  CLOCK_JUMP_TOLERANCE_MS,
  ClockJumpAllowance,
  DEFAULT_BUFFER_CONFIG,
  StreamBuffer,
  type BufferClock,
  type BufferConfig,
  type BufferStats,
} from '../../components/stream-buffer/buffer';
import { streamBufferConfigSchema } from '../../components/stream-buffer/config';
import { captureLogger, type LogEntry } from '../helpers/capture-logger';
import { componentSettings } from '../../components/shared/deployment-hooks';


async function setup(): Promise<{ store: StreamStore; path: string; logger: winston.Logger; entries: LogEntry[] }> {
  const path = join(mkdtempSync(join(tmpdir(), 'buffer-test-')), 'store.db');
  const { logger, entries } = captureLogger();
  const store = await StreamStore.open(path, { owner: true, logger });
  return { store, path, logger, entries };
}

function records(stream: string, priority: number, count: number): AppendInput[] {
  return Array.from({ length: count }, (_, i) => ({ stream, priority, time: 1_700_000_000_000 + i, mono: i, data: { i, pad: 'y'.repeat(100) } }));
}

async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const FAST: BufferConfig = {
  maxStoreBytes: DEFAULT_BUFFER_CONFIG.maxStoreBytes,
  maxRecordAgeSec: 0,
  minFreeDiskBytes: 0,
  retentionIntervalMs: 100,
  checkpointIntervalMs: 100,
  statsIntervalMs: 100,
};

test('the defaults are the documented ones', () => {
  assert.deepEqual(DEFAULT_BUFFER_CONFIG, {
    maxStoreBytes: 256 * 1024 * 1024,
    maxRecordAgeSec: 604800,
    minFreeDiskBytes: 64 * 1024 * 1024,
    retentionIntervalMs: 5000,
    checkpointIntervalMs: 60000,
    statsIntervalMs: 5000,
  });
});

test('a bad interval is refused with the allowed range and the value received', async () => {
  const { store, logger } = await setup();
  try {
    assert.throws(() => new StreamBuffer(store, { ...FAST, statsIntervalMs: 5 }, logger, async () => {}), {
      name: 'RangeError',
      message: 'statsIntervalMs must be between 100 and 3600000 ms, got 5',
    });
    assert.throws(() => new StreamBuffer(store, { ...FAST, maxStoreBytes: 0 }, logger, async () => {}), /maxStoreBytes must be a positive integer, got 0/);
    assert.throws(() => new StreamBuffer(store, { ...FAST, maxRecordAgeSec: -1 }, logger, async () => {}), /maxRecordAgeSec must be an integer >= 0 \(0 disables the age cap\), got -1/);
    assert.throws(() => new StreamBuffer(store, { ...FAST, minFreeDiskBytes: 0.5 }, logger, async () => {}), /minFreeDiskBytes must be an integer >= 0 \(0 disables the disk guard\), got 0.5/);
  } finally {
    await store.close();
  }
});

test('retention drops over the cap, warns per stream and the published stats carry the drops', async () => {
  const { store, logger, entries } = await setup();
  try {
    await store.append([...records('raw', 0, 20), ...records('run', 2, 5)]);
    const runBytes = (await store.stats()).streams.find((s) => s.stream === 'run')!.backlogBytes;
    const published: BufferStats[] = [];
    const buffer = new StreamBuffer(store, { ...FAST, maxStoreBytes: runBytes }, logger, async (stats) => {
      published.push(stats);
    });

    const result = await buffer.runRetentionOnce();
    assert.equal(result.dropped, 20);
    const warning = entries.find((e) => e.level === 'warn' && e.message === 'records dropped by retention');
    assert.equal(warning?.stream, 'raw');
    assert.equal(warning?.reason, 'byte-cap');
    assert.equal(warning?.count, 20);
    assert.deepEqual([warning?.firstSeq, warning?.lastSeq, warning?.ranges], [1, 20, [[1, 20]]]);
    assert.equal(entries.filter((e) => e.level === 'warn').length, 1, 'the events stream lost nothing, so only one warning');

    assert.deepEqual(await buffer.runRetentionOnce(), { dropped: 0, droppedBytes: 0, byReason: {} });

    const stats = await buffer.publishOnce();
    assert.equal(published.length, 1);
    assert.equal(stats.droppedTotal, 20);
    assert.equal(published[0]?.droppedTotal, 20);
    assert.equal(published[0]?.backlogBytes, runBytes);
    assert.deepEqual(published[0]?.streams.find((s) => s.stream === 'raw')?.drops, { 'byte-cap': 20 });
    assert.equal(published[0]?.epoch, store.epoch);
    await buffer.stop();
  } finally {
    await store.close();
  }
});

test('started timers enforce retention and publish stats; a failing publish does not stop them', async () => {
  const { store, logger, entries } = await setup();
  try {
    await store.append(records('raw', 0, 30));
    const published: BufferStats[] = [];
    let calls = 0;
    const buffer = new StreamBuffer(store, { ...FAST, maxStoreBytes: 1000 }, logger, async (stats) => {
      calls += 1;
      if (calls === 1) throw new Error('nucleus busy');
      published.push(stats);
    });
    buffer.start();
    await until(() => published.some((s) => s.droppedTotal > 0));
    await buffer.stop();

    const last = published[published.length - 1]!;
    assert.ok(last.backlogBytes <= 1000, `backlog ${last.backlogBytes} under the cap`);
    assert.equal(last.droppedTotal, 30 - last.backlogRecords);
    const failure = entries.find((e) => e.message === 'stats tick failed');
    assert.equal(failure?.level, 'warn');
    assert.equal(failure?.error, 'nucleus busy');

    const after = calls;
    await new Promise((r) => setTimeout(r, 250));
    assert.equal(calls, after, 'no tick after stop()');
  } finally {
    await store.close();
  }
});

test('stop() waits for a tick in progress and then checkpoints the WAL', async () => {
  const { store, path, logger } = await setup();
  try {
    await store.append(records('motor', 1, 50));
    assert.ok(statSync(`${path}-wal`).size > 0, 'appends went to the WAL');

    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let inTick = false;
    const buffer = new StreamBuffer(store, { ...FAST, retentionIntervalMs: 3_600_000, checkpointIntervalMs: 3_600_000 }, logger, async () => {
      inTick = true;
      await gate;
    });
    buffer.start();
    await until(() => inTick);

    let stopped = false;
    const stopping = buffer.stop().then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(stopped, false, 'stop() is still waiting for the stats tick');
    assert.ok(statSync(`${path}-wal`).size > 0, 'no checkpoint before the tick finished');
    release();
    await stopping;
    assert.equal(statSync(`${path}-wal`).size, 0, 'the final checkpoint truncated the WAL');
  } finally {
    await store.close();
  }
});

test('the recipe\'s DefaultConfiguration validates against the schema and matches the defaults', () => {
  const recipe = YAML.parse(readFileSync(resolve(__dirname, '..', '..', '..', 'recipes', 'com.elevator.StreamBuffer.yaml'), 'utf8')) as {
    ComponentConfiguration: { DefaultConfiguration: Record<string, unknown> };
  };
  const defaults = componentSettings(recipe.ComponentConfiguration.DefaultConfiguration);
  const validate = compileValidator<Record<string, unknown>>(streamBufferConfigSchema);
  const checked = validate(structuredClone(defaults));
  assert.ok(checked.ok, checked.ok ? '' : checked.reason);
  assert.deepEqual(defaults, { ...DEFAULT_BUFFER_CONFIG, heartbeatIntervalMs: 5000 });
  assert.deepEqual(validate({}), { ok: true, value: { ...DEFAULT_BUFFER_CONFIG, heartbeatIntervalMs: 5000 } }, 'schema defaults are the same');
  const negative = validate({ maxRecordAgeSec: -1 });
  assert.equal(negative.ok, false);
  assert.match(negative.ok ? '' : negative.reason, /maxRecordAgeSec must be >= 0/);
  assert.equal(validate({ minFreeDiskBytes: 0, maxRecordAgeSec: 0 }).ok, true, '0 disables either rule');
});

/** A clock a test moves by hand. */
function manualClock(wall: number): BufferClock & { advance(wallMs: number, monoMs: number): void } {
  let mono = 0;
  return {
    wallMs: () => wall,
    monoMs: () => mono,
    advance(wallMs: number, monoMs: number) {
      wall += wallMs;
      mono += monoMs;
    },
  };
}

const DAY_MS = 86_400_000;
const T0 = 1_700_000_000_000;

test('retention applies the age cap by the wall clock and logs the drops of each rule with their exact ranges', async () => {
  const { store, logger, entries } = await setup();
  try {
    const now = T0 + 10 * DAY_MS;
    // run seqs 1..3: 1 and 3 are 8 days old, 2 is fresh; raw 1..5 fresh and over the byte cap.
    await store.append([T0 + 2 * DAY_MS, now, T0 + 2 * DAY_MS].map((time, i) => ({ stream: 'run', priority: 2, time, mono: i, data: { i } })));
    await store.append(records('raw', 0, 5).map((r) => ({ ...r, time: now })));
    const runBytes = (await store.stats()).streams.find((s) => s.stream === 'run')!.backlogBytes;
    const config = { ...FAST, maxRecordAgeSec: 7 * 24 * 3600, maxStoreBytes: runBytes };
    const buffer = new StreamBuffer(store, config, logger, async () => {}, { clock: manualClock(now) });
    const result = await buffer.runRetentionOnce();
    assert.deepEqual(result.byReason, { 'age-cap': 2, 'byte-cap': 5 });
    const warnings = entries.filter((e) => e.message === 'records dropped by retention');
    assert.deepEqual(
      warnings.map((w) => [w.level, w.stream, w.reason, w.count, w.firstSeq, w.lastSeq, w.ranges, w.epoch]),
      [
        ['warn', 'run', 'age-cap', 2, 1, 3, [[1, 1], [3, 3]], store.epoch],
        ['warn', 'raw', 'byte-cap', 5, 1, 5, [[1, 5]], store.epoch],
      ],
    );
    assert.deepEqual(warnings[0]?.limit, { maxRecordAgeSec: 604800 });
    assert.deepEqual(warnings[1]?.limit, { maxStoreBytes: runBytes });
    assert.deepEqual(
      (await store.readPending('run', 10, 0)).map((r) => r.seq),
      [2],
    );
    // 0 disables the age cap.
    await store.append([{ stream: 'run', priority: 2, time: T0, mono: 0, data: {} }]);
    const off = new StreamBuffer(store, { ...config, maxRecordAgeSec: 0, maxStoreBytes: DEFAULT_BUFFER_CONFIG.maxStoreBytes }, logger, async () => {}, {
      clock: manualClock(now),
    });
    assert.equal((await off.runRetentionOnce()).dropped, 0);
  } finally {
    await store.close();
  }
});

test('a forward step measured against a monotonic clock with fractions of a millisecond still lets retention run', async () => {
  const { store, logger, entries } = await setup();
  try {
    const clock = manualClock(T0);
    const buffer = new StreamBuffer(store, { ...FAST, maxRecordAgeSec: 2 * 24 * 3600 }, logger, async () => {}, { clock });
    await buffer.runRetentionOnce();
    // The wall clock steps 3.5 h forward while 1.25 ms pass on the monotonic clock.
    clock.advance(3.5 * 3600_000, 1.25);
    await buffer.runRetentionOnce();
    assert.equal(entries.some((e) => e.message === 'retention tick failed' || e.level === 'error'), false, JSON.stringify(entries.filter((e) => e.level === 'error')));
    assert.ok(entries.some((e) => e.message.startsWith('wall clock jumped forward')));
  } finally {
    await store.close();
  }
});

test('a forward step of the wall clock does not age records early; the allowance ends after one cap length', async () => {
  const { store, logger, entries } = await setup();
  try {
    const clock = manualClock(T0);
    const config = { ...FAST, maxRecordAgeSec: 2 * 24 * 3600 };
    const buffer = new StreamBuffer(store, config, logger, async () => {}, { clock });
    // seq 1: sampled a day before the step, by the old clock.
    await store.append([{ stream: 'run', priority: 2, time: T0 - DAY_MS, mono: 0, data: {} }]);
    assert.equal((await buffer.runRetentionOnce()).dropped, 0);

    // Five seconds pass, but the wall clock steps five days forward (a late NTP sync).
    clock.advance(5 * DAY_MS, 5_000);
    assert.equal((await buffer.runRetentionOnce()).dropped, 0, 'seq 1 is one day and five seconds old: kept');
    const jump = entries.find((e) => e.message.startsWith('wall clock jumped forward'));
    assert.equal(jump?.level, 'warn');
    assert.equal(jump?.jumpMs, 5 * DAY_MS - 5_000);
    // seq 2: sampled just after the step, by the corrected clock.
    await store.append([{ stream: 'run', priority: 2, time: clock.wallMs(), mono: 0, data: {} }]);

    clock.advance(DAY_MS / 2, DAY_MS / 2);
    assert.equal((await buffer.runRetentionOnce()).dropped, 0, 'seq 1 is 1.5 days old by real time: kept (by wall time it would be 6.5)');
    clock.advance(DAY_MS / 2 + 10_000, DAY_MS / 2 + 10_000);
    let result = await buffer.runRetentionOnce();
    assert.deepEqual(
      result.byReason,
      { 'age-cap': 1 },
      'seq 1 is now truly over two days old',
    );
    assert.deepEqual(
      (await store.readPending('run', 10, 0)).map((r) => r.seq),
      [2],
    );

    // seq 2 is 2 days + 10 s old one day later; the allowance has run out by then (one cap length
    // of monotonic time after the step), so the plain cap drops it.
    clock.advance(DAY_MS, DAY_MS);
    result = await buffer.runRetentionOnce();
    assert.deepEqual(result.byReason, { 'age-cap': 1 });
    assert.deepEqual(await store.readPending('run', 10, 0), []);
  } finally {
    await store.close();
  }
});

test('ClockJumpAllowance ignores small steps and backward steps, adds up forward ones and expires', () => {
  const allowance = new ClockJumpAllowance();
  const cap = 1_000_000;
  assert.deepEqual(allowance.update(0, 0, cap), { allowanceMs: 0, jumpMs: 0 });
  assert.deepEqual(allowance.update(1000 + CLOCK_JUMP_TOLERANCE_MS, 1000, cap), { allowanceMs: 0, jumpMs: 0 }, 'exactly the tolerance is not a jump');
  assert.deepEqual(allowance.update(0, 2000, cap), { allowanceMs: 0, jumpMs: 0 }, 'backward');
  assert.deepEqual(allowance.update(500_000, 3000, cap), { allowanceMs: 499_000, jumpMs: 499_000 });
  assert.deepEqual(allowance.update(900_000, 4000, cap), { allowanceMs: 898_000, jumpMs: 399_000 });
  assert.deepEqual(allowance.update(900_000 + cap - 1, 4000 + cap - 1, cap), { allowanceMs: 898_000, jumpMs: 0 });
  assert.deepEqual(allowance.update(900_000 + cap, 4000 + cap, cap), { allowanceMs: 0, jumpMs: 0 });
});

test('retention runs the disk guard with minFreeDiskBytes and logs its drops', async () => {
  const { store, logger, entries } = await setup();
  try {
    await store.append(records('raw', 0, 50));
    await store.append(records('run', 2, 5));
    const buffer = new StreamBuffer(store, { ...FAST, minFreeDiskBytes: 1_000_000 }, logger, async () => {}, { freeBytes: () => 1_000_000 - 2_000 });
    const result = await buffer.runRetentionOnce();
    assert.ok(result.dropped > 0);
    assert.deepEqual(Object.keys(result.byReason), ['disk-guard']);
    const warning = entries.find((e) => e.message === 'records dropped by retention');
    assert.equal(warning?.reason, 'disk-guard');
    assert.equal(warning?.stream, 'raw');
    assert.deepEqual(warning?.limit, { minFreeDiskBytes: 1_000_000 });
    // 0 disables it.
    const off = new StreamBuffer(store, { ...FAST, minFreeDiskBytes: 0 }, logger, async () => {}, { freeBytes: () => 0 });
    assert.equal((await off.runRetentionOnce()).dropped, 0);
  } finally {
    await store.close();
  }
});

test('an update is deferred while a checkpoint runs, with the reason, and not once it has finished', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'buffer-test-')), 'store.db');
  const { logger } = captureLogger();
  const store = await StreamStore.open(path, { owner: true, logger, busyTimeoutMs: 20_000 });
  // Another process's writer holds the write lock, so the TRUNCATE checkpoint waits on it.
  const writer = new sqlite3.Database(path);
  const run = (sql: string) => new Promise<void>((resolve, reject) => writer.run(sql, (error: Error | null) => (error ? reject(error) : resolve())));
  const buffer = new StreamBuffer(store, { ...FAST, retentionIntervalMs: 3_600_000, statsIntervalMs: 3_600_000, checkpointIntervalMs: 100 }, logger, async () => {});
  try {
    await store.append(records('motor', 1, 10));
    assert.deepEqual(buffer.updateDeferral(), { ms: 0, reason: '' }, 'nothing runs before start');
    await run('BEGIN IMMEDIATE');
    buffer.start();
    await until(() => buffer.busyWith().includes('checkpoint'));
    const deferral = buffer.updateDeferral();
    assert.ok(deferral.ms > 0, 'a running checkpoint asks for time');
    assert.match(deferral.reason, /checkpoint in progress on the store/);
    await run('COMMIT');
    await until(() => buffer.busyWith().length === 0);
    assert.deepEqual(buffer.updateDeferral(), { ms: 0, reason: '' });
  } finally {
    await new Promise<void>((resolve) => writer.close(() => resolve()));
    await buffer.stop();
    await store.close();
  }
});
