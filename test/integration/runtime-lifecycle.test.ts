import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { peerRun, readJsonIfExists, startRuntime, testRecipe, waitFor } from '../helpers/runtime-fixture';

test('a component that keeps failing is restarted, and the third error within errorResetTime makes it BROKEN', { timeout: 30_000 }, async () => {
  const fixture = await startRuntime([testRecipe('test.Crashy', 'echo started >> starts.log; exit 3')], { restartDelayMs: 50 });
  try {
    await waitFor('BROKEN', () => fixture.runtime.status().components['test.Crashy'].state === 'BROKEN');
    const status = fixture.runtime.status().components['test.Crashy'];
    assert.equal(status.errors, 3);
    assert.equal(status.restarts, 2, 'two restarts after the first two errors, none after the third');
    const starts = readFileSync(join(fixture.workOf('test.Crashy'), 'starts.log'), 'utf8').trim().split('\n');
    assert.equal(starts.length, 3);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(fixture.runtime.status().components['test.Crashy'].state, 'BROKEN', 'a BROKEN component stays stopped');
  } finally {
    await fixture.stop();
  }
});

test('errors older than errorResetTime do not count towards BROKEN', { timeout: 30_000 }, async () => {
  // Fails four times, each 400 ms after the last: never 3 errors within a 300 ms errorResetTime.
  const script = 'n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n > n; if [ $n -le 4 ]; then sleep 0.4; exit 1; fi; sleep 600';
  const fixture = await startRuntime([testRecipe('test.Flaky', script)], { restartDelayMs: 10, errorResetTimeMs: 300 });
  try {
    await waitFor('fifth start', () => existsSync(join(fixture.workOf('test.Flaky'), 'n')) && readFileSync(join(fixture.workOf('test.Flaky'), 'n'), 'utf8').trim() === '5', 20_000);
    assert.equal(fixture.runtime.status().components['test.Flaky'].state, 'RUNNING');
  } finally {
    await fixture.stop();
  }
});

test('stop sends SIGTERM, waits out the Shutdown timeout, then kills a component that ignores it', { timeout: 30_000 }, async () => {
  const recipe = testRecipe('test.Stubborn', "trap 'echo got-term >> signals.log' TERM; echo up > up; while true; do sleep 0.1; done");
  (recipe.Manifests as Array<{ Lifecycle: Record<string, unknown> }>)[0].Lifecycle.Shutdown = { Script: 'echo shutdown-step >> signals.log', Timeout: 1 };
  const fixture = await startRuntime([recipe]);
  const work = fixture.workOf('test.Stubborn');
  await waitFor('the component to run', () => existsSync(join(work, 'up')));
  const started = Date.now();
  await fixture.stop();
  const elapsed = Date.now() - started;
  const log = readFileSync(join(work, 'signals.log'), 'utf8');
  assert.match(log, /shutdown-step/);
  assert.match(log, /got-term/, 'SIGTERM reached the script');
  assert.ok(elapsed >= 900, `waited for the 1 s shutdown timeout before killing (${elapsed} ms)`);
  assert.ok(elapsed < 10_000, `then killed it (${elapsed} ms)`);
  assert.equal(fixture.runtime.status().components['test.Stubborn'].pid, undefined);
});

test('GetConfiguration over the SDK follows the nucleus keyPath rules, and {configuration:/...} is interpolated', { timeout: 30_000 }, async () => {
  const recipe = testRecipe('test.Configured', peerRun('config "{configuration:/greeting}"'), {}, {
    ComponentConfiguration: { DefaultConfiguration: { greeting: 'hello', nested: { a: { b: 2 } } } },
  });
  const fixture = await startRuntime([recipe], { configurationMerge: { 'test.Configured': { nested: { a: { c: 3 } } } } });
  try {
    const result = await waitFor('config.json', () => readJsonIfExists<Record<string, unknown>>(join(fixture.workOf('test.Configured'), 'config.json')));
    assert.equal(result.argument, 'hello', 'the Run script got the interpolated configuration value');
    assert.deepEqual(result.leaf, { greeting: 'hello' }, 'a leaf comes back wrapped under its key');
    assert.deepEqual(result.nested, { a: { b: 2, c: 3 } }, 'an object comes back as is, with the deployment MERGE applied');
    assert.match(String(result.missing), /not found/);
    await waitFor('RUNNING reported', () => fixture.runtime.status().components['test.Configured'].state === 'RUNNING');
  } finally {
    await fixture.stop();
  }
});
