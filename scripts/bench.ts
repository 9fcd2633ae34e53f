import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { mqttPublisherConfigSchema } from '../components/mqtt-publisher/config';
import { createLogger, errorMessage } from '../components/shared/logger';
import { findMosquitto, MOSQUITTO_MISSING, startMosquitto, type Mosquitto } from '../test/helpers/mosquitto';
import { runAppend } from './bench/append';
import { runBaseline } from './bench/baseline';
import { envelopeSize } from './bench/envelope-size';
import { machineInfo } from './bench/machine';
import { findPids } from './bench/proc';
import { COMPONENTS, OurPipeline } from './bench/ours';
import { runLatencyAndFootprint, runOurDrain, runOurSustained } from './bench/ours-scenarios';
import { checkTargets, renderTable, rounded, type BenchReport } from './bench/report';
import { recordPool } from './bench/source';
import type { SustainedPlan } from './bench/sustained';
import { loadRecipes } from '../runtime/recipe';
import { PROJECT_ROOT } from './pipeline';

// npm run bench [-- --json] [--smoke] [--root DIR] [--keep] [--drain-backlog N]
const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    // Tiny sizes, under a minute: checks every scenario runs and reports figures (npm test runs it).
    smoke: { type: 'boolean', default: false },
    root: { type: 'string' },
    keep: { type: 'boolean', default: false },
    'drain-backlog': { type: 'string' },
  },
});

interface Sizes {
  appendRecords: number;
  latencySec: number;
  latencyWarmUpSec: number;
  sustained: SustainedPlan;
  drainBacklog: number;
  /** The same drain with the publisher's compression off, for the before/after comparison. */
  drainBeforeBacklog: number;
  drainTimeoutSec: number;
  naiveBacklog: number;
  naiveWindowSec: number;
  /** Longest wait for the naive client's reconnect backoff before its drain counts as zero. */
  naiveReconnectWaitSec: number;
  naiveQueuedBeforeKill: number;
}

// The full run keeps to the floors (>= 60 s sustained hold, >= 300,000-record backlog) and
// stays under 10 minutes on a 2-core box: every other duration is as short as gives a stable figure.
const FULL: Sizes = {
  appendRecords: 100_000,
  latencySec: 30,
  latencyWarmUpSec: 5,
  sustained: { startRate: 1000, maxRate: 64_000, stepSec: 6, holdSec: 60, settleSec: 20 },
  drainBacklog: 300_000,
  // Big enough for a steady rate (about 30 s uncompressed under the quota), small enough for the 10-minute budget.
  drainBeforeBacklog: 50_000,
  drainTimeoutSec: 240,
  // Under the quotas the naive client drains about 100 readings/s, so a window shows its rate;
  // draining 300,000 would take most of an hour.
  naiveBacklog: 20_000,
  naiveWindowSec: 20,
  naiveReconnectWaitSec: 60,
  naiveQueuedBeforeKill: 2_000,
};

const SMOKE: Sizes = {
  appendRecords: 2_000,
  latencySec: 3,
  latencyWarmUpSec: 1,
  sustained: { startRate: 200, maxRate: 400, stepSec: 1.5, holdSec: 2, settleSec: 3 },
  drainBacklog: 2_000,
  drainBeforeBacklog: 1_000,
  drainTimeoutSec: 30,
  naiveBacklog: 200,
  naiveWindowSec: 3,
  naiveReconnectWaitSec: 20,
  naiveQueuedBeforeKill: 100,
};

/** MqttPublisher's maxRecordsPerEnvelope default before compression made larger envelopes pay (docs/PERFORMANCE.md). */
const PREVIOUS_RECORDS_PER_ENVELOPE = 500;

function drainFigures(result: { recordsPerSec: number; bytesPerSec: number; quotaUtilization: number; backlogRecords: number; recoverySeconds: number | null; publishesPerSec: number }) {
  const { recordsPerSec, bytesPerSec, quotaUtilization, backlogRecords, recoverySeconds, publishesPerSec } = result;
  return { recordsPerSec, bytesPerSec, quotaUtilization, backlogRecords, recoverySeconds, publishesPerSec };
}

