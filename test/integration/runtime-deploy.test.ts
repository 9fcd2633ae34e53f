import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliClient, deployAndWait, DIST, peerRun, readJsonLines, recipeFolder, startRuntime, testRecipe, waitFor } from '../helpers/runtime-fixture';

// Deployments of new component versions over the SDK client: notify-and-defer, update, rollback,
// and the deploy script.

interface Line {
  pid: number;
  at: number;
  label?: string;
  kind?: string;
  deploymentId?: string;
}


test('a new version is installed after the component deferred once; every subscriber got the pre-update events and then the post-update event', { timeout: 20_000 }, async () => {
  const deferMs = 1500;
  const fixture = await startRuntime([testRecipe('test.Deferrer', peerRun(`deferrer ${deferMs} v1`)), testRecipe('test.Observer', peerRun('deferrer 0 observer'))], {
    deployments: { settleMs: 500 },
  });
  const cli = await cliClient(fixture);
  try {
    for (const name of ['test.Deferrer', 'test.Observer']) await waitFor(`${name} subscribed`, () => existsSync(join(fixture.workOf(name), 'subscribed')));
    const v2 = testRecipe('test.Deferrer', peerRun(`deferrer ${deferMs} v2`), {}, { ComponentVersion: '1.1.0' });
    const deployment = await deployAndWait(cli, { recipeDirectoryPath: recipeFolder(fixture, 'v2', [v2]), rootComponentVersionsToAdd: { 'test.Deferrer': '1.1.0' } });
    assert.equal(deployment.status, 'SUCCEEDED', JSON.stringify(deployment));
    const work = fixture.workOf('test.Deferrer');
    const events = readJsonLines<Line>(join(work, 'update-events.jsonl'));
    const pre = events.filter((e) => e.kind === 'pre' && e.label === 'v1');
    assert.equal(pre.length, 2, 'notified, deferred, notified again after recheckAfterMs');
    assert.ok(pre[1].at - pre[0].at >= deferMs - 50, `the second notification came after the deferral (${pre[1].at - pre[0].at} ms)`);
    // The runtime counts v2 RUNNING once it is spawned; its own start line comes after Node loads.
    const starts = await waitFor('v2 wrote its start line', () => {
      const lines = readJsonLines<Line>(join(work, 'starts.jsonl'));
      return lines.length >= 2 ? lines : undefined;
    });
    assert.deepEqual(
      starts.map((s) => s.label),
      ['v1', 'v2'],
    );
    assert.ok(starts[1].at >= pre[1].at, 'the new version started only after the component stopped deferring');
    assert.equal(fixture.runtime.status().components['test.Deferrer'].version, '1.1.0');

    const observed = await waitFor('the post-update event', () => {
      const lines = readJsonLines<Line>(join(fixture.workOf('test.Observer'), 'update-events.jsonl'));
      return lines.some((l) => l.kind === 'post') ? lines : undefined;
    });
    assert.deepEqual(
      observed.map((l) => l.kind),
      ['pre', 'pre', 'post'],
      'an unaffected subscriber is notified too, every round, then told the update is done',
    );
    assert.ok(observed.every((l) => l.deploymentId === deployment.deploymentId));
    // Checked against the last notification round, not against v2's own start line, which waits
    // for Node to load: after that round the update ran and then settled for 500 ms, and only then
    // is post-update sent. Sent before the update, it would come within milliseconds of the round.
    assert.ok(observed[2].at >= pre[1].at + 400, `post-update came ${observed[2].at - pre[1].at} ms after the last pre-update round; the update and its 500 ms settle lie between them`);
    assert.equal(readJsonLines(join(fixture.workOf('test.Observer'), 'starts.jsonl')).length, 1, 'the observer was not restarted');
  } finally {
    await cli.close();
    await fixture.stop();
  }
});

