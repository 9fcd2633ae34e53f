import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import sqlite3 from 'sqlite3';
import { LOSS_JOURNAL_FILE } from '../../components/sensor-acquisition/loss-journal';
import { createLogger } from '../../components/shared/logger';
import { auditArchive } from '../../cloud/audit';
import { LocalFolderArchive } from '../../cloud/archive';
import { Pipeline, SENSOR_ACQUISITION } from '../../scripts/pipeline';
import { tempRoot, waitFor } from '../helpers/runtime-fixture';

// The whole device under the local runtime: the store refuses SensorAcquisition's appends (another
// connection holds SQLite's write lock), the component is SIGKILLed with samples only in memory,
// and its next process reports them. Without the loss journal they would vanish without a trace:
// never committed, never given a seq, so no audit could miss them.

/** Holds the store's write lock from outside, as a stuck writer would, until released. */
async function holdWriteLock(path: string): Promise<() => Promise<void>> {
  const db = await new Promise<sqlite3.Database>((resolve, reject) => {
    const opened = new sqlite3.Database(path, (error) => (error ? reject(error) : resolve(opened)));
  });
  await new Promise<void>((resolve, reject) => db.exec('BEGIN EXCLUSIVE', (error) => (error ? reject(error) : resolve())));
  return () => new Promise<void>((resolve) => db.exec('ROLLBACK', () => db.close(() => resolve())));
}

test('samples held in memory when SensorAcquisition is SIGKILLed during a store outage reach the cloud as a loss report', { timeout: 180_000 }, async () => {
  const root = tempRoot('loss-journal-');
  const pipeline = new Pipeline({ root, thingName: 'journal-thing-01', drainTimeoutMs: 60_000, resume: true, timeScale: 20, logger: createLogger('loss-journal-test') });
  const running = pipeline.run();
  let release: (() => Promise<void>) | undefined;
  let atKill: Record<string, number> = {};
  try {
    const motorAppended = async () => (await pipeline.storeStats())?.streams.find((s) => s.stream === 'motor')?.appended ?? 0;
    await waitFor('motor records', async () => (await motorAppended()) >= 10, 60_000, 200);
    const journal = join(dirname(pipeline.paths.store), LOSS_JOURNAL_FILE);
    release = await holdWriteLock(pipeline.paths.store);
    // An append waits out the store's 10 s busy timeout before it fails; then the journal is written.
    const named = await waitFor('the loss journal', () => (existsSync(journal) ? (JSON.parse(readFileSync(journal, 'utf8')) as { remaining: Record<string, number> }) : undefined), 60_000, 200);
    assert.ok((named.remaining.motor ?? 0) > 0, `the journal names motor samples: ${JSON.stringify(named)}`);
    const pid = pipeline.runtimeStatus()?.components[SENSOR_ACQUISITION]?.pid;
    assert.ok(pid, 'SensorAcquisition was running');
    process.kill(-pid, 'SIGKILL'); // its process group: the shell of its Run step and node
    await waitFor('the killed process gone', () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    }, 10_000, 50);
    // Final now: no append of the killed process succeeded since it was written.
    atKill = (JSON.parse(readFileSync(journal, 'utf8')) as { remaining: Record<string, number> }).remaining;
    await release();
    release = undefined;
    // The runtime starts it again; the new process records what the journal named as lost.
    const log = join(root, 'greengrass', 'logs', `${SENSOR_ACQUISITION}.log`);
    await waitFor('the loss recorded by the next process', () => existsSync(log) && readFileSync(log, 'utf8').includes('samples held in memory by the previous process were lost'), 60_000, 200);
    await waitFor('the journal gone once recorded', () => !existsSync(journal), 60_000, 200);
    // The loss report goes out on the publisher's next pass; the drain waits for records, not for
    // reports, so the test waits for the cloud to hold it before it stops the device.
    const archive = new LocalFolderArchive(join(root, 'cloud-archive'));
    await waitFor('the loss at the cloud', async () => ((await auditArchive(archive)).streams.find((s) => s.stream === 'motor')?.gone['acquisition-overflow'] ?? 0) > 0, 60_000, 500);
  } finally {
    await release?.();
    pipeline.requestStop();
  }
  const summary = await running;
  assert.equal(summary.drained, true);
  assert.equal(summary.missing, 0, 'every seq is archived or declared gone');
  // Exactly what the restarted process found, per stream, is what the cloud holds as lost: once.
  const logged = readFileSync(join(root, 'greengrass', 'logs', `${SENSOR_ACQUISITION}.log`), 'utf8')
    .split('\n')
    .filter((line) => line.includes('samples held in memory by the previous process were lost'))
    .map((line) => JSON.parse(line.slice(line.indexOf('{'))) as { streams: Record<string, number> });
  assert.equal(logged.length, 1, 'one process found the journal');
  assert.ok((logged[0].streams.motor ?? 0) > 0, JSON.stringify(logged[0]));
  assert.deepEqual(logged[0].streams, atKill, 'what it found is what the killed process held, as its journal named it');
  const audit = await auditArchive(new LocalFolderArchive(join(root, 'cloud-archive')));
  for (const [stream, count] of Object.entries(logged[0].streams)) {
    const archived = audit.streams.find((s) => s.stream === stream);
    assert.equal(archived?.gone['acquisition-overflow'], count, `${stream}: the cloud holds the loss with its reason, once: ${JSON.stringify(archived?.gone)}`);
  }
});
