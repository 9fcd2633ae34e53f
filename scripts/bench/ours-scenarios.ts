import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Acquisition } from '../../components/sensor-acquisition/acquisition';
import type { SampledRecord } from '../../components/sensor-acquisition/derive';
import type { Logger } from '../../components/shared/logger';
import { LocalFolderArchive } from '../../cloud/archive';
import { encodeKeySegment, RECORDS_PREFIX } from '../../cloud/keys';
import { appendFlatOut } from './append';
import { sleep } from './naive';
import { COMPONENTS, type OurPipeline } from './ours';
import { cpuSecondsOf, findPids, RssTracker } from './proc';
import { IOT_CORE_BYTES_PER_SEC, IOT_CORE_PUBLISHES_PER_SEC } from './quota-proxy';
import { acquisitionDefaults, PoolSource } from './source';
import { findSustained, type SustainedPlan, type SustainedResult, type SustainedTarget } from './sustained';

export interface LatencyResult {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  records: number;
  sampledPerSec: number;
  seconds: number;
}

export interface FootprintResult {
  rssMiB: Record<string, number>;
  cpuSecPer10k: number;
  /** The same per component, to see where the CPU goes. */
  cpuSecPer10kByComponent: Record<string, number>;
  /** The same with the local runtime's CPU added (it plays the nucleus: IPC, spooler, bridge). */
  cpuSecPer10kWithRuntime: number;
  /** The cloud ingest's CPU for the same records: not on the device, for scale only. */
  ingestCpuSecPer10k: number | null;
  runtimeRssMiB: number;
  deliveredPerSec: number;
}

/**
 * latency and footprint, from one window of the real SensorAcquisition component sampling about
 * 1,000 records/s: latency is the time from a record's sampling stamp to its archive object being
 * written (the object file's mtime, set by the ingest's write-then-rename); footprint is the peak
 * RSS of each component process and the CPU they used per 10,000 records the cloud acknowledged.
 */
export async function runLatencyAndFootprint(ours: OurPipeline, seconds: number, warmUpSec: number): Promise<{ latency: LatencyResult; footprint: FootprintResult }> {
  // Components start together and the first envelopes carry the start-up backlog: not steady state.
  await sleep(warmUpSec * 1000);
  const rss = new RssTracker();
  const runtimeRss = new RssTracker();
  const pids = ours.componentPids();
  const runtimePid = ours.runtimePid();
  const ingestPids = findPids('dist/cloud/main.js', ours.pipeline.paths.archive);
  const start = await ours.acked();
  const cpu0 = cpuSecondsOf(Object.values(pids));
  const byComponent0 = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSecondsOf([pid])]));
  const runtimeCpu0 = cpuSecondsOf([runtimePid]);
  const ingestCpu0 = cpuSecondsOf(ingestPids);
  const from = Date.now();
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    rss.sample(pids);
    runtimeRss.sample({ runtime: runtimePid });
    await sleep(500);
  }
  const end = await ours.acked();
  const elapsed = (performance.now() - t0) / 1000;
  const to = Date.now();
  const delivered = end.acked - start.acked;
  const cpu = cpuSecondsOf(Object.values(pids)) - cpu0;
  const byComponent = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name.replace(/^com\.elevator\./, ''), cpuSecondsOf([pid]) - byComponent0[name]]));
  const runtimeCpu = cpuSecondsOf([runtimePid]) - runtimeCpu0;
  const ingestCpu = ingestPids.length > 0 ? cpuSecondsOf(ingestPids) - ingestCpu0 : null;
  // Records sampled near the end of the window are still on their way; give them time to land.
  await sleep(3000);
  const latencies = await archiveLatencies(ours.pipeline.paths.archive, ours.thingName, from, to);
  latencies.sort((a, b) => a - b);
  const per10k = (value: number) => (delivered > 0 ? (value / delivered) * 10_000 : Number.NaN);
  return {
    latency: {
      p50Ms: quantile(latencies, 0.5),
      p99Ms: quantile(latencies, 0.99),
      maxMs: latencies.length > 0 ? latencies[latencies.length - 1] : Number.NaN,
      records: latencies.length,
      sampledPerSec: (end.appended - start.appended) / elapsed,
      seconds: elapsed,
    },
    footprint: {
      rssMiB: Object.fromEntries(COMPONENTS.map((name) => [name.replace(/^com\.elevator\./, ''), rss.peakMiB[name] ?? Number.NaN])),
      cpuSecPer10k: per10k(cpu),
      cpuSecPer10kByComponent: Object.fromEntries(Object.entries(byComponent).map(([name, seconds]) => [name, per10k(seconds)])),
      cpuSecPer10kWithRuntime: per10k(cpu + runtimeCpu),
      ingestCpuSecPer10k: ingestCpu === null ? null : per10k(ingestCpu),
      runtimeRssMiB: runtimeRss.peakMiB.runtime ?? Number.NaN,
      deliveredPerSec: delivered / elapsed,
    },
  };
}

