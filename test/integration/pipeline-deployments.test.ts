import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
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

/** The four recipes at a new version, pointing at the same built artifacts; Run replaced for a broken one. */
function recipesAt(root: string, version: string, only?: string[], brokenRun?: string): string {
  const folder = join(root, `recipes-${version}`);
  mkdirSync(folder);
  for (const file of readdirSync(join(PROJECT_ROOT, 'recipes')).filter((f) => f.endsWith('.yaml'))) {
    const recipe = YAML.parse(readFileSync(join(PROJECT_ROOT, 'recipes', file), 'utf8')) as { ComponentName: string; ComponentVersion: string; Manifests: Array<{ Lifecycle: Record<string, unknown> }> };
    if (only && !only.includes(recipe.ComponentName)) continue;
    recipe.ComponentVersion = version;
    if (brokenRun) for (const manifest of recipe.Manifests) manifest.Lifecycle.Run = brokenRun;
    writeFileSync(join(folder, file), YAML.stringify(recipe));
  }
  return folder;
}

function currentVersion(): string {
  return (YAML.parse(readFileSync(join(PROJECT_ROOT, 'recipes', `${PUBLISHER}.yaml`), 'utf8')) as { ComponentVersion: string }).ComponentVersion;
}

function bump(version: string, by: number): string {
  const [major, minor, patch] = version.split('.').map(Number);
  return `${major}.${minor}.${patch + by}`;
}

async function motorWatermark(pipeline: Pipeline): Promise<number> {
  return (await pipeline.storeStats())?.streams.find((s) => s.stream === 'motor')?.watermark ?? 0;
}

test('over the air, mid-stream: an invalid deployment is refused, version N+1 of every component, a live configuration change, a broken version rolled back; nothing lost or stored twice', { timeout: 420_000 }, async () => {
  const root = tempRoot('dp-');
  // Samples until the deployments are done (requestStop), however slow the machine is.
  const pipeline = new Pipeline({ root, thingName: 'deploy-thing-01', drainTimeoutMs: 90_000, resume: false, timeScale: 20, logger: createLogger('deploy-test') });
  const running = pipeline.run();
  const components = [ACQUISITION, 'com.elevator.StreamBuffer', PUBLISHER, 'com.elevator.HealthReporter'];
  try {
    const status = () => pipeline.runtimeStatus()?.components ?? {};
    await waitFor('the publisher running', () => status()[PUBLISHER]?.state === 'RUNNING' && status()[ACQUISITION]?.state === 'RUNNING', 30_000);
    await new Promise((r) => setTimeout(r, 3_000));

    // 1. An invalid deployment is rejected by the component, with a reason; the old value stays.
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
    // nodeOptions is not the component's setting, but one Node would refuse is rejected just the same.
    const badNodeOptions = join(root, 'bad-node-options.json');
    writeFileSync(badNodeOptions, JSON.stringify({ nodeOptions: '--max-semi-space-size=1 --no-such-flag' }));
    const refusedOptions = await deploy(root, ['--merge', `${ACQUISITION}=${badNodeOptions}`]);
    assert.equal(refusedOptions.status, 1, refusedOptions.output);
    // The output prints the cause inside JSON, quotes escaped.
    assert.match(refusedOptions.output, /invalid configuration: nodeOptions \\"--no-such-flag\\" is not allowed in NODE_OPTIONS/);

    // 2. Version N+1 of every component replaces the running one mid-stream, in one deployment.
    const next = bump(currentVersion(), 1);
    const pids = Object.fromEntries(components.map((c) => [c, status()[c].pid]));
    const update = await deploy(root, ['--recipes', recipesAt(root, next), '--artifacts', join(PROJECT_ROOT, 'build', 'artifacts'), ...components.flatMap((c) => ['--add', `${c}=${next}`])]);
    assert.equal(update.status, 0, update.output);
    await waitFor(`every component at ${next} and RUNNING`, () => components.every((c) => status()[c]?.version === next && status()[c]?.state === 'RUNNING'), 60_000);
    for (const c of components) assert.notEqual(status()[c].pid, pids[c], `${c} runs a new process`);
    await new Promise((r) => setTimeout(r, 3_000));

    // 3. A configuration change applies live on the new version: five times the motor sampling, same process.
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

    // 4. A broken publisher (it fails at every start) is rolled back to N+1, and data flows on.
    const broken = bump(currentVersion(), 2);
    const brokenUpdate = await deploy(root, ['--recipes', recipesAt(root, broken, [PUBLISHER], 'echo broken build; exit 3'), '--artifacts', join(PROJECT_ROOT, 'build', 'artifacts'), '--add', `${PUBLISHER}=${broken}`]);
    assert.equal(brokenUpdate.status, 1, brokenUpdate.output);
    assert.match(brokenUpdate.output, /FAILED_ROLLBACK_COMPLETE/);
    await waitFor(`the publisher back at ${next} and RUNNING`, () => status()[PUBLISHER]?.version === next && status()[PUBLISHER]?.state === 'RUNNING', 60_000);
    const watermark = await motorWatermark(pipeline);
    const deadline = Date.now() + 60_000;
    while ((await motorWatermark(pipeline)) <= watermark) {
      assert.ok(Date.now() < deadline, `no record acknowledged in 60 s after the rollback (watermark stuck at ${watermark})`);
      await new Promise((r) => setTimeout(r, 250));
    }
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
