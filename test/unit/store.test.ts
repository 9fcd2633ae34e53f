import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sqlite3 from 'sqlite3';
import { StoreCorruptError, StoreSchemaError, StreamStore, type AppendInput } from '../../components/shared/store';
import { captureLogger, type LogEntry } from '../helpers/capture-logger';
import { rawAll, rawExec } from '../helpers/raw-sqlite';


function tempPath(name = 'store.db'): string {
  return join(mkdtempSync(join(tmpdir(), 'store-test-')), 'buffer', name);
}

async function openStore(path = tempPath(), owner = true): Promise<{ store: StreamStore; entries: LogEntry[] }> {
  const { logger, entries } = captureLogger();
  return { store: await StreamStore.open(path, { owner, logger }), entries };
}

function rec(stream: string, i: number, priority = 1, padding = 0): AppendInput {
  return { stream, priority, time: 1_700_000_000_000 + i, mono: 1000 + i, data: { i, pad: 'x'.repeat(padding) } };
}

/** Raw SQL against the file through a separate connection, to check what the store really wrote. */


function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function seqsOf(assigned: Array<{ stream: string; seq: number }>, stream: string): number[] {
  return assigned.filter((a) => a.stream === stream).map((a) => a.seq);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, k) => from + k);
}

test('per-stream sequence numbers start at 1 and stay contiguous across appends', async () => {
  const { store } = await openStore();
  try {
    const first = await store.append([rec('door-cycle', 0, 2), rec('motor', 0), rec('door-cycle', 1, 2)]);
    assert.deepEqual(first, [
      { stream: 'door-cycle', seq: 1 },
      { stream: 'motor', seq: 1 },
      { stream: 'door-cycle', seq: 2 },
    ]);
    const second = await store.append([rec('motor', 1), rec('door-cycle', 2, 2), rec('motor', 2)]);
    assert.deepEqual(seqsOf(second, 'motor'), [2, 3]);
    assert.deepEqual(seqsOf(second, 'door-cycle'), [3]);
    assert.deepEqual(await store.append([]), []);
    assert.deepEqual(await store.streams(), ['door-cycle', 'motor']);
    const stats = await store.stats();
    assert.deepEqual(
      stats.streams.map((s) => [s.stream, s.appended, s.backlogRecords, s.unsentRecords]),
      [
        ['door-cycle', 3, 3, 3],
        ['motor', 3, 3, 3],
      ],
    );
  } finally {
    await store.close();
  }
});

test('an append with one invalid record writes nothing', async () => {
  const { store } = await openStore();
  try {
    await store.append([rec('run', 0, 2)]);
    const bad = { ...rec('run', 1, 2), priority: 1.5 };
    await assert.rejects(store.append([rec('run', 2, 2), bad]), /records\[1\]\.priority must be an integer >= 0, got 1.5/);
    assert.deepEqual(await store.append([rec('run', 3, 2)]), [{ stream: 'run', seq: 2 }]);
  } finally {
    await store.close();
  }
});

test('a note goes in with its append or not at all; keys outside "note:" are refused', async () => {
  const { store } = await openStore();
  try {
    assert.equal(await store.note('note:journal'), undefined);
    await store.append([rec('run', 0, 2)], [], { key: 'note:journal', value: 'one' });
    assert.equal(await store.note('note:journal'), 'one');
    const bad = { ...rec('run', 1, 2), priority: -1 };
    await assert.rejects(store.append([bad], [], { key: 'note:journal', value: 'two' }), /priority/);
    assert.equal(await store.note('note:journal'), 'one', 'a refused append leaves the note as it was');
    await store.append([], [], { key: 'note:journal', value: 'three' });
    assert.equal(await store.note('note:journal'), 'three', 'a note alone is an append too');
    await assert.rejects(store.append([rec('run', 2, 2)], [], { key: 'epoch', value: 'x' }), /note key must be "note:"/);
    await assert.rejects(store.note('schema_version'), /note key must be "note:"/);
  } finally {
    await store.close();
  }
});

