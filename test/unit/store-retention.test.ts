import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, statSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { StreamStore, type AppendInput, type DropRange } from '../../components/shared/store';
import { captureLogger, type LogEntry } from '../helpers/capture-logger';
import { rawAll } from '../helpers/raw-sqlite';

const T0 = 1_700_000_000_000;
const DAY = 86_400_000;
const HUGE = Number.MAX_SAFE_INTEGER;

function tempPath(): string {
  return join(mkdtempSync(join(tmpdir(), 'store-retention-')), 'store.db');
}

async function openStore(path = tempPath()): Promise<{ store: StreamStore; path: string; entries: LogEntry[] }> {
  const { logger, entries } = captureLogger();
  return { store: await StreamStore.open(path, { owner: true, logger }), path, entries };
}

function rec(stream: string, time: number, priority = 1, padding = 0): AppendInput {
  return { stream, priority, time, mono: 0, data: { t: time, pad: 'x'.repeat(padding) } };
}


function size(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** Seqs still stored for a stream. */
async function stored(store: StreamStore, stream: string): Promise<number[]> {
  return (await store.readPending(stream, 1_000_000, HUGE)).map((r) => r.seq);
}

function rangesOf(ranges: Array<Pick<DropRange, 'stream' | 'reason' | 'seqFrom' | 'seqTo' | 'count'>>): Array<[string, string, number, number, number]> {
  return ranges.map((r) => [r.stream, r.reason, r.seqFrom, r.seqTo, r.count]);
}

test('the age cap drops every record older than now - maxAgeMs whatever its priority, and logs the exact runs', async () => {
  const { store, path } = await openStore();
  try {
    const now = T0 + 10 * DAY;
    // run (events, priority 2): seqs 1,2 old, 3 young, 4,5 old, 6 young. motor: 1 old, 2 young.
    await store.append([
      rec('run', T0, 2),
      rec('run', T0 + 1, 2),
      rec('run', now - 1000, 2),
      rec('motor', T0 + 2),
      rec('run', T0 + 3, 2),
      rec('run', T0 + 4, 2),
      rec('run', now, 2),
      rec('motor', now - 5),
    ]);
    const result = await store.enforceRetention({ maxBytes: HUGE, maxAgeMs: 7 * DAY, now });
    assert.equal(result.dropped, 5);
    assert.deepEqual(result.byReason, { 'age-cap': 5 });
    assert.deepEqual(rangesOf(result.ranges), [
      ['motor', 'age-cap', 1, 1, 1],
      ['run', 'age-cap', 1, 2, 2],
      ['run', 'age-cap', 4, 5, 2],
    ]);
    assert.ok(result.ranges.every((r) => r.droppedAt === now && r.epoch === store.epoch && r.bytes > 0));
    assert.deepEqual(await stored(store, 'run'), [3, 6]);
    assert.deepEqual(await stored(store, 'motor'), [2]);

    const unreported = await store.unreportedDrops(10);
    assert.deepEqual(
      unreported.map((d) => ({ ...d })),
      result.ranges.map(({ bytes: _bytes, ...rest }) => rest),
    );
    const stats = await store.stats();
    assert.deepEqual(stats.streams.find((s) => s.stream === 'run')?.drops, { 'age-cap': 4 });
    assert.deepEqual(stats.streams.find((s) => s.stream === 'motor')?.drops, { 'age-cap': 1 });

    // A record exactly at the cutoff is not older than it.
    await store.append([rec('motor', now + DAY - 7 * DAY)]);
    assert.equal((await store.enforceRetention({ maxBytes: HUGE, maxAgeMs: 7 * DAY, now: now + DAY })).dropped, 0);
    const counted = await rawAll<{ n: number }>(path, 'SELECT COUNT(*) AS n FROM drop_log');
    assert.equal(counted[0]?.n, 3);
  } finally {
    await store.close();
  }
});

test('a record takes the first rule that drops it: age cap, then byte cap, then disk guard', async () => {
  const { store } = await openStore();
  try {
    const now = T0 + 30 * DAY;
    // raw 1..4 are old; raw 5..8 and the events are young.
    await store.append([1, 2, 3, 4].map((i) => rec('raw', T0 + i, 0, 100)));
    await store.append([5, 6, 7, 8].map((i) => rec('raw', now - i, 0, 100)));
    await store.append([1, 2, 3].map((i) => rec('door-cycle', now - i, 2, 100)));
    const perRecord = (await store.stats()).backlogBytes / 11;
    // After the age cap, 7 records remain; the cap leaves room for 5.
    const result = await store.enforceRetention({ maxBytes: Math.floor(5 * perRecord) + 2, maxAgeMs: DAY, now });
    assert.deepEqual(rangesOf(result.ranges), [
      ['raw', 'age-cap', 1, 4, 4],
      ['raw', 'byte-cap', 5, 6, 2],
    ]);
    assert.deepEqual(result.byReason, { 'age-cap': 4, 'byte-cap': 2 });
    assert.deepEqual((await store.stats()).streams.find((s) => s.stream === 'raw')?.drops, { 'age-cap': 4, 'byte-cap': 2 });
  } finally {
    await store.close();
  }
});

test('evictions larger than one transaction write ranges that tile the dropped seqs exactly once', async () => {
  const { store, path } = await openStore();
  try {
    const now = T0 + DAY;
    for (let batch = 0; batch < 5; batch += 1) {
      await store.append(Array.from({ length: 1000 }, (_, i) => rec(i % 3 === 0 ? 'motor' : 'raw', T0 + batch * 1000 + i, i % 3 === 0 ? 1 : 0)));
    }
    // Age-cap the first 2500 (by time), then byte-cap everything but 100 records' worth.
    const first = await store.enforceRetention({ maxBytes: HUGE, maxAgeMs: DAY - 2500, now });
    assert.equal(first.dropped, 2500);
    assert.ok(first.ranges.length >= 3, 'more than one transaction (2000 rows each) was needed');
    const perRecord = Math.ceil((await store.stats()).backlogBytes / 2500);
    const second = await store.enforceRetention({ maxBytes: 100 * perRecord, now });
    assert.ok(second.dropped >= 2400 && second.dropped < 2500, String(second.dropped));

    const all = [...first.ranges, ...second.ranges];
    for (const stream of ['raw', 'motor']) {
      const appended = (await store.stats()).streams.find((s) => s.stream === stream)!.appended;
      const covered = new Map<number, number>();
      for (const r of all.filter((x) => x.stream === stream)) {
        assert.equal(r.count, r.seqTo - r.seqFrom + 1, 'a range is contiguous');
        for (let seq = r.seqFrom; seq <= r.seqTo; seq += 1) covered.set(seq, (covered.get(seq) ?? 0) + 1);
      }
      const kept = await stored(store, stream);
      for (const seq of kept) assert.equal(covered.has(seq), false, `${stream} ${seq} both kept and dropped`);
      for (let seq = 1; seq <= appended; seq += 1) {
        assert.equal((covered.get(seq) ?? 0) + (kept.includes(seq) ? 1 : 0), 1, `${stream} seq ${seq} accounted for once`);
      }
    }
    const log = await rawAll<{ n: number }>(path, 'SELECT SUM(count) AS n FROM drop_log');
    const drops = await rawAll<{ n: number }>(path, 'SELECT SUM(count) AS n FROM drops');
    assert.equal(log[0]?.n, 2500 + second.dropped);
    assert.equal(drops[0]?.n, log[0]?.n, 'the aggregate agrees with the exact ranges');
  } finally {
    await store.close();
  }
});

test('drop ranges are handed out oldest first until marked reported, and keep their first report time', async () => {
  const { store, path } = await openStore();
  try {
    const now = T0 + DAY;
    // Three separate runs of raw: seqs 1, 3, 5 old.
    await store.append([T0, now, T0, now, T0].map((t) => rec('raw', t)));
    await store.enforceRetention({ maxBytes: HUGE, maxAgeMs: 1000, now });
    const all = await store.unreportedDrops(100);
    assert.deepEqual(
      all.map((d) => [d.seqFrom, d.seqTo]),
      [
        [1, 1],
        [3, 3],
        [5, 5],
      ],
    );
    assert.deepEqual(
      (await store.unreportedDrops(2)).map((d) => d.id),
      all.slice(0, 2).map((d) => d.id),
    );
    await store.markDropsReported([all[0]!.id, all[2]!.id, 9999], 5000);
    assert.deepEqual(
      (await store.unreportedDrops(100)).map((d) => d.id),
      [all[1]!.id],
    );
    await store.markDropsReported([all[0]!.id], 7000);
    const rows = await rawAll<{ id: number; reported_at: number | null }>(path, 'SELECT id, reported_at FROM drop_log ORDER BY id');
    assert.deepEqual(
      rows.map((r) => r.reported_at),
      [5000, null, 5000],
    );
    await store.markDropsReported([], 1);
    await assert.rejects(store.markDropsReported([1.5], 1), /ids\[0\] must be an integer >= 1, got 1.5/);
    await assert.rejects(store.unreportedDrops(0), /limit must be an integer >= 1/);
  } finally {
    await store.close();
  }
});

test('an ack prunes reported drop ranges at or below its watermark and keeps unreported ones', async () => {
  const { store, path } = await openStore();
  try {
    const now = T0 + DAY;
    await store.append([T0, now, T0, now, T0, now].map((t) => rec('raw', t)));
    await store.enforceRetention({ maxBytes: HUGE, maxAgeMs: 1000, now });
    const [one, three, five] = await store.unreportedDrops(10);
    await store.markDropsReported([one!.id, five!.id], 1);
    await store.applyAck('raw', store.epoch, 4);
    const left = await rawAll<{ seq_from: number }>(path, 'SELECT seq_from FROM drop_log ORDER BY seq_from');
    assert.deepEqual(
      left.map((r) => r.seq_from),
      [3, 5],
      'seq 1 pruned (reported, under the watermark); 3 kept (unreported); 5 kept (above)',
    );
    assert.equal(three!.seqFrom, 3);
  } finally {
    await store.close();
  }
});

test('the disk guard evicts lowest priority first until the minimum is free and hands the space back to the filesystem', async () => {
  const { store, path } = await openStore();
  try {
    for (let batch = 0; batch < 6; batch += 1) await store.append(Array.from({ length: 500 }, (_, i) => rec('raw', T0 + batch * 500 + i, 0, 500)));
    await store.append(Array.from({ length: 50 }, (_, i) => rec('door-cycle', T0 + i, 2, 500)));
    await store.checkpoint();
    const mainBefore = size(path);
    // A filesystem of fixed capacity holding only this store: free = budget - main - WAL.
    const minFree = 4 * 1024 * 1024;
    const deficit = 600 * 1024;
    const budget = mainBefore + minFree - deficit;
    const freeBytes = () => budget - size(path) - size(`${path}-wal`);
    assert.ok(freeBytes() < minFree);

    const result = await store.enforceRetention({ maxBytes: HUGE, minFreeBytes: minFree, freeBytes });
    assert.ok(result.dropped > 0);
    assert.deepEqual(Object.keys(result.byReason), ['disk-guard']);
    assert.deepEqual(
      [...new Set(result.ranges.map((r) => r.stream))],
      ['raw'],
      'events outrank raw samples',
    );
    assert.equal(result.ranges[0]?.seqFrom, 1, 'oldest first');
    assert.ok(freeBytes() >= minFree, `free ${freeBytes()} >= ${minFree}`);
    assert.ok(result.freeBytes !== null && result.freeBytes >= minFree);
    assert.ok(size(path) < mainBefore - deficit / 2, `main file shrank: ${mainBefore} -> ${size(path)}`);
    assert.equal(size(`${path}-wal`), 0, 'WAL truncated');
    assert.ok(result.droppedBytes < 2 * deficit, `evicted ${result.droppedBytes} bytes of data for a ${deficit}-byte deficit`);
    assert.equal((await stored(store, 'door-cycle')).length, 50);
    const [{ auto_vacuum: autoVacuum }] = (await rawAll<{ auto_vacuum: number }>(path, 'PRAGMA auto_vacuum')) as [{ auto_vacuum: number }];
    assert.equal(autoVacuum, 2, 'a new file is created with auto_vacuum = INCREMENTAL');

    // Enough free now: nothing more goes.
    const again = await store.enforceRetention({ maxBytes: HUGE, minFreeBytes: minFree, freeBytes });
    assert.equal(again.dropped, 0);
  } finally {
    await store.close();
  }
});

test('the disk guard stops, with a warning, when evicting frees nothing, instead of emptying the store', async () => {
  const { store, entries } = await openStore();
  try {
    for (let batch = 0; batch < 3; batch += 1) await store.append(Array.from({ length: 1000 }, (_, i) => rec('raw', T0 + i, 0, 200)));
    // Another program holds the disk: free space stays where it is whatever the store gives back.
    const result = await store.enforceRetention({ maxBytes: HUGE, minFreeBytes: 10_000_000, freeBytes: () => 1_000 });
    assert.ok(result.dropped > 0 && result.dropped <= 2000, `one batch at most, got ${result.dropped}`);
    assert.ok((await store.stats()).backlogRecords >= 1000);
    assert.ok(entries.some((e) => e.level === 'warn' && /disk guard: evicting freed no space/.test(e.message)));
  } finally {
    await store.close();
  }
});

test('the disk guard does nothing when enough is free, and is skipped with a warning when free space cannot be read', async () => {
  const { store, entries } = await openStore();
  try {
    await store.append([rec('raw', T0, 0, 100)]);
    const fine = await store.enforceRetention({ maxBytes: HUGE, minFreeBytes: 1000, freeBytes: () => 5000 });
    assert.equal(fine.dropped, 0);
    assert.ok(fine.freeBytes !== null && fine.freeBytes >= 5000);
    const unknown = await store.enforceRetention({
      maxBytes: HUGE,
      minFreeBytes: 1000,
      freeBytes: () => {
        throw new Error('statfs not supported');
      },
    });
    assert.equal(unknown.dropped, 0);
    assert.equal(unknown.freeBytes, null);
    assert.ok(entries.some((e) => e.level === 'warn' && e.message === 'disk guard skipped, free space unknown' && e.error === 'statfs not supported'));
    // Without an injected function the guard measures the real filesystem.
    const real = await store.enforceRetention({ maxBytes: HUGE, minFreeBytes: 1 });
    assert.equal(real.dropped, 0);
    assert.ok(real.freeBytes !== null && real.freeBytes > 0);
  } finally {
    await store.close();
  }
});

test('stats report the free bytes of the filesystem holding the store', async () => {
  const { store, path } = await openStore();
  try {
    const stats = await store.stats();
    const fs = statfsSync(dirname(path));
    const expected = Number(fs.bavail) * Number(fs.bsize);
    assert.ok(stats.freeBytes !== null);
    assert.ok(Math.abs(stats.freeBytes - expected) < 64 * 1024 * 1024, `${stats.freeBytes} vs ${expected}`);
  } finally {
    await store.close();
  }
});

test('retention limits are checked', async () => {
  const { store } = await openStore();
  try {
    await assert.rejects(store.enforceRetention({ maxBytes: -1 }), /maxBytes must be an integer >= 0, got -1/);
    await assert.rejects(store.enforceRetention({ maxBytes: 1, maxAgeMs: 0 }), /maxAgeMs must be an integer >= 1, got 0/);
    await assert.rejects(store.enforceRetention({ maxBytes: 1, minFreeBytes: 1.5 }), /minFreeBytes must be an integer >= 0, got 1.5/);
  } finally {
    await store.close();
  }
});
