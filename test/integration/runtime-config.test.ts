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

test('a validity report nobody asked for, and one sent after the validation timeout, are refused with InvalidArgumentsError', { timeout: 20_000 }, async () => {
  const fixture = await startRuntime(
    [testRecipe('test.Late', peerRun('validator late:2500'), {}, { ComponentConfiguration: { DefaultConfiguration: { accessControl: {}, rate: 1 } } })],
    { deployments: { settleMs: 300, validationTimeoutSec: 1 } },
  );
  const cli = await cliClient(fixture);
  try {
    const work = fixture.workOf('test.Late');
    await waitFor('subscribed', () => existsSync(join(work, 'subscribed')));
    const unasked = await waitFor('unasked-report.json', () => readJsonIfExists<{ ok: boolean; kind?: string; error?: string }>(join(work, 'unasked-report.json')));
    assert.equal(unasked.ok, false, 'a report for a deployment that asked nothing is refused');
    assert.equal(unasked.kind, 'service', 'as a modeled error (InvalidArgumentsError on the wire)');
    assert.match(String(unasked.error), /Validation request either timed out or was never made/);

    const deployment = await deployAndWait(cli, { componentToConfiguration: { 'test.Late': { MERGE: { rate: 2 } } } });
    assert.equal(deployment.deploymentStatusDetails?.detailedDeploymentStatus, 'FAILED_NO_STATE_CHANGE', 'the answer came too late');
    const late = await waitFor('the late report outcome', () =>
      readJsonLines<Line & { reportError?: string; reportOk?: string; kind?: string }>(join(work, 'validate-events.jsonl')).find((l) => l.reportError !== undefined || l.reportOk !== undefined),
    );
    assert.equal(late.reportOk, undefined, 'the late ACCEPTED report must not be taken');
    assert.equal(late.kind, 'service');
    assert.match(String(late.reportError), /Validation request either timed out or was never made/);
    assert.equal((await cli.getConfiguration(['rate'], 'test.Late')).rate, 1, 'the late ACCEPTED changed nothing');
  } finally {
    await cli.close();
    await fixture.stop();
  }
});

test('SubscribeToConfigurationUpdate keeps reporting on a key that one deployment removes and a later one creates again (the runtime follows the path; the nucleus watcher goes with the node)', { timeout: 20_000 }, async () => {
  const recipe = testRecipe('test.Watch', peerRun('config-watcher extra'), {}, { ComponentConfiguration: { DefaultConfiguration: { accessControl: {}, rate: 1 } } });
  // `extra` has no default, so a RESET removes it.
  const fixture = await startRuntime([recipe], { ...fast, configurationMerge: { 'test.Watch': { extra: { level: 1 } } } });
  const cli = await cliClient(fixture);
  try {
    const work = fixture.workOf('test.Watch');
    await waitFor('the watcher to subscribe', () => existsSync(join(work, 'subscribed')));
    const events = () => readJsonLines<Line & { keyPath: string[]; value?: unknown; error?: string }>(join(work, 'config-events.jsonl'));
    const removed = await deployAndWait(cli, { componentToConfiguration: { 'test.Watch': { RESET: ['/extra'] } } });
    assert.equal(removed.status, 'SUCCEEDED');
    const removal = await waitFor('the removal event', () => (events().length >= 1 ? events() : undefined));
    assert.deepEqual(removal[0].keyPath.slice(0, 1), ['extra']);
    assert.match(String(removal[0].error), /not found/, 'the key is gone when the watcher looks');

    const created = await deployAndWait(cli, { componentToConfiguration: { 'test.Watch': { MERGE: { extra: { level: 2 } } } } });
    assert.equal(created.status, 'SUCCEEDED');
    const after = await waitFor('an event for the new key', () => events().find((e, i) => i >= removal.length && e.value !== undefined));
    assert.deepEqual(after.keyPath, ['extra', 'level']);
    assert.deepEqual(after.value, { level: 2 });
  } finally {
    await cli.close();
    await fixture.stop();
  }
});

test('a deployment that changes a validating and a non-validating component waits only for the one it asked, and applies both (the nucleus would wait for both and time out)', { timeout: 20_000 }, async () => {
  const defaults = { ComponentConfiguration: { DefaultConfiguration: { accessControl: {}, rate: 1 } } };
  const fixture = await startRuntime([testRecipe('test.Asks', peerRun('validator accept'), {}, defaults), testRecipe('test.Plain', peerRun('starts plain'), {}, defaults)], {
    deployments: { settleMs: 300, validationTimeoutSec: 15 },
  });
  const cli = await cliClient(fixture);
  try {
    for (const name of ['test.Asks', 'test.Plain']) await waitFor(`${name} up`, () => existsSync(join(fixture.workOf(name), 'subscribed')));
    const deployment = await deployAndWait(cli, { componentToConfiguration: { 'test.Asks': { MERGE: { rate: 2 } }, 'test.Plain': { MERGE: { rate: 3 } } } }, 10_000);
    assert.equal(deployment.status, 'SUCCEEDED', JSON.stringify(deployment.deploymentStatusDetails));
    assert.equal((await cli.getConfiguration(['rate'], 'test.Asks')).rate, 2);
    assert.equal((await cli.getConfiguration(['rate'], 'test.Plain')).rate, 3);
    assert.equal(readJsonLines(join(fixture.workOf('test.Asks'), 'validate-events.jsonl')).length, 1, 'the validating component was asked');
  } finally {
    await cli.close();
    await fixture.stop();
  }
});