test('readPending returns unsent records in ascending seq order and resends only those sent before resendBefore', async () => {
  const { store } = await openStore();
  try {
    for (let i = 0; i < 5; i += 1) await store.append([rec('run', i, 2), rec('motor', i)]);
    const all = await store.readPending('run', 100, 0);
    assert.deepEqual(
      all.map((r) => r.seq),
      [1, 2, 3, 4, 5],
    );
    const json = JSON.stringify({ i: 0, pad: '' });
    assert.deepEqual(all[0], {
      stream: 'run',
      seq: 1,
      time: 1_700_000_000_000,
      mono: 1000,
      priority: 2,
      data: { i: 0, pad: '' },
      dataJson: json,
      bytes: Buffer.byteLength(json),
      sentAt: null,
      clock: null,
      envelope: null,
    });
    assert.deepEqual(
      (await store.readPending('run', 2, 0)).map((r) => r.seq),
      [1, 2],
    );

    await store.markSent('run', 1, 3, 1000);
    assert.deepEqual(
      (await store.readPending('run', 100, 1000)).map((r) => r.seq),
      [4, 5],
      'sent at 1000 is not before 1000, so not due for resend',
    );
    const due = await store.readPending('run', 100, 1001);
    assert.deepEqual(
      due.map((r) => [r.seq, r.sentAt, r.envelope]),
      [
        [1, 1000, { from: 1, to: 3 }],
        [2, 1000, { from: 1, to: 3 }],
        [3, 1000, { from: 1, to: 3 }],
        [4, null, null],
        [5, null, null],
      ],
      'a sent record names the envelope it went out in',
    );
    assert.deepEqual(
      (await store.readPending('motor', 100, 0)).map((r) => r.seq),
      [1, 2, 3, 4, 5],
      'another stream is untouched',
    );
  } finally {
    await store.close();
  }
});

test('markSent stamps the range, counts each record as sent once and re-stamps a resend', async () => {
  const { store } = await openStore();
  try {
    await store.append(range(1, 6).map((i) => rec('run', i, 2)));
    await store.markSent('run', 2, 4, 500);
    await store.markSent('run', 3, 5, 700);
    const rows = await store.readPending('run', 100, 10_000);
    assert.deepEqual(
      rows.map((r) => [r.seq, r.sentAt]),
      [
        [1, null],
        [2, 500],
        [3, 700],
        [4, 700],
        [5, 700],
        [6, null],
      ],
    );
    const [stats] = (await store.stats()).streams;
    assert.equal(stats?.unsentRecords, 2);
  } finally {
    await store.close();
  }
});

test('applyAck deletes up to the watermark, ignores another epoch, never moves backwards and clamps beyond the highest seq', async () => {
  const { store, entries } = await openStore();
  try {
    await store.append(range(1, 10).map((i) => rec('run', i, 2)));
    await store.markSent('run', 1, 10, 100);

    assert.deepEqual(await store.applyAck('run', 'some-other-epoch', 8), { applied: false, deleted: 0 });
    assert.equal((await store.readPending('run', 100, 1000)).length, 10);

    assert.deepEqual(await store.applyAck('run', store.epoch, 4), { applied: true, deleted: 4 });
    assert.deepEqual(
      (await store.readPending('run', 100, 1000)).map((r) => r.seq),
      [5, 6, 7, 8, 9, 10],
    );

    assert.deepEqual(await store.applyAck('run', store.epoch, 2), { applied: true, deleted: 0 });
    let [stats] = (await store.stats()).streams;
    assert.equal(stats?.watermark, 4, 'an older ack does not lower the watermark');

    const result = await store.applyAck('run', store.epoch, 50);
    assert.deepEqual(result, { applied: true, deleted: 6 });
    [stats] = (await store.stats()).streams;
    assert.equal(stats?.watermark, 10);
    assert.equal(stats?.backlogRecords, 0);
    assert.equal(stats?.backlogBytes, 0);
    const warning = entries.find((e) => e.level === 'warn' && e.message.includes('clamped'));
    assert.ok(warning, 'clamping is logged as a warning');
    assert.equal(warning.watermark, 50);
    assert.equal(warning.highest, 10);

    // Appends continue after the acked range.
    assert.deepEqual(await store.append([rec('run', 11, 2)]), [{ stream: 'run', seq: 11 }]);
  } finally {
    await store.close();
  }
});

