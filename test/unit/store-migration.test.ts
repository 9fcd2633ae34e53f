import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sqlite3 from 'sqlite3';
import { STORE_SCHEMA_VERSION, StoreSchemaError, StreamStore } from '../../components/shared/store';
import { captureLogger, type LogEntry } from '../helpers/capture-logger';
import { rawAll } from '../helpers/raw-sqlite';

// The schema of store version 1, frozen here as that version shipped it, so these tests keep
// checking real version-1 files whatever the module's own SQL becomes.
const V1_SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS streams (
  stream TEXT PRIMARY KEY,
  next_seq INTEGER NOT NULL,
  watermark INTEGER NOT NULL DEFAULT 0,
  backlog_records INTEGER NOT NULL DEFAULT 0,
  backlog_bytes INTEGER NOT NULL DEFAULT 0,
  unsent_records INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
  id INTEGER PRIMARY KEY,
  stream TEXT NOT NULL,
  seq INTEGER NOT NULL,
  time INTEGER NOT NULL,
  mono REAL NOT NULL,
  priority INTEGER NOT NULL,
  data TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  sent_at INTEGER,
  UNIQUE (stream, seq)
);
CREATE INDEX IF NOT EXISTS records_eviction ON records (priority, id, bytes);
CREATE TABLE IF NOT EXISTS drops (
  stream TEXT NOT NULL,
  reason TEXT NOT NULL,
  count INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  first_seq INTEGER NOT NULL,
  last_seq INTEGER NOT NULL,
  PRIMARY KEY (stream, reason)
) WITHOUT ROWID;
`;

const T0 = 1_700_000_000_000;

function tempPath(): string {
  return join(mkdtempSync(join(tmpdir(), 'store-migration-')), 'store.db');
}

function exec(path: string, sql: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const db = new sqlite3.Database(path, (openError) => {
      if (openError) return reject(openError);
      db.exec(sql, (error: Error | null) => {
        db.close(() => (error ? reject(error) : resolvePromise()));
      });
    });
  });
}


async function metaValue(path: string, key: string): Promise<string | null | undefined> {
  return (await rawAll<{ value: string | null }>(path, `SELECT value FROM meta WHERE key = '${key}'`))[0]?.value;
}

/** A version-1 file as version 1 left it: WAL mode, its schema, its meta rows, plus `rows` SQL. */
async function createV1File(path: string, rows: string, previousEpoch: string | null = null): Promise<string> {
  const epoch = randomUUID();
  await exec(
    path,
    `PRAGMA journal_mode = WAL; ${V1_SCHEMA_SQL}
     BEGIN;
     INSERT INTO meta (key, value) VALUES ('schema_version', '1'), ('epoch', '${epoch}'), ('created_at', '2024-01-01T00:00:00.000Z'),
       ('previous_epoch', ${previousEpoch === null ? 'NULL' : `'${previousEpoch}'`});
     ${rows}
     COMMIT;`,
  );
  return epoch;
}

/** `count` records of `stream` with seqs from..from+count-1 and `pad` bytes of padding, counters left to the caller. */
function insertRecords(stream: string, from: number, count: number, priority: number, pad = 10): string {
  return `WITH RECURSIVE n(i) AS (SELECT ${from} UNION ALL SELECT i + 1 FROM n WHERE i < ${from + count - 1})
    INSERT INTO records (stream, seq, time, mono, priority, data, bytes, sent_at)
      SELECT '${stream}', i, ${T0} + i, i, ${priority}, '{"p":"' || substr(hex(zeroblob(${pad})), 1, ${pad}) || '"}', ${pad + 8}, NULL FROM n;`;
}

/** motor: seqs 1..10 assigned, 1..2 acked, 5..6 and 9..10 evicted by the byte cap; run: 1..3 present, never dropped. */
const V1_ROWS = `
  ${insertRecords('motor', 3, 2, 1)}
  ${insertRecords('motor', 7, 2, 1)}
  ${insertRecords('run', 1, 3, 2)}
  INSERT INTO streams VALUES ('motor', 11, 2, 4, 72, 4), ('run', 4, 0, 3, 54, 3);
  INSERT INTO drops VALUES ('motor', 'byte-cap', 4, 72, 5, 10);