test('a new version that keeps failing is rolled back: the old version and configuration return and the deployment is FAILED', { timeout: 20_000 }, async () => {
  const v1 = testRecipe('test.Svc', peerRun('starts v1'), {}, { ComponentConfiguration: { DefaultConfiguration: { accessControl: {}, level: 'info' } } });
  const fixture = await startRuntime([v1], { restartDelayMs: 50, deployments: { settleMs: 1000 } });
  const cli = await cliClient(fixture);
  try {
    const work = fixture.workOf('test.Svc');
    await waitFor('v1 running', () => existsSync(join(work, 'subscribed')));
    const v2 = testRecipe('test.Svc', 'echo v2 >> v2-starts.log; exit 1', {}, {
      ComponentVersion: '2.0.0',
      ComponentConfiguration: { DefaultConfiguration: { accessControl: {}, level: 'debug', added: true } },
    });
    // No failureHandlingPolicy in the request: the runtime's default is a cloud deployment's, ROLLBACK.
    const deployment = await deployAndWait(cli, {
      recipeDirectoryPath: recipeFolder(fixture, 'v2', [v2]),
      rootComponentVersionsToAdd: { 'test.Svc': '2.0.0' },
      componentToConfiguration: { 'test.Svc': { MERGE: { level: 'warn' } } },
    });
    assert.equal(deployment.status, 'FAILED');
    assert.equal(deployment.deploymentStatusDetails?.detailedDeploymentStatus, 'FAILED_ROLLBACK_COMPLETE');
    assert.match(String(deployment.deploymentStatusDetails?.deploymentFailureCause), /Service test\.Svc in broken state after deployment/);
    assert.equal(readFileSync(join(work, 'v2-starts.log'), 'utf8').trim().split('\n').length, 3, 'v2 failed three times: BROKEN');
    const status = fixture.runtime.status().components['test.Svc'];
    assert.equal(status.version, '1.0.0');
    assert.equal(status.state, 'RUNNING');
    const startsAfterRollback = await waitFor('the reinstalled v1 wrote its start line', () => {
      const lines = readJsonLines<Line>(join(work, 'starts.jsonl'));
      return lines.length >= 2 ? lines : undefined;
    });
    assert.deepEqual(
      startsAfterRollback.map((s) => s.label),
      ['v1', 'v1'],
      'v1 reinstalled and running again',
    );
    assert.deepEqual(await cli.getConfiguration([], 'test.Svc'), { accessControl: {}, level: 'info' }, 'configuration rolled back');
  } finally {
    await cli.close();
    await fixture.stop();
  }
});