test('gaps in an ack are information only: applyAck takes no gap list and leaves records above the watermark as they were', async () => {
  const { store } = await openStore();
  try {
    await store.append(range(1, 10).map((i) => rec('door-cycle', i, 2)));
    await store.markSent('door-cycle', 1, 10, 100);
    assert.equal(store.applyAck.length, 3, 'stream, epoch, watermark');
    // A caller still passing the old fourth argument gets no requeue out of it.
    const legacy = store.applyAck as unknown as (...args: unknown[]) => Promise<unknown>;
    const result = await legacy.call(store, 'door-cycle', store.epoch, 3, [[5, 6]]);
    assert.deepEqual(result, { applied: true, deleted: 3 });
    assert.deepEqual(await store.readPending('door-cycle', 100, 0), [], 'nothing became pending again');
    const [stats] = (await store.stats()).streams;
    assert.equal(stats?.unsentRecords, 0);
    assert.equal(stats?.backlogRecords, 7);
  } finally {
    await store.close();
  }
});

test('enforceRetention evicts lowest priority first, then oldest, and counts drops by stream and reason', async () => {
  const path = tempPath();
  const { store } = await openStore(path);
  try {
    // Interleaved so the oldest records overall are events; priority must still win over age.
    for (let i = 1; i <= 10; i += 1) {
      await store.append([rec('door-cycle', i, 2, 100), rec('motor', i, 1, 100), rec('raw', i, 0, 100)]);
    }
    const before = await store.stats();
    const perRecord = Buffer.byteLength(JSON.stringify({ i: 1, pad: 'x'.repeat(100) }));
    assert.equal(before.backlogRecords, 30);

    // Room for 15 records of ~perRecord bytes: all 10 raw and 5 motor must go.
    const cap = before.backlogBytes - 15 * perRecord + 5;
    const result = await store.enforceRetention({ maxBytes: cap });
    assert.equal(result.dropped, 15);
    assert.deepEqual(Object.keys(result.byStream).sort(), ['motor', 'raw']);
    assert.deepEqual(result.byStream.raw && [result.byStream.raw.count, result.byStream.raw.firstSeq, result.byStream.raw.lastSeq], [10, 1, 10]);
    assert.deepEqual(result.byStream.motor && [result.byStream.motor.count, result.byStream.motor.firstSeq, result.byStream.motor.lastSeq], [5, 1, 5]);

    assert.deepEqual(
      (await store.readPending('motor', 100, 0)).map((r) => r.seq),
      [6, 7, 8, 9, 10],
    );
    assert.equal((await store.readPending('door-cycle', 100, 0)).length, 10);
    assert.equal((await store.readPending('raw', 100, 0)).length, 0);

    const after = await store.stats();
    assert.ok(after.backlogBytes <= cap);
    assert.equal(after.backlogBytes, before.backlogBytes - result.droppedBytes);
    assert.deepEqual(after.streams.find((s) => s.stream === 'raw')?.drops, { 'byte-cap': 10 });
    assert.deepEqual(after.streams.find((s) => s.stream === 'motor')?.drops, { 'byte-cap': 5 });
    assert.deepEqual(after.streams.find((s) => s.stream === 'door-cycle')?.drops, {});

    // Under the cap nothing more goes; a lower cap adds to the same drop rows.
    assert.equal((await store.enforceRetention({ maxBytes: cap })).dropped, 0);
    const second = await store.enforceRetention({ maxBytes: after.backlogBytes - 1 });
    assert.deepEqual(second.byStream.motor && [second.byStream.motor.count, second.byStream.motor.firstSeq], [1, 6]);
    const drops = await rawAll<{ stream: string; reason: string; count: number; first_seq: number; last_seq: number }>(
      path,
      'SELECT stream, reason, count, first_seq, last_seq FROM drops ORDER BY stream',
    );
    assert.deepEqual(
      drops.map((d) => ({ ...d })),
      [
        { stream: 'motor', reason: 'byte-cap', count: 6, first_seq: 1, last_seq: 6 },
        { stream: 'raw', reason: 'byte-cap', count: 10, first_seq: 1, last_seq: 10 },
      ],
    );
  } finally {
    await store.close();
  }
});