const SHIPPED_RECORDS_PER_ENVELOPE = (mqttPublisherConfigSchema.properties as Record<string, { default?: unknown }>).maxRecordsPerEnvelope.default as number;

/** MqttPublisher's default compression, if this version of it has the setting at all. */
const SHIPPED_COMPRESSION = (mqttPublisherConfigSchema.properties as Record<string, { default?: unknown }>).compression?.default as string | undefined;

/** The components' Node options as the recipes ship them (nodeOptions); the footprint's "before" runs with none. */
const SHIPPED_NODE_OPTIONS = (() => {
  const options = new Set(loadRecipes(join(PROJECT_ROOT, 'recipes')).map((r) => String(r.recipe.ComponentConfiguration?.DefaultConfiguration?.nodeOptions ?? '')));
  if (options.size !== 1) throw new Error(`the recipes disagree on nodeOptions (${[...options].join(' | ')}); the footprint compares one setting with Node's defaults`);
  return [...options][0];
})();
const NODE_OPTIONS_BEFORE = '';

const logger = createLogger('bench');
logger.level = process.env.LOG_LEVEL ?? 'warn';
// The power cut makes the pipeline's own IPC client warn while the runtime is down: expected here.
const pipelineLogger = createLogger('bench-pipeline');
pipelineLogger.level = process.env.LOG_LEVEL ?? 'error';

/** What the bench has started, so that a crash does not leave it running (see emergencyStop). */
const spawned: { root?: string; brokerPid?: number } = {};

/**
 * After an uncaught error nothing else will stop the processes this run started: the runtime and
 * its components (each in its own process group, named in the runtime's status file), the cloud
 * ingest (its command line names the run's folder) and mosquitto. The naive publisher exits by
 * itself when its IPC channel closes.
 */
