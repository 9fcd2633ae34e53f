import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalFolderArchive } from '../../cloud/archive';
import type { WireRecord } from '../../components/shared/envelope';
import { createLogger } from '../../components/shared/logger';
import { Pipeline } from '../../scripts/pipeline';
import { tempRoot, waitFor } from '../helpers/runtime-fixture';

const FAKETIME = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1'].find((p) => existsSync(p));
const MISSING = 'SKIPPED: libfaketime is not installed (apt-get install faketime; .ci/run installs it), so the device clock cannot be stepped';
if (!FAKETIME) console.error(`\n*** ${MISSING} ***\n`);

test('device wall-clock jumps back and forward change neither order nor dedupe, and records say their clock was unsynced', { skip: FAKETIME ? false : MISSING, timeout: 120_000 }, async () => {
  const root = tempRoot('cj-');
  const clockFile = join(root, 'faketime-offset');
  writeFileSync(clockFile, '+0\n');
  const pipeline = new Pipeline({
    root,
    thingName: 'clock-thing-01',
    drainTimeoutMs: 60_000,
    resume: true,
    timeScale: 20,
    logger: createLogger('clock-jump-test'),
    runtimeEnv: { LD_PRELOAD: FAKETIME!, FAKETIME_TIMESTAMP_FILE: clockFile, FAKETIME_NO_CACHE: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1' },
  });
  const running = pipeline.run();
  // A pipeline that fails ends the waits below at once, with its own error.
  let ended: unknown;
  void running.then(() => (ended = new Error('the pipeline ended before the clock steps were done')), (error: unknown) => (ended = error));
  // Each step waits for motor records rather than for a time: on a loaded machine the components
  // may take seconds to start, and a step before the first record would show nothing.
  const motorAppended = async () => {
    if (ended) throw ended;
    return (await pipeline.storeStats())?.streams.find((s) => s.stream === 'motor')?.appended ?? 0;
  };
  try {
    await waitFor('motor records before the step back', async () => (await motorAppended()) >= 10, 60_000, 200);
    writeFileSync(clockFile, '-1h\n');
    const atStepBack = await motorAppended();
    await waitFor('motor records after the step back', async () => (await motorAppended()) >= atStepBack + 10, 60_000, 200);
    writeFileSync(clockFile, '+30m\n');
    const atStepForward = await motorAppended();
    await waitFor('motor records after the step forward', async () => (await motorAppended()) >= atStepForward + 10, 60_000, 200);
  } finally {
    // Stopped however the steps went, so no runtime outlives the test.
    pipeline.requestStop();
  }
  const summary = await running;
  assert.equal(summary.drained, true);
  assert.equal(summary.missing, 0);
  assert.equal(summary.archived, summary.produced);

  const archive = new LocalFolderArchive(join(root, 'cloud-archive'));
  const motor: WireRecord[] = [];
  for (const key of await archive.list('records/clock-thing-01/motor/')) motor.push(...JSON.parse((await archive.get(key))!.toString('utf8')).records);
  motor.sort((a, b) => a.seq - b.seq);
  assert.deepEqual(motor.map((r) => r.seq), Array.from({ length: motor.length }, (_, i) => i + 1), 'every seq once, in order');
  for (let i = 1; i < motor.length; i += 1) assert.ok(motor[i].mono > motor[i - 1].mono, `mono increases with seq at seq ${motor[i].seq}`);
  const backwards = motor.findIndex((r, i) => i > 0 && r.time < motor[i - 1].time - 30 * 60_000);
  assert.ok(backwards > 0, 'the wall time in the records shows the step back');
  assert.equal(motor[backwards].clock, 'unsynced', 'the first record after the step says its clock was unsynced');
  assert.ok(motor.slice(0, 5).every((r) => r.clock === 'synced' || r.clock === 'unknown'), 'records before the step are not marked unsynced');
});