test('within one priority the store-wide oldest record is evicted first, across streams', async () => {
  const { store } = await openStore();
  try {
    await store.append(range(1, 5).map((i) => rec('raw-a', i, 0, 50)));
    await store.append([rec('raw-b', 1, 0, 50)]);
    const total = (await store.stats()).backlogBytes;
    const result = await store.enforceRetention({ maxBytes: total - 1 });
    // raw-b seq 1 is the newest record although it has the lowest seq.
    assert.deepEqual(Object.keys(result.byStream), ['raw-a']);
    assert.equal(result.byStream['raw-a']?.firstSeq, 1);
    assert.equal(result.dropped, 1);
  } finally {
    await store.close();
  }
});

test('the backlog counters always match the rows actually stored', async () => {
  const path = tempPath();
  const { store } = await openStore(path);
  try {
    await store.append(range(1, 40).map((i) => rec(i % 2 ? 'run' : 'raw', i, i % 2 ? 2 : 0, i)));
    await store.markSent('run', 1, 10, 50);
    await store.markSent('raw', 5, 8, 50);
    await store.applyAck('run', store.epoch, 6);
    await store.requeueRange('run', store.epoch, 8, 9);
    await store.enforceRetention({ maxBytes: 400 });
    await store.append([rec('run', 99, 2, 3)]);
    const counted = await rawAll<{ stream: string; n: number; bytes: number; unsent: number }>(
      path,
      'SELECT stream, COUNT(*) AS n, SUM(bytes) AS bytes, SUM(sent_at IS NULL) AS unsent FROM records GROUP BY stream ORDER BY stream',
    );
    const stats = await store.stats();
    assert.ok(counted.length > 0);
    for (const row of counted) {
      const s = stats.streams.find((x) => x.stream === row.stream);
      assert.deepEqual([s?.backlogRecords, s?.backlogBytes, s?.unsentRecords], [row.n, row.bytes, row.unsent], row.stream);
    }
    assert.equal(stats.backlogRecords, counted.reduce((n, r) => n + r.n, 0));
  } finally {
    await store.close();
  }
});

test('two connections appending concurrently get no duplicate and no missing seqs', async () => {
  const path = tempPath();
  const a = await openStore(path);
  const b = await openStore(path, false);
  try {
    assert.equal(a.store.epoch, b.store.epoch);
    const batches = (store: StreamStore, tag: number) =>
      Promise.all(range(1, 40).map((i) => store.append([rec('door-cycle', tag * 1000 + i, 2), rec('motor', tag * 1000 + i)])));
    const [fromA, fromB] = await Promise.all([batches(a.store, 1), batches(b.store, 2)]);
    for (const stream of ['door-cycle', 'motor']) {
      const seqs = [...fromA.flat(), ...fromB.flat()]
        .filter((x) => x.stream === stream)
        .map((x) => x.seq)
        .sort((x, y) => x - y);
      assert.deepEqual(seqs, range(1, 80), stream);
      const stored = (await a.store.readPending(stream, 1000, 0)).map((r) => r.seq);
      assert.deepEqual(stored, range(1, 80));
    }
  } finally {
    await a.store.close();
    await b.store.close();
  }
});

