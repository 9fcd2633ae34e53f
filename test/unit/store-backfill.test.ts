import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_REQUEUE_RANGE, StoreEpochError, StreamStore, type AppendInput } from '../../components/shared/store';
import { captureLogger } from '../helpers/capture-logger';
import { rawAll, rawExec } from '../helpers/raw-sqlite';

const T0 = 1_700_000_000_000;
const HUGE = Number.MAX_SAFE_INTEGER;

async function openStore(): Promise<{ store: StreamStore; path: string }> {
  const path = join(mkdtempSync(join(tmpdir(), 'store-backfill-')), 'store.db');
  const { logger } = captureLogger();
  return { store: await StreamStore.open(path, { owner: true, logger }), path };
}

function rec(stream: string, time: number, priority: number): AppendInput {
  return { stream, priority, time, mono: 0, data: { time } };
}



/**
 * Stream `run`, seqs 1..20: 1..5 acked, 8 and 9 dropped by the age cap (in two separate runs),
 * 12 dropped by the byte cap, 6..9 sent, the rest never sent.
 */
async function scenario(store: StreamStore): Promise<void> {
  const now = T0 + 1_000_000;
  const times = new Map([
    [8, T0],
    [9, T0 + 10],
  ]);
  await store.append(Array.from({ length: 20 }, (_, k) => rec('run', times.get(k + 1) ?? now, k + 1 === 12 ? 0 : 2)));
  await store.markSent('run', 6, 9, 100);
  assert.deepEqual(await store.applyAck('run', store.epoch, 5), { applied: true, deleted: 5 });
  assert.equal((await store.enforceRetention({ maxBytes: HUGE, maxAgeMs: now - T0 - 5, now })).dropped, 1);
  assert.equal((await store.enforceRetention({ maxBytes: HUGE, maxAgeMs: now - T0 - 15, now })).dropped, 1);
  const total = (await store.stats()).backlogBytes;
  const byteCap = await store.enforceRetention({ maxBytes: total - 1, now });
  assert.deepEqual(
    byteCap.ranges.map((r) => [r.seqFrom, r.reason]),
    [[12, 'byte-cap']],
  );
}

test('requeueRange makes the present records pending again and names every absent run with its reason', async () => {
  const { store } = await openStore();
  try {
    await scenario(store);
    const result = await store.requeueRange('run', store.epoch, 3, 25);
    assert.deepEqual(result, {
      requeued: 12,
      missing: [
        { from: 3, to: 5, reason: 'deleted-after-ack' },
        { from: 8, to: 9, reason: 'age-cap' },
        { from: 12, to: 12, reason: 'byte-cap' },
        { from: 21, to: 25, reason: 'not-sampled' },
      ],
    });
    assert.deepEqual(
      (await store.readPending('run', 100, 0)).map((r) => r.seq),
      [6, 7, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20],
      'the sent records 6 and 7 are pending again; nothing else changed',
    );
    const [stats] = (await store.stats()).streams;
    assert.equal(stats?.unsentRecords, 12);
    assert.equal(stats?.backlogRecords, 12);

    // Asking again changes nothing and answers the same.
    assert.deepEqual(await store.requeueRange('run', store.epoch, 3, 25), result);
    assert.equal((await store.stats()).streams[0]?.unsentRecords, 12);
  } finally {
    await store.close();
  }
});

test('the watermark outranks a drop range, and a seq missing for no recorded reason is unknown', async () => {
  const { store, path } = await openStore();
  try {
    await scenario(store);
    await store.applyAck('run', store.epoch, 8);
    // Something outside this module deleted seq 16 (counters fixed so only the row is missing).
    await rawExec(
      path,
      `BEGIN;
       UPDATE streams SET backlog_records = backlog_records - 1, unsent_records = unsent_records - 1,
         backlog_bytes = backlog_bytes - (SELECT bytes FROM records WHERE stream = 'run' AND seq = 16) WHERE stream = 'run';
       DELETE FROM records WHERE stream = 'run' AND seq = 16;
       COMMIT;`,
    );
    const result = await store.requeueRange('run', store.epoch, 7, 17);
    assert.deepEqual(result.missing, [
      { from: 7, to: 8, reason: 'deleted-after-ack' },
      { from: 9, to: 9, reason: 'age-cap' },
      { from: 12, to: 12, reason: 'byte-cap' },
      { from: 16, to: 16, reason: 'unknown' },
    ]);
    assert.equal(result.requeued, 6, '10, 11, 13, 14, 15, 17');
  } finally {
    await store.close();
  }
});

