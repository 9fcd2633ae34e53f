import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { GreengrassIpc, describeIpcError } from '../../components/shared/ipc';
import { createLogger } from '../../components/shared/logger';
import { cliClient, deployAndWait, peerRun, readJsonIfExists, readJsonLines, startRuntime, testRecipe, waitFor } from '../helpers/runtime-fixture';

// Configuration over the SDK client: UpdateConfiguration, SubscribeToConfigurationUpdate,
// configuration-only deployments (MERGE/RESET) and validation (accept, reject, no answer).

interface Line {
  pid: number;
  at: number;
  [key: string]: unknown;
}


const fast = { deployments: { settleMs: 300 } };

test('UpdateConfiguration merges into its own configuration, refuses a stale timestamp and accessControl, and SubscribeToConfigurationUpdate reports each changed key', { timeout: 20_000 }, async () => {
  const recipe = testRecipe('test.Self', peerRun('config-self'), {}, {
    ComponentConfiguration: { DefaultConfiguration: { accessControl: {}, tuning: { rate: 1, burst: 2 } } },
  });
  const fixture = await startRuntime([recipe], fast);
  try {
    const work = fixture.workOf('test.Self');
    const result = await waitFor('update-result.json', () => readJsonIfExists<Record<string, { ok?: boolean; error?: string } & Record<string, unknown>>>(join(work, 'update-result.json')));
    assert.deepEqual(result.fresh, { ok: true });
    assert.equal(result.stale.ok, false);
    assert.match(String(result.stale.error), /Proposed timestamp is older than the config's latest modified timestamp/);
    assert.equal(result.forbidden.ok, false);
    assert.match(String(result.forbidden.error), /not allowed for following fields \[accessControl\]/);
    assert.deepEqual(result.created, { ok: true });
    assert.deepEqual(result.tuning, { rate: 5, burst: 2 }, 'the stale write changed nothing');
    assert.deepEqual(result.branch, { branch: { x: 1 } }, 'a missing key path is created');
    const events = await waitFor('two change events', () => {
      const lines = readJsonLines<Line>(join(work, 'config-events.jsonl'));
      return lines.length >= 2 ? lines : undefined;
    });
    assert.deepEqual(
      events.map((e) => e.keyPath),
      [
        ['tuning', 'rate'],
        ['fresh', 'branch', 'x'],
      ],
      'one event per changed key, with its path; nothing for the refused writes',
    );
    assert.deepEqual(fixture.runtime.component('test.Self')!.configuration().tuning, { rate: 5, burst: 2 });
  } finally {
    await fixture.stop();
  }
});

test('a configuration-only deployment applies RESET then MERGE, notifies SubscribeToConfigurationUpdate and does not restart the component', { timeout: 20_000 }, async () => {
  const recipe = testRecipe('test.Watch', peerRun('config-watcher tuning'), {}, {
    ComponentConfiguration: { DefaultConfiguration: { accessControl: {}, tuning: { rate: 1, burst: 2, mode: 'a' }, other: { x: 1 } } },
  });
  const fixture = await startRuntime([recipe], { ...fast, configurationMerge: { 'test.Watch': { tuning: { mode: 'custom', added: 9 } } } });
  const cli = await cliClient(fixture);
  try {
    const work = fixture.workOf('test.Watch');
    await waitFor('the watcher to subscribe', () => existsSync(join(work, 'subscribed')));
    const pid = fixture.runtime.status().components['test.Watch'].pid;
    const deployment = await deployAndWait(cli, {
      componentToConfiguration: { 'test.Watch': { RESET: ['/tuning/mode', '/tuning/added'], MERGE: { tuning: { rate: 10 }, other: { y: 2 } } } },
    });
    assert.equal(deployment.status, 'SUCCEEDED');
    assert.equal(deployment.deploymentStatusDetails?.detailedDeploymentStatus, 'SUCCESSFUL');
    assert.match(String(deployment.createdOn), /^\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2} UTC$/);
    const config = await cli.getConfiguration([], 'test.Watch');
    assert.deepEqual(config.tuning, { rate: 10, burst: 2, mode: 'a' }, 'mode back to its default, added removed (no default), rate merged');
    assert.deepEqual(config.other, { x: 1, y: 2 });
    const events = await waitFor('three change events', () => {
      const lines = readJsonLines<Line & { keyPath: string[]; value?: unknown; error?: string }>(join(work, 'config-events.jsonl'));
      return lines.length >= 3 ? lines : undefined;
    });
    const byKey = new Map(events.map((e) => [e.keyPath.join('/'), e]));
    assert.deepEqual([...byKey.keys()].sort(), ['tuning/added', 'tuning/mode', 'tuning/rate'], 'only keys under the subscribed path');
    assert.deepEqual(byKey.get('tuning/rate')!.value, { rate: 10 });
    assert.deepEqual(byKey.get('tuning/mode')!.value, { mode: 'a' });
    assert.match(String(byKey.get('tuning/added')!.error), /not found/);
    assert.equal(fixture.runtime.status().components['test.Watch'].pid, pid, 'same process: a configuration change does not restart');
    assert.equal(readJsonLines(join(work, 'starts.jsonl')).length, 1);

    const listed = await cli.listLocalDeployments();
    assert.ok(listed.some((d) => d.deploymentId === deployment.deploymentId && d.status === 'SUCCEEDED'));
    await assert.rejects(cli.getLocalDeploymentStatus('not-a-uuid'), (error) => /DeploymentId is a UUID/.test(describeIpcError(error)));
    // Only the CLI principal may deploy.
    const logger = createLogger('test-component');
    logger.level = 'error';
    const asComponent = await GreengrassIpc.connect({ logger, socketPath: fixture.runtime.socketPath, authToken: fixture.runtime.tokenFor('test.Watch')!, connectDeadlineMs: 10_000 });
    try {
      await assert.rejects(asComponent.createLocalDeployment({}), (error) => /not authorized/.test(describeIpcError(error)));
    } finally {
      await asComponent.close();
    }
  } finally {
    await cli.close();
    await fixture.stop();
  }
});