test('three openers creating the same new file at once agree on one epoch', async () => {
  const path = tempPath();
  const opened = await Promise.all([openStore(path), openStore(path, false), openStore(path, false)]);
  try {
    assert.equal(new Set(opened.map((o) => o.store.epoch)).size, 1);
    const newEpochLogs = opened.flatMap((o) => o.entries).filter((e) => e.message === 'new epoch');
    assert.equal(newEpochLogs.length, 1, 'exactly one opener created the epoch');
  } finally {
    for (const o of opened) await o.store.close();
  }
});

test('a file with another schema version is refused with both versions named and left untouched', async () => {
  const path = tempPath();
  const { store } = await openStore(path);
  await store.close();
  await rawExec(path, "PRAGMA journal_mode = DELETE; UPDATE meta SET value = '7' WHERE key = 'schema_version';");
  const hash = sha256(path);
  const { logger } = captureLogger();
  await assert.rejects(StreamStore.open(path, { owner: true, logger }), (error: unknown) => {
    assert.ok(error instanceof StoreSchemaError);
    assert.match(error.message, /schema version 7/);
    assert.match(error.message, /expects version 2/);
    assert.ok(error.message.includes(path));
    return true;
  });
  assert.equal(sha256(path), hash);
  assert.deepEqual(
    readdirSync(join(path, '..')).filter((f) => f.includes('corrupt')),
    [],
  );
});

test('a foreign-version file left with an un-checkpointed WAL (a crash) is refused without folding the WAL in', async () => {
  const source = tempPath('source.db');
  const path = join(source, '..', 'store.db');
  mkdirSync(join(source, '..'), { recursive: true });
  const writer = await new Promise<sqlite3.Database>((ok, fail) => {
    const db: sqlite3.Database = new sqlite3.Database(source, (error) => (error ? fail(error) : ok(db)));
  });
  await new Promise<void>((ok, fail) =>
    writer.exec(
      "PRAGMA journal_mode = WAL; CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID; INSERT INTO meta VALUES ('schema_version', '9');",
      (error) => (error ? fail(error) : ok()),
    ),
  );
  // Copying while the writer is open captures the state a crash leaves: frames only in the WAL.
  writeFileSync(path, readFileSync(source));
  writeFileSync(`${path}-wal`, readFileSync(`${source}-wal`));
  await new Promise<void>((ok) => writer.close(() => ok()));
  const [mainHash, walHash] = [sha256(path), sha256(`${path}-wal`)];
  assert.ok(statSync(`${path}-wal`).size > 0);

  const { logger } = captureLogger();
  await assert.rejects(StreamStore.open(path, { owner: true, logger }), /schema version 9, this build expects version 2/);
  assert.equal(sha256(path), mainHash, 'main file untouched');
  assert.equal(sha256(`${path}-wal`), walHash, 'WAL untouched');
});

test('a write waits for another process holding the write lock, then sees its commit', async () => {
  const path = tempPath();
  const { store } = await openStore(path);
  try {
    await store.append(range(1, 5).map((i) => rec('run', i, 2)));
    const other = await new Promise<sqlite3.Database>((ok, fail) => {
      const db: sqlite3.Database = new sqlite3.Database(path, (error) => (error ? fail(error) : ok(db)));
    });
    const exec = (sql: string) => new Promise<void>((ok, fail) => other.exec(sql, (error) => (error ? fail(error) : ok())));
    await exec("BEGIN IMMEDIATE; UPDATE streams SET watermark = 2 WHERE stream = 'run'; DELETE FROM records WHERE stream = 'run' AND seq <= 2;");
    await exec("UPDATE streams SET backlog_records = backlog_records - 2 WHERE stream = 'run'");
    const started = Date.now();
    const ack = store.applyAck('run', store.epoch, 3);
    const append = store.append([rec('run', 6, 2)]);
    await new Promise((r) => setTimeout(r, 200));
    await exec('COMMIT');
    await new Promise<void>((ok) => other.close(() => ok()));
    // Only seq 3 is left to delete: the ack ran on the committed state, not on a stale snapshot.
    assert.deepEqual(await ack, { applied: true, deleted: 1 });
    assert.deepEqual(await append, [{ stream: 'run', seq: 6 }]);
    assert.ok(Date.now() - started >= 150, 'the store waited for the lock');
    assert.deepEqual(
      (await store.readPending('run', 100, 0)).map((r) => r.seq),
      [4, 5, 6],
    );
  } finally {
    await store.close();
  }
});