test('scripts/deploy.js --wait prints the statuses and the failure cause and exits 1 when the deployment fails; bad usage exits 2', { timeout: 20_000 }, async () => {
  const recipe = testRecipe('test.Target', peerRun('validator reject never above 10'), {}, {
    ComponentConfiguration: { DefaultConfiguration: { accessControl: {}, rate: 1, mode: 'a' } },
  });
  const fixture = await startRuntime([recipe], { deployments: { settleMs: 300 }, configurationMerge: { 'test.Target': { mode: 'b' } } });
  const cli = await cliClient(fixture);
  const run = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [join(DIST, 'scripts', 'deploy.js'), '--root', join(fixture.root, 'gg'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
  try {
    await waitFor('validator subscribed', () => existsSync(join(fixture.workOf('test.Target'), 'subscribed')));
    const bad = join(fixture.root, 'bad.json');
    writeFileSync(bad, JSON.stringify({ rate: 50 }));
    const failed = await run(['--merge', `test.Target=${bad}`, '--wait', '--poll-ms', '100']);
    assert.equal(failed.code, 1, failed.stderr);
    assert.match(failed.stdout, /QUEUED/);
    assert.match(failed.stdout, /FAILED/);
    assert.match(failed.stdout, /never above 10/);
    assert.equal((await cli.getConfiguration(['rate'], 'test.Target')).rate, 1);

    const usage = await run(['--reset', 'test.Target=mode']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /not a JSON pointer/);
  } finally {
    await cli.close();
    await fixture.stop();
  }
});

test('scripts/deploy.js --wait exits 0 on SUCCEEDED', { timeout: 20_000 }, async () => {
  const recipe = testRecipe('test.Target', peerRun('validator accept'), {}, {
    ComponentConfiguration: { DefaultConfiguration: { accessControl: {}, rate: 1, mode: 'a' } },
  });
  const fixture = await startRuntime([recipe], { deployments: { settleMs: 300 }, configurationMerge: { 'test.Target': { mode: 'b' } } });
  const cli = await cliClient(fixture);
  try {
    await waitFor('validator subscribed', () => existsSync(join(fixture.workOf('test.Target'), 'subscribed')));
    const merge = join(fixture.root, 'merge.yaml');
    writeFileSync(merge, 'rate: 7\n');
    const result = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = spawn(
        process.execPath,
        [join(DIST, 'scripts', 'deploy.js'), '--root', join(fixture.root, 'gg'), '--merge', `test.Target=${merge}`, '--reset', 'test.Target=/mode', '--wait', '--poll-ms', '100'],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let stdout = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.on('exit', (code) => resolve({ code, stdout }));
    });
    assert.equal(result.code, 0, result.stdout);
    assert.match(result.stdout, /SUCCEEDED/);
    assert.match(result.stdout, /"detailedDeploymentStatus":"SUCCESSFUL"/);
    const config = await cli.getConfiguration([], 'test.Target');
    assert.equal(config.rate, 7);
    assert.equal(config.mode, 'a', 'RESET put the default back');
  } finally {
    await cli.close();
    await fixture.stop();
  }
});

test('a subscriber that does not answer in time holds the update for the update timeout (nucleus 60 s, 1 s here) and its late answer is refused; validation follows the notification', { timeout: 20_000 }, async () => {
  const fixture = await startRuntime(
    [
      testRecipe('test.Slow', peerRun('slow-answer 2500 slow')),
      testRecipe('test.Target', peerRun('starts v1')),
      testRecipe('test.Validating', peerRun('validator accept'), {}, { ComponentConfiguration: { DefaultConfiguration: { accessControl: {}, rate: 1 } } }),
    ],
    { deployments: { settleMs: 300, updatePolicyTimeoutSec: 1 } },
  );
  const cli = await cliClient(fixture);
  try {
    for (const name of ['test.Slow', 'test.Target', 'test.Validating']) await waitFor(`${name} up`, () => existsSync(join(fixture.workOf(name), 'subscribed')));
    const v2 = testRecipe('test.Target', peerRun('starts v2'), {}, { ComponentVersion: '1.1.0' });
    const requestedAt = Date.now();
    const deployment = await deployAndWait(cli, {
      recipeDirectoryPath: recipeFolder(fixture, 'v2', [v2]),
      rootComponentVersionsToAdd: { 'test.Target': '1.1.0' },
      componentToConfiguration: { 'test.Validating': { MERGE: { rate: 2 } } },
    });
    assert.equal(deployment.status, 'SUCCEEDED', JSON.stringify(deployment.deploymentStatusDetails));

    const slowEvents = () => readJsonLines<Line & { error?: string }>(join(fixture.workOf('test.Slow'), 'update-events.jsonl'));
    const refused = await waitFor('the late answer', () => slowEvents().find((e) => e.kind === 'answer-refused' || e.kind === 'answered'));
    assert.equal(refused.kind, 'answer-refused', 'an answer after the timeout is not taken');
    assert.match(String(refused.error), /Time limit to respond to PreComponentUpdateEvent exceeded/);
    const pre = slowEvents().filter((e) => e.kind === 'pre');
    assert.equal(pre.length, 1, 'nobody deferred, so there was one round');

    const validated = readJsonLines<Line>(join(fixture.workOf('test.Validating'), 'validate-events.jsonl'));
    assert.equal(validated.length, 1);
    // Measured from the request, an instant this test owns: the pre-update event's arrival at the
    // slow component may itself be late on a loaded machine.
    assert.ok(validated[0].at >= requestedAt + 1000, `validation came only after the notify round timed out (${validated[0].at - requestedAt} ms after the deployment was requested)`);
    const starts = await waitFor('v2 wrote its start line', () => {
      const lines = readJsonLines<Line>(join(fixture.workOf('test.Target'), 'starts.jsonl'));
      return lines.length >= 2 ? lines : undefined;
    });
    assert.deepEqual(
      starts.map((s) => s.label),
      ['v1', 'v2'],
    );
    assert.ok(starts[1].at >= validated[0].at, 'the update came after validation');
  } finally {
    await cli.close();
    await fixture.stop();
  }
});

test('the cli deployment profile skips the pre-update notification and does not roll back: FAILED_ROLLBACK_NOT_REQUESTED leaves the failed version', { timeout: 20_000 }, async () => {
  const fixture = await startRuntime([testRecipe('test.Target', peerRun('starts v1')), testRecipe('test.Observer', peerRun('deferrer 0 observer'))], {
    restartDelayMs: 50,
    deployments: { profile: 'cli', settleMs: 300 },
  });
  const cli = await cliClient(fixture);
  try {
    for (const name of ['test.Target', 'test.Observer']) await waitFor(`${name} up`, () => existsSync(join(fixture.workOf(name), 'subscribed')));
    const v2 = testRecipe('test.Target', peerRun('starts v2'), {}, { ComponentVersion: '2.0.0' });
    const good = await deployAndWait(cli, { recipeDirectoryPath: recipeFolder(fixture, 'v2', [v2]), rootComponentVersionsToAdd: { 'test.Target': '2.0.0' } });
    assert.equal(good.status, 'SUCCEEDED');
    await waitFor('v2 wrote its start line', () => readJsonLines<Line>(join(fixture.workOf('test.Target'), 'starts.jsonl')).length >= 2);
    const v3 = testRecipe('test.Target', 'echo v3 >> v3-starts.log; exit 1', {}, { ComponentVersion: '3.0.0' });
    const bad = await deployAndWait(cli, { recipeDirectoryPath: recipeFolder(fixture, 'v3', [v3]), rootComponentVersionsToAdd: { 'test.Target': '3.0.0' } });
    assert.equal(bad.status, 'FAILED');
    assert.equal(bad.deploymentStatusDetails?.detailedDeploymentStatus, 'FAILED_ROLLBACK_NOT_REQUESTED', 'DO_NOTHING is the CLI default');
    assert.match(String(bad.deploymentStatusDetails?.deploymentFailureCause), /Service test\.Target in broken state after deployment/);
    const status = fixture.runtime.status().components['test.Target'];
    assert.equal(status.version, '3.0.0', 'the failed version stays');
    assert.equal(status.state, 'BROKEN');
    assert.deepEqual(
      readJsonLines<Line>(join(fixture.workOf('test.Target'), 'starts.jsonl')).map((s) => s.label),
      ['v1', 'v2'],
    );
    assert.deepEqual(readJsonLines(join(fixture.workOf('test.Observer'), 'update-events.jsonl')), [], 'SKIP_NOTIFY_COMPONENTS: no pre- or post-update events');
  } finally {
    await cli.close();
    await fixture.stop();
  }
});

test('a request with failureHandlingPolicy DO_NOTHING is not rolled back, whatever the runtime default', { timeout: 20_000 }, async () => {
  const v1 = testRecipe('test.Svc', peerRun('starts v1'), {}, { ComponentConfiguration: { DefaultConfiguration: { accessControl: {}, level: 'info' } } });
  const fixture = await startRuntime([v1], { restartDelayMs: 50, deployments: { settleMs: 300 } });
  const cli = await cliClient(fixture);
  try {
    await waitFor('v1 up', () => existsSync(join(fixture.workOf('test.Svc'), 'subscribed')));
    const v2 = testRecipe('test.Svc', 'exit 1', {}, { ComponentVersion: '2.0.0', ComponentConfiguration: { DefaultConfiguration: { accessControl: {}, level: 'info' } } });
    const deployment = await deployAndWait(cli, {
      recipeDirectoryPath: recipeFolder(fixture, 'v2', [v2]),
      rootComponentVersionsToAdd: { 'test.Svc': '2.0.0' },
      componentToConfiguration: { 'test.Svc': { MERGE: { level: 'warn' } } },
      failureHandlingPolicy: 'DO_NOTHING',
    });
    assert.equal(deployment.deploymentStatusDetails?.detailedDeploymentStatus, 'FAILED_ROLLBACK_NOT_REQUESTED');
    assert.equal(fixture.runtime.status().components['test.Svc'].version, '2.0.0');
    assert.equal((await cli.getConfiguration(['level'], 'test.Svc')).level, 'warn', 'the new configuration stays');
  } finally {
    await cli.close();
    await fixture.stop();
  }
});

test('when the old version fails too after a rollback, the deployment is FAILED_UNABLE_TO_ROLLBACK', { timeout: 20_000 }, async () => {
  // The new version poisons the shared work folder, so the old version cannot run again.
  const v1 = testRecipe('test.Svc', 'echo v1 >> v1-starts.log; if [ -e poisoned ]; then exit 1; fi; exec sleep 600');
  const fixture = await startRuntime([v1], { restartDelayMs: 50, deployments: { settleMs: 300 } });
  const cli = await cliClient(fixture);
  try {
    await waitFor('v1 running', () => existsSync(join(fixture.workOf('test.Svc'), 'v1-starts.log')));
    const v2 = testRecipe('test.Svc', 'touch poisoned; exit 1', {}, { ComponentVersion: '2.0.0' });
    const deployment = await deployAndWait(cli, { recipeDirectoryPath: recipeFolder(fixture, 'v2', [v2]), rootComponentVersionsToAdd: { 'test.Svc': '2.0.0' } });
    assert.equal(deployment.status, 'FAILED');
    assert.equal(deployment.deploymentStatusDetails?.detailedDeploymentStatus, 'FAILED_UNABLE_TO_ROLLBACK');
    assert.match(String(deployment.deploymentStatusDetails?.deploymentFailureCause), /Service test\.Svc in broken state after deployment/);
    const status = fixture.runtime.status().components['test.Svc'];
    assert.equal(status.version, '1.0.0', 'the rollback put the old version back');
    assert.equal(status.state, 'BROKEN', 'and it could not run');
    assert.ok(readFileSync(join(fixture.workOf('test.Svc'), 'v1-starts.log'), 'utf8').trim().split('\n').length >= 2, 'v1 was started again by the rollback');
  } finally {
    await cli.close();
    await fixture.stop();
  }
});