`;

async function open(path: string, owner = true): Promise<{ store: StreamStore; entries: LogEntry[] }> {
  const { logger, entries } = captureLogger();
  return { store: await StreamStore.open(path, { owner, logger }), entries };
}

test('a version-1 file is migrated in place: same epoch and records, its byte-cap drops become exact unreported ranges', async () => {
  const path = tempPath();
  const epoch = await createV1File(path, V1_ROWS);
  const { store, entries } = await open(path);
  try {
    assert.equal(STORE_SCHEMA_VERSION, 2);
    assert.equal(await metaValue(path, 'schema_version'), '2');
    assert.equal(store.epoch, epoch);
    const migrated = entries.find((e) => e.message === 'stream store migrated');
    assert.deepEqual([migrated?.from, migrated?.to, migrated?.dropRanges], [1, 2, 2]);
    assert.equal(
      entries.some((e) => e.message === 'new epoch'),
      false,
      'no new epoch',
    );

    const drops = await store.unreportedDrops(10);
    assert.deepEqual(
      drops.map((d) => [d.stream, d.epoch, d.reason, d.seqFrom, d.seqTo, d.count]),
      [
        ['motor', epoch, 'byte-cap', 5, 6, 2],
        ['motor', epoch, 'byte-cap', 9, 10, 2],
      ],
    );
    const stats = await store.stats();
    assert.deepEqual(
      stats.streams.map((s) => [s.stream, s.appended, s.watermark, s.backlogRecords, s.unsentRecords, s.drops]),
      [
        ['motor', 10, 2, 4, 4, { 'byte-cap': 4 }],
        ['run', 3, 0, 3, 3, {}],
      ],
    );
    assert.equal(await store.previousEpochInfo(), null);
    assert.deepEqual(await store.append([{ stream: 'motor', priority: 1, time: T0 + 100, mono: 0, data: {} }]), [{ stream: 'motor', seq: 11 }]);
    assert.deepEqual((await store.requeueRange('motor', epoch, 1, 13)).missing, [
      { from: 1, to: 2, reason: 'deleted-after-ack' },
      { from: 5, to: 6, reason: 'byte-cap' },
      { from: 9, to: 10, reason: 'byte-cap' },
      { from: 12, to: 13, reason: 'not-sampled' },
    ]);
    // The version-2 parts work on the migrated file: the age cap uses the new index.
    const aged = await store.enforceRetention({ maxBytes: Number.MAX_SAFE_INTEGER, maxAgeMs: 1, now: T0 + 4 + 1 });
    assert.deepEqual(
      aged.ranges.map((r) => [r.stream, r.seqFrom, r.seqTo]),
      [
        ['motor', 3, 3],
        ['run', 1, 3],
      ],
    );
    const indexes = await rawAll<{ name: string }>(path, "SELECT name FROM sqlite_master WHERE type = 'index' AND name IN ('records_age', 'drop_log_unreported')");
    assert.equal(indexes.length, 2);
  } finally {
    await store.close();
  }
  // A second open finds version 2 and migrates nothing.
  const again = await open(path, false);
  assert.equal(
    again.entries.some((e) => e.message === 'stream store migrated'),
    false,
  );
  assert.equal((await again.store.unreportedDrops(10)).length, 2 + 2);
  await again.store.close();
});

test('three processes opening one version-1 file at once migrate it exactly once', async () => {
  const path = tempPath();
  await createV1File(path, V1_ROWS);
  const opened = await Promise.all([open(path, false), open(path, true), open(path, false)]);
  try {
    assert.equal(opened.flatMap((o) => o.entries).filter((e) => e.message === 'stream store migrated').length, 1);
    assert.equal((await rawAll<{ n: number }>(path, 'SELECT COUNT(*) AS n FROM drop_log'))[0]?.n, 2);
  } finally {
    for (const o of opened) await o.store.close();
  }
});

test('a version-1 file that followed a quarantine gets an epoch report of unknown size, reported once', async () => {
  const path = tempPath();
  const old = randomUUID();
  await createV1File(path, '', old);
  const { store } = await open(path);
  try {
    assert.equal(store.previousEpoch, old);
    assert.deepEqual(await store.previousEpochInfo(), { epoch: old, streams: null, reportedAt: null });
    await store.markPreviousEpochReported(1234);
    await store.markPreviousEpochReported(5678);
    assert.deepEqual(await store.previousEpochInfo(), { epoch: old, streams: null, reportedAt: 1234 });
  } finally {
    await store.close();
  }
});

test('a migration that fails halfway leaves the file at version 1 with its data', async () => {
  const path = tempPath();
  // A stray drop_log without an epoch column lets the version-2 indexes be created, then makes
  // the copy of the version-1 drops into it fail.
  await createV1File(path, `${V1_ROWS} CREATE TABLE drop_log (id INTEGER PRIMARY KEY, stream, seq_from, reported_at);`);
  const { logger } = captureLogger();
  await assert.rejects(StreamStore.open(path, { owner: true, logger }), /no column named epoch/);
  assert.equal(await metaValue(path, 'schema_version'), '1');
  assert.equal(await metaValue(path, 'previous_streams'), undefined, 'no version-2 meta key');
  const indexes = await rawAll<{ name: string }>(path, "SELECT name FROM sqlite_master WHERE name = 'records_age'");
  assert.deepEqual(indexes, [], 'the age index was rolled back too');
  assert.equal((await rawAll<{ n: number }>(path, 'SELECT COUNT(*) AS n FROM records'))[0]?.n, 7);
});

test('a newer or garbage schema version is refused and the file left untouched', async () => {
  for (const version of ['3', 'banana', '']) {
    const path = tempPath();
    await createV1File(path, V1_ROWS);
    await exec(path, `PRAGMA journal_mode = DELETE; UPDATE meta SET value = '${version}' WHERE key = 'schema_version';`);
    const hash = createHash('sha256').update(readFileSync(path)).digest('hex');
    const { logger } = captureLogger();
    await assert.rejects(StreamStore.open(path, { owner: true, logger }), (error: unknown) => {
      assert.ok(error instanceof StoreSchemaError, version);
      assert.equal(error.found, version);
      assert.match(error.message, /this build expects version 2 \(and migrates version 1\)/);
      return true;
    });
    assert.equal(createHash('sha256').update(readFileSync(path)).digest('hex'), hash, version);
  }
});

test('on a migrated file (no auto_vacuum) the disk guard frees pages inside the file so it stops growing', async () => {
  const path = tempPath();
  await createV1File(
    path,
    `${insertRecords('raw', 1, 3000, 0, 500)}
     INSERT INTO streams SELECT 'raw', 3001, 0, COUNT(*), SUM(bytes), COUNT(*) FROM records;`,
  );
  const { store } = await open(path);
  try {
    assert.deepEqual(await rawAll(path, 'PRAGMA auto_vacuum'), [{ auto_vacuum: 0 }]);
    await store.checkpoint();
    const mainBefore = statSync(path).size;
    const minFree = 10_000_000;
    const shortBy = 300_000;
    // The filesystem's own free space does not move: nothing the store deletes is handed back.
    const result = await store.enforceRetention({ maxBytes: Number.MAX_SAFE_INTEGER, minFreeBytes: minFree, freeBytes: () => minFree - shortBy });
    assert.ok(result.dropped > 0);
    assert.ok(result.droppedBytes < 2 * shortBy, `${result.droppedBytes}`);
    assert.ok(result.freeBytes !== null && result.freeBytes >= minFree, 'free pages inside the file count as free');
    assert.equal(statSync(path).size, mainBefore, 'the main file keeps its size');
    const [{ freelist_count: freePages }] = (await rawAll<{ freelist_count: number }>(path, 'PRAGMA freelist_count')) as [{ freelist_count: number }];
    assert.ok(freePages * 4096 >= shortBy);

    // Nothing more goes on the next run, and new records fill the freed pages instead of growing the file.
    assert.equal((await store.enforceRetention({ maxBytes: Number.MAX_SAFE_INTEGER, minFreeBytes: minFree, freeBytes: () => minFree - shortBy })).dropped, 0);
    await store.append(Array.from({ length: 200 }, (_, i) => ({ stream: 'raw', priority: 0, time: T0, mono: i, data: { pad: 'y'.repeat(500) } })));
    await store.checkpoint();
    assert.equal(statSync(path).size, mainBefore, 'the appends reused free pages');
  } finally {
    await store.close();
  }
});