/** Overwrites every page after the schema's root pages, so meta (and the epoch in it) stays readable. */
async function corruptDataPages(path: string): Promise<void> {
  const roots = await rawAll<{ rootpage: number }>(path, 'SELECT rootpage FROM sqlite_master');
  const [{ page_size: pageSize }] = (await rawAll<{ page_size: number }>(path, 'PRAGMA page_size')) as [{ page_size: number }];
  const bytes = readFileSync(path);
  const from = Math.max(...roots.map((r) => r.rootpage)) * pageSize;
  assert.ok(bytes.length > from + pageSize, 'the records table spans more than its root page');
  for (let offset = from; offset < bytes.length; offset += 1) bytes[offset] = (offset * 131 + 7) & 0xff;
  writeFileSync(path, bytes);
}

async function storeWithData(path: string): Promise<string> {
  const { store } = await openStore(path);
  await store.append(range(1, 300).map((i) => rec('motor', i, 1, 200)));
  const epoch = store.epoch;
  await store.close();
  assert.equal(existsSync(`${path}-wal`), false, 'a clean close leaves no WAL behind');
  return epoch;
}

test('an owner quarantines a corrupt file and starts a new epoch linked to the old one', async () => {
  const path = tempPath();
  const oldEpoch = await storeWithData(path);
  await corruptDataPages(path);
  const corruptBytes = readFileSync(path);

  const { store, entries } = await openStore(path, true);
  try {
    const dir = join(path, '..');
    const quarantined = readdirSync(dir).filter((f) => /^store\.db\.corrupt-\d{4}-\d{2}-\d{2}T\d{6}\.\d{3}Z$/.test(f));
    assert.equal(quarantined.length, 1, `quarantine file in ${readdirSync(dir).join(', ')}`);
    const quarantinePath = join(dir, quarantined[0]!);
    assert.ok(readFileSync(quarantinePath).equals(corruptBytes), 'the quarantined file holds the original bytes');

    assert.notEqual(store.epoch, oldEpoch);
    assert.equal(store.previousEpoch, oldEpoch);
    const stats = await store.stats();
    assert.equal(stats.previousEpoch, oldEpoch);
    assert.equal(stats.backlogRecords, 0);
    assert.deepEqual(await store.append([rec('motor', 1)]), [{ stream: 'motor', seq: 1 }]);

    const error = entries.find((e) => e.level === 'error');
    assert.equal(error?.quarantinePath, quarantinePath);
    assert.equal(error?.oldEpoch, oldEpoch);
    assert.deepEqual(error?.oldStreams, [{ stream: 'motor', appended: 300, watermark: 0 }]);
    assert.deepEqual(await store.previousEpochInfo(), { epoch: oldEpoch, streams: [{ stream: 'motor', appended: 300, watermark: 0 }], reportedAt: null });
    const fresh = entries.find((e) => e.message === 'new epoch');
    assert.equal(fresh?.epoch, store.epoch);
    assert.equal(fresh?.previousEpoch, oldEpoch);
  } finally {
    await store.close();
  }
  // The new file survives a reopen with its link intact.
  const again = await openStore(path, false);
  assert.equal(again.store.previousEpoch, oldEpoch);
  await again.store.close();
});

