import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { StreamStore } from '../../components/shared/store';
import { captureLogger, type LogEntry } from '../helpers/capture-logger';
import { rawAll } from '../helpers/raw-sqlite';

function tempPath(): string {
  return join(mkdtempSync(join(tmpdir(), 'store-epoch-')), 'store.db');
}

async function open(path: string, owner = true): Promise<{ store: StreamStore; entries: LogEntry[] }> {
  const { logger, entries } = captureLogger();
  return { store: await StreamStore.open(path, { owner, logger }), entries };
}


/** A closed store: motor 1..3000 (nothing acked), run 1..100 with 1..40 acked. Returns its epoch. */
async function filledStore(path: string): Promise<string> {
  const { store } = await open(path);
  for (let batch = 0; batch < 6; batch += 1) {
    await store.append(Array.from({ length: 500 }, (_, i) => ({ stream: 'motor', priority: 1, time: 1_700_000_000_000 + i, mono: i, data: { i, pad: 'm'.repeat(150) } })));
  }
  await store.append(Array.from({ length: 100 }, (_, i) => ({ stream: 'run', priority: 2, time: 1_700_000_000_000 + i, mono: i, data: { i } })));
  await store.markSent('run', 1, 60, 1);
  await store.applyAck('run', store.epoch, 40);
  const epoch = store.epoch;
  await store.close();
  return epoch;
}

async function pageSize(path: string): Promise<number> {
  return (await rawAll<{ page_size: number }>(path, 'PRAGMA page_size'))[0]!.page_size;
}

function overwritePages(path: string, firstPage: number, pages: number, size: number): void {
  const bytes = readFileSync(path);
  const from = (firstPage - 1) * size;
  assert.ok(bytes.length >= from + pages * size, 'the pages exist');
  for (let offset = from; offset < from + pages * size; offset += 1) bytes[offset] = (offset * 131 + 7) & 0xff;
  writeFileSync(path, bytes);
}

function quarantined(path: string): string[] {
  return readdirSync(dirname(path)).filter((f) => /^store\.db\.corrupt-[0-9T.Z-]+$/.test(f));
}

test('a file with corrupt record pages but an intact streams table: the new epoch keeps the old loss window in its meta', async () => {
  const path = tempPath();
  const oldEpoch = await filledStore(path);
  const size = await pageSize(path);
  const roots = await rawAll<{ name: string; rootpage: number }>(path, "SELECT name, rootpage FROM sqlite_master WHERE name IN ('meta', 'streams')");
  const totalPages = readFileSync(path).length / size;
  assert.ok(totalPages > 100, `records span many pages (${totalPages})`);
  const middle = Math.floor(totalPages / 2);
  assert.ok(roots.every((r) => r.rootpage < middle - 5), 'meta and streams live near the start of the file');
  overwritePages(path, middle, 3, size);

  const { store, entries } = await open(path);
  try {
    assert.equal(quarantined(path).length, 1);
    assert.notEqual(store.epoch, oldEpoch);
    const window = [
      { stream: 'motor', appended: 3000, watermark: 0 },
      { stream: 'run', appended: 100, watermark: 40 },
    ];
    assert.deepEqual(await store.previousEpochInfo(), { epoch: oldEpoch, streams: window, reportedAt: null });
    const error = entries.find((e) => e.level === 'error');
    assert.match(String(error?.reason), /quick_check|SQLITE_CORRUPT/);
    assert.deepEqual(error?.oldStreams, window);

    await store.markPreviousEpochReported(1_700_000_123_000);
    assert.deepEqual(await store.previousEpochInfo(), { epoch: oldEpoch, streams: window, reportedAt: 1_700_000_123_000 });
    await store.markPreviousEpochReported(1_700_000_999_000);
    assert.equal((await store.previousEpochInfo())?.reportedAt, 1_700_000_123_000, 'the first report time is kept');
  } finally {
    await store.close();
  }
  // Persisted in the file, not in memory: another opener sees the same.
  const again = await open(path, false);
  try {
    assert.equal((await again.store.previousEpochInfo())?.epoch, oldEpoch);
    assert.equal((await again.store.previousEpochInfo())?.streams?.length, 2);
  } finally {
    await again.store.close();
  }
});

test('a corrupt streams table leaves the old epoch known and its streams null, never an empty list', async () => {
  const path = tempPath();
  const oldEpoch = await filledStore(path);
  const size = await pageSize(path);
  const [streams] = await rawAll<{ rootpage: number }>(path, "SELECT rootpage FROM sqlite_master WHERE name = 'streams'");
  overwritePages(path, streams!.rootpage, 1, size);

  const { store } = await open(path);
  try {
    assert.equal(quarantined(path).length, 1);
    assert.deepEqual(await store.previousEpochInfo(), { epoch: oldEpoch, streams: null, reportedAt: null });
  } finally {
    await store.close();
  }
});

test('a file that never replaced another has no previous epoch, and marking one reported changes nothing', async () => {
  const path = tempPath();
  const { store } = await open(path);
  try {
    assert.equal(await store.previousEpochInfo(), null);
    await store.markPreviousEpochReported(5);
    assert.equal(await store.previousEpochInfo(), null);
  } finally {
    await store.close();
  }
});