test('a deployment whose configuration a component rejects fails with the component message and changes nothing; an accepted one applies', { timeout: 20_000 }, async () => {
  const defaults = { ComponentConfiguration: { DefaultConfiguration: { accessControl: {}, rate: 1 } } };
  const fixture = await startRuntime(
    [testRecipe('test.Picky', peerRun('validator reject rate must be below 100'), {}, defaults), testRecipe('test.Easy', peerRun('validator accept'), {}, defaults)],
    fast,
  );
  const cli = await cliClient(fixture);
  try {
    for (const name of ['test.Picky', 'test.Easy']) await waitFor(`${name} subscribed`, () => existsSync(join(fixture.workOf(name), 'subscribed')));

    const accepted = await deployAndWait(cli, { componentToConfiguration: { 'test.Easy': { MERGE: { rate: 5 } } } });
    assert.equal(accepted.status, 'SUCCEEDED');
    assert.equal((await cli.getConfiguration(['rate'], 'test.Easy')).rate, 5);
    const easyAsked = readJsonLines<Line & { configuration: Record<string, unknown>; deploymentId: string }>(join(fixture.workOf('test.Easy'), 'validate-events.jsonl'));
    assert.equal(easyAsked.length, 1);
    assert.equal(easyAsked[0].deploymentId, accepted.deploymentId);
    assert.equal(easyAsked[0].configuration.rate, 5, 'the validator saw the proposed configuration');

    const rejected = await deployAndWait(cli, { componentToConfiguration: { 'test.Picky': { MERGE: { rate: 500 } }, 'test.Easy': { MERGE: { rate: 6 } } } });
    assert.equal(rejected.status, 'FAILED');
    assert.equal(rejected.deploymentStatusDetails?.detailedDeploymentStatus, 'FAILED_NO_STATE_CHANGE');
    assert.match(String(rejected.deploymentStatusDetails?.deploymentFailureCause), /name = test\.Picky, message = rate must be below 100/);
    assert.equal((await cli.getConfiguration(['rate'], 'test.Picky')).rate, 1, 'old configuration kept');
    assert.equal((await cli.getConfiguration(['rate'], 'test.Easy')).rate, 5, 'nothing changes anywhere');
    assert.equal(readJsonLines(join(fixture.workOf('test.Picky'), 'starts.jsonl')).length, 1);
  } finally {
    await cli.close();
    await fixture.stop();
  }
});

test('a validation request nobody answers fails the deployment after the validation timeout (nucleus default 20 s, 1.5 s here)', { timeout: 20_000 }, async () => {
  const fixture = await startRuntime(
    [testRecipe('test.Silent', peerRun('validator silent'), {}, { ComponentConfiguration: { DefaultConfiguration: { accessControl: {}, rate: 1 } } })],
    { deployments: { settleMs: 300, validationTimeoutSec: 1.5 } },
  );
  const cli = await cliClient(fixture);
  try {
    await waitFor('subscribed', () => existsSync(join(fixture.workOf('test.Silent'), 'subscribed')));
    const started = Date.now();
    const deployment = await deployAndWait(cli, { componentToConfiguration: { 'test.Silent': { MERGE: { rate: 2 } } } });
    const elapsed = Date.now() - started;
    assert.equal(deployment.status, 'FAILED');
    assert.equal(deployment.deploymentStatusDetails?.detailedDeploymentStatus, 'FAILED_NO_STATE_CHANGE');
    assert.match(String(deployment.deploymentStatusDetails?.deploymentFailureCause), /Error while waiting for validation report for one or more components/);
    assert.ok(elapsed >= 1400, `waited for the timeout (${elapsed} ms)`);
    assert.equal((await cli.getConfiguration(['rate'], 'test.Silent')).rate, 1);
    assert.equal(readJsonLines(join(fixture.workOf('test.Silent'), 'validate-events.jsonl')).length, 1, 'it was asked');
  } finally {
    await cli.close();
    await fixture.stop();
  }
});
