import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GreengrassIpc } from '../../components/shared/ipc';
import { createLogger } from '../../components/shared/logger';
import { peerRun, readJsonLines, startRuntime, testRecipe, waitFor, type RuntimeFixture } from '../helpers/runtime-fixture';

// Lifecycle behaviour deployments depend on: HARD dependency restarts, UpdateState ERRORED,
// and a deployment reinstalling a BROKEN component.

interface Line {
  pid: number;
  at: number;
  label?: string;
}

async function cliClient(fixture: RuntimeFixture): Promise<GreengrassIpc> {
  const info = JSON.parse(readFileSync(join(fixture.root, 'gg', 'cli_ipc_info', 'ipc.json'), 'utf8')) as { socketPath: string; token: string };
  const logger = createLogger('test-cli');
  logger.level = 'error';
  return GreengrassIpc.connect({ logger, socketPath: info.socketPath, authToken: info.token, connectDeadlineMs: 10_000 });
}

const starts = (fixture: RuntimeFixture, name: string) => readJsonLines<Line>(join(fixture.workOf(name), 'starts.jsonl'));

test('restarting a HARD dependency restarts its dependents after it runs again; a SOFT dependent keeps running', { timeout: 20_000 }, async () => {
  const transitions: string[] = [];
  const fixture = await startRuntime(
    [
      testRecipe('test.Base', peerRun('starts base')),
      testRecipe('test.Hard', peerRun('starts hard'), {}, { ComponentDependencies: { 'test.Base': { DependencyType: 'HARD' } } }),
      testRecipe('test.Soft', peerRun('starts soft'), {}, { ComponentDependencies: { 'test.Base': { DependencyType: 'SOFT' } } }),
    ],
    { onComponentState: (name, state) => transitions.push(`${name.slice(5)}:${state}`) },
  );
  const cli = await cliClient(fixture);
  try {
    for (const name of ['test.Base', 'test.Hard', 'test.Soft']) await waitFor(`${name} up`, () => existsSync(join(fixture.workOf(name), 'subscribed')));
    const from = transitions.length;
    await cli.restartComponent('test.Base');
    await waitFor('the HARD dependent to start again', () => starts(fixture, 'test.Hard').length >= 2);
    await waitFor('test.Hard RUNNING', () => fixture.runtime.status().components['test.Hard'].state === 'RUNNING');
    await new Promise((r) => setTimeout(r, 500));
    const after = transitions.slice(from);
    const at = (entry: string, fromIndex = 0) => after.indexOf(entry, fromIndex);
    const baseNotReady = at('Base:INSTALLED');
    assert.ok(baseNotReady >= 0, after.join(' '));
    assert.ok(at('Hard:STOPPING') > baseNotReady, `the dependent stops once its dependency is not ready: ${after.join(' ')}`);
    const baseRunning = at('Base:RUNNING', baseNotReady);
    assert.ok(at('Hard:STARTING', baseNotReady) > baseRunning, `and starts again only after the dependency runs: ${after.join(' ')}`);
    assert.ok(!after.some((t) => t.startsWith('Soft:')), `a SOFT dependent is left alone: ${after.join(' ')}`);
    assert.equal(starts(fixture, 'test.Soft').length, 1);
    assert.equal(starts(fixture, 'test.Hard').length, 2, 'restarted exactly once');
  } finally {
    await cli.close();
    await fixture.stop();
  }
});

test('UpdateState ERRORED runs Recover, stops and restarts the component, and counts towards BROKEN', { timeout: 20_000 }, async () => {
  const recipe = testRecipe('test.Reporter', peerRun('report-errored r'));
  (recipe.Manifests as Array<{ Lifecycle: Record<string, unknown> }>)[0].Lifecycle.Recover = 'echo recovered >> recover.log';
  const fixture = await startRuntime([recipe], { restartDelayMs: 50 });
  try {
    const lines = await waitFor('a second start', () => (starts(fixture, 'test.Reporter').length >= 2 ? starts(fixture, 'test.Reporter') : undefined));
    assert.notEqual(lines[0].pid, lines[1].pid, 'a new process');
    assert.equal(readFileSync(join(fixture.workOf('test.Reporter'), 'recover.log'), 'utf8').trim(), 'recovered');
    await waitFor('RUNNING again', () => fixture.runtime.status().components['test.Reporter'].state === 'RUNNING');
    const status = fixture.runtime.status().components['test.Reporter'];
    assert.equal(status.errors, 1);
    assert.equal(status.restarts, 1);
  } finally {
    await fixture.stop();
  }
});

test('a deployment reinstalls a BROKEN component, and its HARD dependent that was waiting starts', { timeout: 20_000 }, async () => {
  // test.Flaky's Install fails until the file "fixed" exists in its work folder: three install
  // errors make it BROKEN; its HARD dependent waits, INSTALLED.
  const flaky = testRecipe('test.Flaky', peerRun('starts flaky'));
  (flaky.Manifests as Array<{ Lifecycle: Record<string, unknown> }>)[0].Lifecycle.Install = 'test -f fixed';
  const fixture = await startRuntime([flaky, testRecipe('test.Dependent', peerRun('starts dependent'), {}, { ComponentDependencies: { 'test.Flaky': { DependencyType: 'HARD' } } })], {
    restartDelayMs: 20,
    deployments: { settleMs: 300 },
  });
  const cli = await cliClient(fixture);
  try {
    await waitFor('BROKEN', () => fixture.runtime.status().components['test.Flaky'].state === 'BROKEN');
    await waitFor('the dependent waiting', () => fixture.runtime.status().components['test.Dependent'].state === 'INSTALLED');
    writeFileSync(join(fixture.workOf('test.Flaky'), 'fixed'), 'yes');
    const id = await cli.createLocalDeployment({});
    let final;
    for (;;) {
      final = await cli.getLocalDeploymentStatus(id);
      if (final.status === 'SUCCEEDED' || final.status === 'FAILED') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(final.status, 'SUCCEEDED', JSON.stringify(final));
    assert.equal(fixture.runtime.status().components['test.Flaky'].state, 'RUNNING');
    assert.equal(fixture.runtime.status().components['test.Dependent'].state, 'RUNNING');
    await waitFor('the dependent to start', () => starts(fixture, 'test.Dependent').length === 1);
  } finally {
    await cli.close();
    await fixture.stop();
  }
});
