import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT, tempRoot, waitFor } from '../helpers/runtime-fixture';
import { LocalRuntime } from '../../runtime/runtime';
import { createLogger } from '../../components/shared/logger';

const BUFFER = 'com.elevator.StreamBuffer';

test('StreamBuffer moves a corrupt store aside at start, keeps its bytes, and begins a logged new epoch', { timeout: 60_000 }, async () => {
  const root = tempRoot('cs-');
  const work = join(root, 'gg', 'work', BUFFER);
  mkdirSync(work, { recursive: true });
  const garbage = Buffer.from('this is not a SQLite database, it is what a torn write left behind\n'.repeat(100));
  writeFileSync(join(work, 'stream-store.sqlite'), garbage);
  const runtime = new LocalRuntime({
    root: join(root, 'gg'),
    recipesDir: join(PROJECT_ROOT, 'recipes'),
    artifactsDir: join(PROJECT_ROOT, 'build', 'artifacts'),
    thingName: 'corrupt-thing',
    only: [BUFFER],
    logger: createLogger('test-runtime'),
  });
  try {
    await runtime.start();
    const log = join(root, 'gg', 'logs', `${BUFFER}.log`);
    const newEpochLine = await waitFor('the new epoch log line', () => {
      const text = existsSync(log) ? readFileSync(log, 'utf8') : '';
      return text.split('\n').find((line) => line.includes('"message":"new epoch"'));
    });
    const quarantined = readdirSync(work).filter((f) => f.startsWith('stream-store.sqlite.corrupt-') && !/-(wal|shm)$/.test(f));
    assert.equal(quarantined.length, 1, `one quarantined file in ${readdirSync(work).join(', ')}`);
    assert.deepEqual(readFileSync(join(work, quarantined[0])), garbage, 'the corrupt bytes are kept, not deleted');
    assert.match(readFileSync(log, 'utf8'), /stream store corrupt, quarantined/);
    assert.match(JSON.parse(newEpochLine).epoch, /^[0-9a-f-]{36}$/);
    assert.equal(runtime.status().components[BUFFER].state, 'RUNNING');
  } finally {
    await runtime.stop();
  }
});