test('requeueRange over a stream never sampled reports the whole range not-sampled', async () => {
  const { store } = await openStore();
  try {
    assert.deepEqual(await store.requeueRange('door-cycle', store.epoch, 1, 4), { requeued: 0, missing: [{ from: 1, to: 4, reason: 'not-sampled' }] });
  } finally {
    await store.close();
  }
});

test('requeueRange refuses another epoch, an inverted range and a range over the bound, and changes nothing', async () => {
  const { store, path } = await openStore();
  try {
    await scenario(store);
    const before = await rawAll(path, 'SELECT seq, sent_at FROM records ORDER BY seq');
    await assert.rejects(store.requeueRange('run', 'another-epoch', 1, 5), (error: unknown) => {
      assert.ok(error instanceof StoreEpochError);
      assert.match(error.message, new RegExp(`epoch another-epoch is not this store's epoch ${store.epoch}`));
      return true;
    });
    await assert.rejects(store.requeueRange('run', store.epoch, 5, 4), /to must be an integer >= 5, got 4/);
    await assert.rejects(store.requeueRange('run', store.epoch, 0, 4), /from must be an integer >= 1, got 0/);
    await assert.rejects(store.requeueRange('run', store.epoch, 1, MAX_REQUEUE_RANGE + 1), /at most 100000 seqs, got 1\.\.100001 \(100001\)/);
    assert.deepEqual(await rawAll(path, 'SELECT seq, sent_at FROM records ORDER BY seq'), before);
    // The bound itself is allowed.
    const widest = await store.requeueRange('run', store.epoch, 1, MAX_REQUEUE_RANGE);
    assert.deepEqual(widest.missing[widest.missing.length - 1], { from: 21, to: MAX_REQUEUE_RANGE, reason: 'not-sampled' });
  } finally {
    await store.close();
  }
});

test('requeueRange brings back whole envelopes: part of an envelope asked for makes all of it pending, and no other record', async () => {
  const { store } = await openStore();
  try {
    await store.append(Array.from({ length: 12 }, () => rec('run', T0, 2)));
    await store.markSent('run', 1, 4, 100);
    await store.markSent('run', 5, 9, 100);
    await store.markSent('run', 10, 12, 100);
    const result = await store.requeueRange('run', store.epoch, 6, 6);
    assert.equal(result.requeued, 1, 'the count is of the seqs asked for');
    const pending = await store.readPending('run', 100, 0);
    assert.deepEqual(
      pending.map((r) => [r.seq, r.envelope]),
      [5, 6, 7, 8, 9].map((seq) => [seq, { from: 5, to: 9 }]),
    );
    assert.equal((await store.stats()).streams[0].unsentRecords, 5);
  } finally {
    await store.close();
  }
});

test('envelope boundaries live in nullable columns added without a version bump, so a file written by this build still reads as schema version 2', async () => {
  const { store, path } = await openStore();
  await store.append([rec('run', T0, 2)]);
  await store.markSent('run', 1, 1, 100);
  await store.close();
  const rows = await rawAll(path, 'SELECT envelope_from, envelope_to FROM records');
  assert.deepEqual(rows, [{ envelope_from: 1, envelope_to: 1 }]);
  const version = await rawAll(path, "SELECT value FROM meta WHERE key = 'schema_version'");
  assert.deepEqual(version, [{ value: '2' }]);
  // An older build inserts without naming the new columns; the row must still be accepted.
  await rawExec(path, "INSERT INTO records (stream, seq, time, mono, priority, data, bytes, sent_at) VALUES ('run', 2, 0, 0, 2, '{}', 2, NULL)");
  const reopened = await StreamStore.open(path, { owner: true, logger: captureLogger().logger });
  try {
    assert.deepEqual((await reopened.readPending('run', 10, 0)).map((r) => [r.seq, r.envelope]), [[2, null]]);
  } finally {
    await reopened.close();
  }
});
