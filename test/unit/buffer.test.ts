import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import winston from 'winston';
import { StreamStore, type AppendInput } from '../../components/shared/store';
import { DEFAULT_BUFFER_CONFIG, StreamBuffer, type BufferConfig, type BufferStats } from '../../components/stream-buffer/buffer';
import { captureLogger, type LogEntry } from '../helpers/capture-logger';


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

const FAST: BufferConfig = { maxStoreBytes: DEFAULT_BUFFER_CONFIG.maxStoreBytes, retentionIntervalMs: 100, checkpointIntervalMs: 100, statsIntervalMs: 100 };

test('the defaults are the documented ones', () => {
  assert.deepEqual(DEFAULT_BUFFER_CONFIG, { maxStoreBytes: 256 * 1024 * 1024, retentionIntervalMs: 5000, checkpointIntervalMs: 60000, statsIntervalMs: 5000 });
});

test('a bad interval is refused with the allowed range and the value received', async () => {
  const { store, logger } = await setup();
  try {
    assert.throws(() => new StreamBuffer(store, { ...FAST, statsIntervalMs: 5 }, logger, async () => {}), {
      name: 'RangeError',
      message: 'statsIntervalMs must be between 100 and 3600000 ms, got 5',
    });
    assert.throws(() => new StreamBuffer(store, { ...FAST, maxStoreBytes: 0 }, logger, async () => {}), /maxStoreBytes must be a positive integer, got 0/);
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
    const warning = entries.find((e) => e.level === 'warn' && e.message === 'records dropped by byte cap');
    assert.equal(warning?.stream, 'raw');
    assert.equal(warning?.count, 20);
    assert.equal(entries.filter((e) => e.level === 'warn').length, 1, 'the events stream lost nothing, so only one warning');

    assert.deepEqual(await buffer.runRetentionOnce(), { dropped: 0, droppedBytes: 0 });

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
