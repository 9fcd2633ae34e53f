import type { Mosquitto } from '../../test/helpers/mosquitto';
import { CloudCounter, NAIVE_TOPIC_PREFIX, NaiveProcess, SEQ_BLOCK, sleep } from './naive';
import type { NaiveOptions } from './naive-publisher';
import { cpuSecondsOf } from './proc';
import { IOT_CORE_BYTES_PER_SEC, IOT_CORE_PUBLISHES_PER_SEC, QuotaProxy } from './quota-proxy';
import { findSustained, type SustainedPlan, type SustainedResult } from './sustained';

export interface BaselineDrain {
  recordsPerSec: number;
  bytesPerSec: number;
  /** Readings queued in the client when the broker became reachable again. */
  backlogRecords: number;
  /** Seconds from reachability to the first reading at the cloud (the SDK's reconnect backoff). */
  firstDeliverySeconds: number | null;
  windowSeconds: number;
  delivered: number;
}

export interface BaselineResult {
  sustained: SustainedResult;
  drain: BaselineDrain;
  /** Readings queued in the naive client at the moment it was killed, and how many never arrived. */
  queuedAtKill: number;
  lostOnKill: number;
  rssMiB: number;
}

/**
 * The naive publisher (naive-publisher.ts) over the same broker, behind its own QuotaProxy, through
 * the same three situations as this project: the sustained search, a drain after an outage with
 * IoT Core's quotas on its connection, and a SIGKILL during an outage.
 */
export async function runBaseline(
  mosquitto: Mosquitto,
  plan: SustainedPlan,
  drain: { backlog: number; windowSec: number; reconnectWaitSec: number; queuedBeforeKill: number },
): Promise<BaselineResult> {
  const proxy = await QuotaProxy.start({ targetPort: mosquitto.port, payloadTopicPrefix: NAIVE_TOPIC_PREFIX });
  const counter = await CloudCounter.start(mosquitto.url);
  const options: NaiveOptions = { host: '127.0.0.1', port: proxy.port, clientId: 'bench-naive-01', topic: `${NAIVE_TOPIC_PREFIX}bench-naive-01/readings`, seqStart: 1 };
  let naive = await NaiveProcess.start(options);
  let rssMiB = 0;
  try {
    if (!(await naive.waitConnected(15_000))) throw new Error('the naive publisher did not connect to mosquitto within 15 s');
    const sustained = await findSustained(
      {
        setRate: async (perSec) => void (await naive.send({ op: 'rate', perSec })),
        sample: async () => {
          const s = await naive.stats();
          rssMiB = Math.max(rssMiB, s.rssMiB);
          const received = counter.receivedFrom(options.seqStart);
          return { delivered: received, backlog: s.published - received };
        },
        cpuSeconds: () => {
          const self = process.cpuUsage();
          return { naive: cpuSecondsOf([naive.pid]), mosquitto: cpuSecondsOf([mosquitto.process.pid]), benchCloudCounter: (self.user + self.system) / 1e6 };
        },
      },
      plan,
    );

    // A fresh process for the drain: a search step over capacity leaves a queue behind that would
    // otherwise be counted as this scenario's backlog.
    await naive.stop();
    const drainOptions = { ...options, seqStart: SEQ_BLOCK };
    naive = await NaiveProcess.start(drainOptions);
    if (!(await naive.waitConnected(15_000))) throw new Error('the naive publisher did not reconnect to mosquitto within 15 s');

    // Outage: the client queues in memory what it is given.
    proxy.down();
    await waitUntil(async () => !(await naive.stats()).connected, 10_000);
    await naive.send({ op: 'burst', count: drain.backlog });
    await sleep(500);
    const queued = await naive.stats();
    const fromDrain = () => counter.receivedFrom(drainOptions.seqStart);
    const backlogRecords = queued.published - fromDrain();
    const received0 = fromDrain();
    proxy.setPacing({ publishesPerSec: IOT_CORE_PUBLISHES_PER_SEC, bytesPerSec: IOT_CORE_BYTES_PER_SEC });
    proxy.up();
    const t0 = performance.now();
    // The SDK's reconnect backoff decides when the drain starts; that wait is reported on its own
    // (firstDeliverySeconds), and the rate is measured over windowSec from the first delivery.
    let firstDelivery: number | null = null;
    while (firstDelivery === null && (performance.now() - t0) / 1000 < drain.reconnectWaitSec) {
      await sleep(50);
      if (fromDrain() > received0) firstDelivery = (performance.now() - t0) / 1000;
    }
    const flowStart = performance.now();
    const flowReceived0 = fromDrain();
    const flowBytes0 = proxy.stats.payloadBytes;
    while (firstDelivery !== null && (performance.now() - flowStart) / 1000 < drain.windowSec && fromDrain() - received0 < backlogRecords) {
      await sleep(100);
    }
    const flowing = Math.max(0.001, (performance.now() - flowStart) / 1000);
    const window = (performance.now() - t0) / 1000;
    const delivered = fromDrain() - received0;
    const drainResult: BaselineDrain = {
      recordsPerSec: firstDelivery === null ? 0 : (fromDrain() - flowReceived0) / flowing,
      bytesPerSec: firstDelivery === null ? 0 : (proxy.stats.payloadBytes - flowBytes0) / flowing,
      backlogRecords,
      firstDeliverySeconds: firstDelivery,
      windowSeconds: window,
      delivered,
    };
    rssMiB = Math.max(rssMiB, (await naive.stats()).rssMiB);

    // Killed during an outage: whatever the client still holds exists only in its memory.
    proxy.down();
    await waitUntil(async () => !(await naive.stats()).connected, 10_000);
    // Readings sampled during this outage, so the client holds some even if the drain emptied it.
    await naive.send({ op: 'burst', count: drain.queuedBeforeKill });
    const atKill = await naive.stats();
    const range = [atKill.firstSeq, atKill.lastSeq] as const;
    const queuedAtKill = range[1] - range[0] + 1 - counter.countBetween(...range);
    await naive.kill();
    proxy.setPacing(undefined);
    proxy.up();
    naive = await NaiveProcess.start({ ...options, seqStart: 2 * SEQ_BLOCK });
    await naive.waitConnected(15_000);
    // A clean session holds nothing for it; give a resend from anywhere time to show up anyway.
    await sleep(3000);
    const lostOnKill = range[1] - range[0] + 1 - counter.countBetween(...range);
    return { sustained, drain: drainResult, queuedAtKill, lostOnKill, rssMiB };
  } finally {
    await naive.stop();
    await counter.stop();
    await proxy.close();
  }
}

async function waitUntil(ready: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(100);
  }
}
