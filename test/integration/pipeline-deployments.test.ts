import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { auditArchive } from '../../cloud/audit';
import { LocalFolderArchive } from '../../cloud/archive';
import { GreengrassIpc } from '../../components/shared/ipc';
import { createLogger } from '../../components/shared/logger';
import { Pipeline } from '../../scripts/pipeline';
import { DIST, PROJECT_ROOT, tempRoot, waitFor } from '../helpers/runtime-fixture';

const ACQUISITION = 'com.elevator.SensorAcquisition';
const PUBLISHER = 'com.elevator.MqttPublisher';

/** The deploy CLI as a separate process; asynchronous, since this process hosts the broker. */
function deploy(root: string, args: string[]): Promise<{ status: number | null; output: string }> {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [join(DIST, 'scripts/deploy.js'), '--root', join(root, 'greengrass'), '--wait', '--timeout-sec', '120', ...args]);
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.on('close', (status) => resolvePromise({ status, output }));
  });
}

async function motorAppended(pipeline: Pipeline): Promise<number> {
  return (await pipeline.storeStats())?.streams.find((s) => s.stream === 'motor')?.appended ?? 0;
}

async function motorRate(pipeline: Pipeline, windowMs: number): Promise<number> {
  const before = await motorAppended(pipeline);
  await new Promise((r) => setTimeout(r, windowMs));
  return ((await motorAppended(pipeline)) - before) / (windowMs / 1000);
}

test('through a live configuration change, an invalid deployment and a component update, nothing is lost or stored twice', { timeout: 300_000 }, async () => {
  const root = tempRoot('dp-');
  // Samples until the deployments are done (requestStop), however slow the machine is.
  const pipeline = new Pipeline({ root, thingName: 'deploy-thing-01', drainTimeoutMs: 90_000, resume: false, timeScale: 20, logger: createLogger('deploy-test') });
  const running = pipeline.run();
  try {
    const status = () => pipeline.runtimeStatus()?.components ?? {};
    await waitFor('the publisher running', () => status()[PUBLISHER]?.state === 'RUNNING' && status()[ACQUISITION]?.state === 'RUNNING', 30_000);
    await new Promise((r) => setTimeout(r, 3_000));

    // 1. A configuration change applies live: five times the motor sampling, same process.
    const acquisitionPid = status()[ACQUISITION].pid;
    const rateBefore = await motorRate(pipeline, 3_000);
    const faster = join(root, 'faster.json');
    writeFileSync(faster, JSON.stringify({ simulator: { metricsIntervalMs: 200 } }));
    const change = await deploy(root, ['--merge', `${ACQUISITION}=${faster}`]);
    assert.equal(change.status, 0, change.output);
    await new Promise((r) => setTimeout(r, 500));
    const rateAfter = await motorRate(pipeline, 3_000);
    assert.ok(rateAfter > rateBefore * 2.5, `motor rate ${rateBefore}/s before, ${rateAfter}/s after`);
    assert.equal(status()[ACQUISITION].pid, acquisitionPid, 'not restarted');

    // 2. An invalid deployment is rejected by the component, with a reason; the old value stays.
    const invalid = join(root, 'invalid.json');
    writeFileSync(invalid, JSON.stringify({ maxEnvelopeBytes: 100 }));
    const rejected = await deploy(root, ['--merge', `${PUBLISHER}=${invalid}`]);
    assert.equal(rejected.status, 1, rejected.output);
    assert.match(rejected.output, /invalid configuration: \/maxEnvelopeBytes must be >= 4096/);
    const { socketPath, token } = JSON.parse(readFileSync(join(root, 'greengrass', 'cli_ipc_info', 'ipc.json'), 'utf8'));
    const cli = await GreengrassIpc.connect({ logger: createLogger('deploy-test-cli'), socketPath, authToken: token, connectDeadlineMs: 10_000 });
    try {
      assert.deepEqual(await cli.getConfiguration(['maxEnvelopeBytes'], PUBLISHER), { maxEnvelopeBytes: 120000 });
    } finally {
      await cli.close();
    }
    assert.match(readFileSync(join(root, 'greengrass', 'logs', `${PUBLISHER}.log`), 'utf8'), /deployment rejected: invalid configuration/);

    // 3. A new version of the publisher replaces the running one mid-stream.
    const recipes = join(root, 'recipes-0.1.1');
    mkdirSync(recipes);
    const recipe = readFileSync(join(PROJECT_ROOT, 'recipes', `${PUBLISHER}.yaml`), 'utf8').replace('ComponentVersion: "0.1.0"', 'ComponentVersion: "0.1.1"');
    writeFileSync(join(recipes, `${PUBLISHER}.yaml`), recipe);
    const publisherPid = status()[PUBLISHER].pid;
    const update = await deploy(root, ['--recipes', recipes, '--artifacts', join(PROJECT_ROOT, 'build', 'artifacts'), '--add', `${PUBLISHER}=0.1.1`]);
    assert.equal(update.status, 0, update.output);
    await waitFor('the new version running', () => status()[PUBLISHER]?.version === '0.1.1' && status()[PUBLISHER]?.state === 'RUNNING', 30_000);
    assert.notEqual(status()[PUBLISHER].pid, publisherPid);
    await new Promise((r) => setTimeout(r, 3_000));
  } finally {
    // Also on a failed assertion, so the pipeline drains and every process stops.
    pipeline.requestStop();
  }

  const summary = await running;
  assert.equal(summary.drained, true);
  assert.equal(summary.missing, 0);
  assert.equal(summary.archived, summary.produced);
  const audit = await auditArchive(new LocalFolderArchive(join(root, 'cloud-archive')));
  assert.equal(audit.duplicateRecords, 0);
});