function emergencyStop(): void {
  const kill = (pid: number, group = false) => {
    try {
      process.kill(group ? -pid : pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  if (spawned.root) {
    const statusFile = join(spawned.root, 'pipeline', 'greengrass', 'status.json');
    if (existsSync(statusFile)) {
      try {
        const status = JSON.parse(readFileSync(statusFile, 'utf8')) as { pid?: number; components?: Record<string, { pid?: number }> };
        for (const component of Object.values(status.components ?? {})) if (component.pid) kill(component.pid, true);
        if (status.pid) kill(status.pid);
      } catch {
        // a half-written status file: the ingest and the broker below still go
      }
    }
    for (const pid of findPids(`${join(spawned.root, 'pipeline')}/`)) if (pid !== process.pid) kill(pid);
  }
  if (spawned.brokerPid) kill(spawned.brokerPid);
}

process.on('uncaughtException', (error) => {
  process.stderr.write(`bench crashed: ${error.stack ?? error.message}\n`);
  emergencyStop();
  process.exit(1);
});

function say(text: string): void {
  // Progress to stderr: stdout carries the table, or the JSON line as the last line.
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${text}\n`);
}

async function main(): Promise<number> {
  const mosquittoBinary = findMosquitto();
  if (!mosquittoBinary) {
    process.stderr.write(`${MOSQUITTO_MISSING}\n`);
    return 2;
  }
  const sizes: Sizes = { ...(values.smoke ? SMOKE : FULL) };
  if (values['drain-backlog'] !== undefined) {
    const n = Number(values['drain-backlog']);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--drain-backlog must be a positive integer, got "${values['drain-backlog']}"`);
    sizes.drainBacklog = n;
  }
  const root = values.root ? resolve(values.root) : mkdtempSync(join(tmpdir(), 'bench-'));
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  spawned.root = root;
  const started = performance.now();
  const machine = machineInfo();
  say(`machine: ${machine.cores} cores, ${machine.memoryGiB} GiB, Node ${machine.node}; files under ${root}`);
  const pool = recordPool(20_000);

  say(`append: ${sizes.appendRecords} records, one row per INSERT (before) and the store's default (after)`);
  const appendBefore = await runAppend(root, pool, sizes.appendRecords, logger, 1);
  const append = await runAppend(root, pool, sizes.appendRecords, logger);

  let mosquitto: Mosquitto | undefined;
  let ok = false;
  try {
    mosquitto = await startMosquitto(mosquittoBinary);
    spawned.brokerPid = mosquitto.process.pid;
    say('starting the pipeline (runtime, four components, cloud ingest), first with Node\'s own heap settings');
    const nodeDefaults = Object.fromEntries(COMPONENTS.map((name) => [name, { nodeOptions: NODE_OPTIONS_BEFORE }]));
    const ours = await OurPipeline.start(join(root, 'pipeline'), mosquitto, pipelineLogger, nodeDefaults);
    let summary;
    let sustained;
    let drain;
    let drainBefore;
    let drainSmallEnvelopes;
    let latencyFootprint;
    let footprintBefore;
    try {
      say(`footprint (before): ${sizes.latencySec} s at ~1,000 records/s, nodeOptions "${NODE_OPTIONS_BEFORE}"`);
      footprintBefore = (await runLatencyAndFootprint(ours, sizes.latencySec, sizes.latencyWarmUpSec)).footprint;
      say('the shipped nodeOptions: the recipe defaults again, the device restarted');
      for (const name of COMPONENTS) ours.setComponentConfig(name, { nodeOptions: undefined });
      await ours.restartDevice();
      say(`latency and footprint: ${sizes.latencySec} s at ~1,000 records/s, nodeOptions "${SHIPPED_NODE_OPTIONS}"`);
      latencyFootprint = await runLatencyAndFootprint(ours, sizes.latencySec, sizes.latencyWarmUpSec);
      // The appends of the search come from this process; cap them below what the store took alone.
      const plan = { ...sizes.sustained, maxRate: Math.min(sizes.sustained.maxRate, append.recordsPerSec) };
      say('sustained: searching for the highest flat rate');
      sustained = await runOurSustained(ours, pool, plan, logger, mosquitto.process.pid);
      if (SHIPPED_COMPRESSION !== undefined) {
        say(`drain (before): compression none, outage, ${sizes.drainBeforeBacklog} records, power cut, then IoT Core quotas`);
        ours.setPublisherConfig({ compression: 'none' });
        drainBefore = await runOurDrain(ours, pool, sizes.drainBeforeBacklog, sizes.drainTimeoutSec, logger);
        ours.setPublisherConfig({ compression: undefined });
        say(`drain (before): compressed, at most ${PREVIOUS_RECORDS_PER_ENVELOPE} records per envelope, ${sizes.drainBacklog} records`);
        ours.setPublisherConfig({ maxRecordsPerEnvelope: PREVIOUS_RECORDS_PER_ENVELOPE });
        drainSmallEnvelopes = await runOurDrain(ours, pool, sizes.drainBacklog, sizes.drainTimeoutSec, logger);
        ours.setPublisherConfig({ maxRecordsPerEnvelope: undefined });
      }
      say(`drain: shipped configuration, outage, ${sizes.drainBacklog} records, power cut, then IoT Core quotas`);
      drain = await runOurDrain(ours, pool, sizes.drainBacklog, sizes.drainTimeoutSec, logger);
    } finally {
      say('stopping the pipeline and auditing the archive');
      summary = await ours.finish();
    }
    say('baseline: the naive MQTT 5 publisher');
    const baseline = await runBaseline(mosquitto, { ...sizes.sustained }, { backlog: sizes.naiveBacklog, windowSec: sizes.naiveWindowSec, reconnectWaitSec: sizes.naiveReconnectWaitSec, queuedBeforeKill: sizes.naiveQueuedBeforeKill });

    const baselineRecovery = (baseline.drain.firstDeliverySeconds ?? 0) + drain.backlogRecords / baseline.drain.recordsPerSec;
    const partial: Omit<BenchReport, 'targets' | 'seconds'> = {
      machine,
      mode: values.smoke ? 'smoke' : 'full',
      append: {
        recordsPerSec: append.recordsPerSec,
        records: append.records,
        recordsPerTransaction: append.recordsPerTransaction,
        before: { rowsPerInsert: 1, recordsPerSec: appendBefore.recordsPerSec },
      },
      sustained: {
        recordsPerSec: sustained.recordsPerSec,
        vsBaseline: sustained.recordsPerSec / baseline.sustained.recordsPerSec,
        offeredPerSec: sustained.offeredPerSec,
        holdSeconds: sustained.holdSeconds,
        flat: sustained.flat,
        backlogGrowthPerSec: sustained.backlogGrowthPerSec,
        steps: sustained.steps,
      },
      drain: {
        recordsPerSec: drain.recordsPerSec,
        bytesPerSec: drain.bytesPerSec,
        quotaUtilization: drain.quotaUtilization,
        vsBaseline: drain.recordsPerSec / baseline.drain.recordsPerSec,
        publishesPerSec: drain.publishesPerSec,
        backlogRecords: drain.backlogRecords,
        bytesPerRecord: drain.bytesPerSec / drain.recordsPerSec,
        fillRecordsPerSec: drain.fillRecordsPerSec,
        reconnectSeconds: drain.reconnectSeconds,
        compression: SHIPPED_COMPRESSION ?? 'none',
        before: drainBefore ? { compression: 'none', ...drainFigures(drainBefore) } : null,
        beforeSmallEnvelopes: drainSmallEnvelopes ? { maxRecordsPerEnvelope: PREVIOUS_RECORDS_PER_ENVELOPE, ...drainFigures(drainSmallEnvelopes) } : null,
      },
      envelope: envelopeSize(pool, SHIPPED_RECORDS_PER_ENVELOPE),
      latency: latencyFootprint.latency,
      footprint: {
        ...latencyFootprint.footprint,
        nodeOptions: SHIPPED_NODE_OPTIONS,
        before: {
          nodeOptions: NODE_OPTIONS_BEFORE,
          rssMiB: footprintBefore.rssMiB,
          cpuSecPer10k: footprintBefore.cpuSecPer10k,
          cpuSecPer10kByComponent: footprintBefore.cpuSecPer10kByComponent,
        },
      },
      recovery: { seconds: drain.recoverySeconds, backlogRecords: drain.backlogRecords, drained: drain.drained },
      baseline: {
        sustainedRecordsPerSec: baseline.sustained.recordsPerSec,
        sustainedSteps: baseline.sustained.steps,
        drainRecordsPerSec: baseline.drain.recordsPerSec,
        drainBytesPerSec: baseline.drain.bytesPerSec,
        drainFirstDeliverySeconds: baseline.drain.firstDeliverySeconds,
        recoverySeconds: baselineRecovery,
        recoveryProjected: baseline.drain.delivered < drain.backlogRecords,
        lostOnKill: baseline.lostOnKill,
        // Only an audit after a complete drain can say nothing was lost.
        lostOnKillOurs: summary.drained ? summary.missing : null,
        drainBacklogRecords: baseline.drain.backlogRecords,
        queuedAtKill: baseline.queuedAtKill,
        rssMiB: baseline.rssMiB,
      },
    };
    const report: BenchReport = rounded({ ...partial, targets: checkTargets(partial), seconds: (performance.now() - started) / 1000 });
    if (!values.json) process.stdout.write(`${renderTable(report)}\n`);
    process.stdout.write(`${JSON.stringify(report)}\n`);
    ok = true;
    return 0;
  } finally {
    await mosquitto?.stop();
    if (ok && !values.keep && !values.root) rmSync(root, { recursive: true, force: true });
    else say(`files and logs kept under ${root}`);
  }
}

main().then(
  (code) => process.exit(code),
  (error) => {
    logger.error('bench failed', { error: error instanceof Error ? error.stack : String(error) });
    process.stderr.write(`bench failed: ${errorMessage(error)}\n`);
    process.exit(1);
  },
);
