import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { cliClient, deployAndWait, DIST, peerRun, readJsonLines, startRuntime, testRecipe, waitFor, type RuntimeFixture } from '../helpers/runtime-fixture';

// Deployments of new component versions over the SDK client: notify-and-defer, update, rollback,
// and the deploy script.

interface Line {
  pid: number;
  at: number;
  label?: string;
  kind?: string;
  deploymentId?: string;
}


/** A folder of recipes for a deployment's recipeDirectoryPath. */
function recipeFolder(fixture: RuntimeFixture, name: string, recipes: Array<Record<string, unknown>>): string {
  const folder = join(fixture.root, name);
  mkdirSync(folder, { recursive: true });
  for (const recipe of recipes) writeFileSync(join(folder, `${recipe.ComponentName}-${recipe.ComponentVersion}.yaml`), YAML.stringify(recipe));
  return folder;
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
    const starts = readJsonLines<Line>(join(work, 'starts.jsonl'));
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
    assert.ok(observed[2].at >= starts[1].at, 'post-update comes after the update');
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
    assert.deepEqual(
      readJsonLines<Line>(join(work, 'starts.jsonl')).map((s) => s.label),
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