/** Sampling-to-archive times of this device's records stamped in [from, to], from the local archive folder. */
async function archiveLatencies(root: string, device: string, from: number, to: number): Promise<number[]> {
  const archive = new LocalFolderArchive(root);
  const keys = await archive.list(`${RECORDS_PREFIX}${encodeKeySegment(device)}/`);
  const out: number[] = [];
  for (const key of keys) {
    const file = join(root, ...key.split('/'));
    const [body, info] = await Promise.all([readFile(file, 'utf8'), stat(file)]);
    const run = JSON.parse(body) as { records: Array<{ time: number }> };
    for (const record of run.records) {
      if (record.time >= from && record.time <= to) out.push(info.mtimeMs - record.time);
    }
  }
  return out;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

/**
 * sustained for this project: the acquisition path in this process (the real Acquisition class on
 * its shipped schedule, fed at the offered rate) appends into the running pipeline's store; a
 * record counts once the cloud's ack watermark covers it. No quota pacing: the proxy forwards.
 */
export async function runOurSustained(ours: OurPipeline, pool: SampledRecord[], plan: SustainedPlan, logger: Logger, brokerPid: number | undefined): Promise<SustainedResult> {
  await ours.stopAcquisition();
  const ingestPids = findPids('dist/cloud/main.js', ours.pipeline.paths.archive);
  const source = new PoolSource(pool);
  const acquisition = new Acquisition(source, ours.storeHandle(), acquisitionDefaults(), logger);
  acquisition.start(0);
  const target: SustainedTarget = {
    setRate: async (perSec) => {
      source.ratePerSec = perSec;
    },
    sample: async () => {
      const { acked, backlog } = await ours.acked();
      // Sampled but not yet appended (the store is behind) counts as backlog too.
      return { delivered: acked, backlog: backlog + acquisition.metrics.pending };
    },
    cpuSeconds: () => {
      const pids = ours.componentPids();
      const named: Record<string, number> = {};
      for (const [name, pid] of Object.entries(pids)) if (name !== 'com.elevator.SensorAcquisition') named[name.replace(/^com\.elevator\./, '')] = cpuSecondsOf([pid]);
      const self = process.cpuUsage();
      return {
        ...named,
        runtime: cpuSecondsOf([ours.runtimePid()]),
        cloudIngest: cpuSecondsOf(ingestPids),
        mosquitto: cpuSecondsOf([brokerPid]),
        // The acquisition path runs in the bench process here; the bench's own bookkeeping is in this figure too.
        benchAcquisition: (self.user + self.system) / 1e6,
      };
    },
  };
  try {
    return await findSustained(target, plan);
  } finally {
    await acquisition.stop();
  }
}

export interface DrainResult {
  /** Over the flowing window: from the first envelope through the link to an empty backlog. */
  recordsPerSec: number;
  bytesPerSec: number;
  quotaUtilization: number;
  publishesPerSec: number;
  backlogRecords: number;
  /** Seconds from the broker becoming reachable to an empty backlog; null if it did not empty in time. */
  recoverySeconds: number | null;
  /** Seconds from the broker becoming reachable to the first envelope through the link (the bridge's reconnect). */
  reconnectSeconds: number | null;
  fillRecordsPerSec: number;
  drained: boolean;
}

/**
 * drain and recovery: the broker becomes unreachable, the acquisition path fills the store with
 * `backlog` records, every device process is killed (a power cut, for lostOnKillOurs) and the
 * runtime restarts, then the broker is reachable again through IoT Core's quotas, applied on the
 * runtime bridge's connection (the nucleus's), until the backlog is empty. Rates are over the
 * flowing window, so the bridge's 1 s reconnect period does not dilute them; recovery includes it.
 */
export async function runOurDrain(ours: OurPipeline, pool: SampledRecord[], backlog: number, timeoutSec: number, logger: Logger): Promise<DrainResult> {
  ours.proxy.down();
  await sleep(1000);
  const fill = await appendFlatOut(ours.storeHandle(), pool, backlog, logger);
  await ours.powerCutAndRestart();
  const before = await ours.acked();
  const proxy0 = { ...ours.proxy.stats };
  ours.proxy.setPacing({ publishesPerSec: IOT_CORE_PUBLISHES_PER_SEC, bytesPerSec: IOT_CORE_BYTES_PER_SEC });
  ours.proxy.resetFirstPayload();
  ours.proxy.up();
  const t0 = performance.now();
  let now = before;
  let drained = false;
  while ((performance.now() - t0) / 1000 < timeoutSec) {
    await sleep(100);
    now = await ours.acked();
    if (now.backlog === 0) {
      drained = true;
      break;
    }
  }
  const end = performance.now();
  const seconds = (end - t0) / 1000;
  const first = ours.proxy.stats.firstPayloadAt;
  const flowing = first === null ? seconds : Math.max(0.001, (end - first) / 1000);
  const bytes = ours.proxy.stats.payloadBytes - proxy0.payloadBytes;
  const publishes = ours.proxy.stats.publishes - proxy0.publishes;
  ours.proxy.setPacing(undefined);
  return {
    recordsPerSec: (now.acked - before.acked) / flowing,
    bytesPerSec: bytes / flowing,
    quotaUtilization: bytes / flowing / IOT_CORE_BYTES_PER_SEC,
    publishesPerSec: publishes / flowing,
    backlogRecords: before.backlog,
    recoverySeconds: drained ? seconds : null,
    reconnectSeconds: first === null ? null : (first - t0) / 1000,
    fillRecordsPerSec: fill.appended / fill.seconds,
    drained,
  };
}