test('an owner quarantines a file that is garbage throughout; the old epoch is unknown', async () => {
  const path = tempPath();
  await storeWithData(path);
  const size = statSync(path).size;
  const garbage = Buffer.alloc(size, 0);
  for (let i = 0; i < size; i += 1) garbage[i] = (i * 7919 + 13) & 0xff;
  writeFileSync(path, garbage);

  const { store, entries } = await openStore(path, true);
  try {
    const dir = join(path, '..');
    const quarantined = readdirSync(dir).filter((f) => /^store\.db\.corrupt-\d{4}-\d{2}-\d{2}T\d{6}\.\d{3}Z$/.test(f));
    assert.equal(quarantined.length, 1);
    assert.ok(readFileSync(join(dir, quarantined[0]!)).equals(garbage));
    assert.equal(store.previousEpoch, null);
    const error = entries.find((e) => e.level === 'error');
    assert.match(String(error?.reason), /SQLITE_NOTADB/);
    assert.equal(error?.oldEpoch, null);
    assert.equal(error?.oldStreams, null, 'unreadable, not an empty list');
    // The new epoch is still reported, with the old one unknown.
    assert.deepEqual(await store.previousEpochInfo(), { epoch: null, streams: null, reportedAt: null });
  } finally {
    await store.close();
  }
});

test('a non-owner gets StoreCorruptError and leaves the corrupt file where it is', async () => {
  const path = tempPath();
  await storeWithData(path);
  await corruptDataPages(path);
  const hash = sha256(path);
  const { logger } = captureLogger();
  await assert.rejects(StreamStore.open(path, { owner: false, logger }), (error: unknown) => {
    assert.ok(error instanceof StoreCorruptError);
    assert.ok(error.message.includes(path));
    return true;
  });
  assert.equal(sha256(path), hash);
  assert.deepEqual(
    readdirSync(join(path, '..')).filter((f) => f.includes('corrupt')),
    [],
  );
});

test('checkpoint truncates the WAL', async () => {
  const path = tempPath();
  const { store } = await openStore(path);
  try {
    await store.append(range(1, 50).map((i) => rec('motor', i, 1, 100)));
    assert.ok(statSync(`${path}-wal`).size > 0);
    await store.checkpoint();
    assert.equal(statSync(`${path}-wal`).size, 0);
    const stats = await store.stats();
    assert.equal(stats.fileBytes, statSync(path).size);
  } finally {
    await store.close();
  }
});

// The child appends through the compiled module, as SensorAcquisition would from its own process.
const CHILD = `
const { StreamStore } = require(process.argv[2]);
const { createLogger } = require(process.argv[3]);
(async () => {
  const [path, tag, count] = [process.argv[4], Number(process.argv[5]), Number(process.argv[6])];
  const store = await StreamStore.open(path, { owner: false, logger: createLogger('child') });
  process.stdout.write('READY\\n');
  await new Promise((go) => process.stdin.once('data', go));
  const assigned = [];
  for (let i = 0; i < count; i += 1) {
    const batch = [
      { stream: 'door-cycle', priority: 2, time: Date.now(), mono: i, data: { tag, i } },
      { stream: 'motor', priority: 1, time: Date.now(), mono: i, data: { tag, i } },
    ];
    assigned.push(...(await store.append(batch)).map((a) => [a.stream, a.seq]));
  }
  await store.close();
  process.stdout.write('RESULT ' + JSON.stringify(assigned) + '\\n');
})().catch((error) => { console.error(error); process.exit(1); });
`;

function startChild(script: string, path: string, tag: number, count: number) {
  const dist = resolve(__dirname, '..', '..', 'components', 'shared');
  const child = spawn(process.execPath, [script, join(dist, 'store.js'), join(dist, 'logger.js'), path, String(tag), String(count)], {
    env: { ...process.env, LOG_LEVEL: 'error' },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  let onReady: () => void;
  const ready = new Promise<void>((r) => (onReady = r));
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    if (out.includes('READY\n')) onReady();
  });
  const done = new Promise<Array<[string, number]>>((resolveDone, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      if (code !== 0 || !line) return reject(new Error(`child ${tag} exited ${code}: ${out}`));
      resolveDone(JSON.parse(line.slice('RESULT '.length)) as Array<[string, number]>);
    });
  });
  return { ready, done, go: () => child.stdin.end('go\n') };
}

test('separate processes appending at the same time get no duplicate and no missing seqs', async () => {
  const path = tempPath();
  const script = join(path, '..', '..', 'child.js');
  writeFileSync(script, CHILD);
  const { store } = await openStore(path);
  try {
    const count = 60;
    const children = [startChild(script, path, 1, count), startChild(script, path, 2, count)];
    await Promise.all(children.map((c) => c.ready));
    for (const c of children) c.go();
    const mine: Array<[string, number]> = [];
    for (let i = 0; i < count; i += 1) {
      mine.push(...(await store.append([rec('door-cycle', i, 2), rec('motor', i)])).map((a): [string, number] => [a.stream, a.seq]));
    }
    const theirs = await Promise.all(children.map((c) => c.done));
    const all = [...mine, ...theirs.flat()];
    for (const stream of ['door-cycle', 'motor']) {
      const seqs = all
        .filter(([s]) => s === stream)
        .map(([, seq]) => seq)
        .sort((x, y) => x - y);
      assert.deepEqual(seqs, range(1, 3 * count), stream);
      const stored = await store.readPending(stream, 10_000, 0);
      assert.deepEqual(
        stored.map((r) => r.seq),
        range(1, 3 * count),
      );
      // Each child's own records carry its tag, so the seqs it was told are the rows it wrote.
      for (const [tag, assigned] of theirs.entries()) {
        const told = assigned.filter(([s]) => s === stream).map(([, seq]) => seq);
        const written = stored.filter((r) => r.data.tag === tag + 1).map((r) => r.seq);
        assert.deepEqual(written, told);
      }
    }
  } finally {
    await store.close();
  }
});

test('a record keeps the clock-sync state it was stamped with; an unknown state is refused', async () => {
  const { store } = await openStore();
  try {
    await store.append([{ ...rec('run', 0, 2), clock: 'unsynced' }, { ...rec('run', 1, 2), clock: 'synced' }]);
    assert.deepEqual((await store.readPending('run', 10, 0)).map((r) => r.clock), ['unsynced', 'synced']);
    await assert.rejects(store.append([{ ...rec('run', 2, 2), clock: 'maybe' as never }]), /records\[0\]\.clock must be one of synced, unsynced, unknown/);
  } finally {
    await store.close();
  }
});

test('append writes the same rows whatever rowsPerInsert is, and refuses a value SQLite could not bind', async () => {
  const { logger } = captureLogger();
  const dir = mkdtempSync(join(tmpdir(), 'store-rows-'));
  const input = Array.from({ length: 7 }, (_, i) => ({ stream: i % 2 ? 'a' : 'b', priority: 1, time: 1_700_000_000_000 + i, mono: i, data: { i } }));
  const read = async (rowsPerInsert: number) => {
    const store = await StreamStore.open(join(dir, `s${rowsPerInsert}.sqlite`), { owner: true, logger, rowsPerInsert });
    try {
      const assigned = await store.append(input);
      return { assigned, a: await store.readPending('a', 10, 0), b: await store.readPending('b', 10, 0), stats: (await store.stats()).streams };
    } finally {
      await store.close();
    }
  };
  const one = await read(1);
  const three = await read(3);
  assert.deepEqual(three, one);
  assert.equal(one.a.length + one.b.length, 7);
  await assert.rejects(StreamStore.open(join(dir, 'x.sqlite'), { owner: true, logger, rowsPerInsert: 5000 }), /rowsPerInsert must be at most 4000/);
});
