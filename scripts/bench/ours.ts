import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GreengrassIpc } from '../../components/shared/ipc';
import type { Logger } from '../../components/shared/logger';
import { StreamStore, type StoreStats } from '../../components/shared/store';
import { dataTopic } from '../../components/shared/topics';
import { HEALTH_REPORTER, MQTT_PUBLISHER, Pipeline, SENSOR_ACQUISITION, STREAM_BUFFER, type PipelineSummary, type Progress } from '../pipeline';
import type { Mosquitto } from '../../test/helpers/mosquitto';
import { BENCH_SIMULATOR } from './source';
import { QuotaProxy } from './quota-proxy';
import { sleep } from './naive';

export const COMPONENTS = [SENSOR_ACQUISITION, STREAM_BUFFER, MQTT_PUBLISHER, HEALTH_REPORTER] as const;

/**
 * This project's whole pipeline as `npm start` runs it (scripts/pipeline.ts: the local runtime with
 * the four component processes, publishing through IPC and the runtime's IoT bridge, and the cloud
 * ingest), with mosquitto as the broker and a QuotaProxy on the device's side of the link: the
 * bridge is the nucleus's connection, so that is where IoT Core's quotas apply.
 *
 * SensorAcquisition samples ~1,000 records/s (BENCH_SIMULATOR: motor metrics every 20 ms at 20x), the rate of
 * the latency and footprint scenarios. Scenarios that need another rate stop it and append through
 * the same Acquisition class in this process, into the same store file.
 */
export class OurPipeline {
  progress: Progress | undefined;
  private store?: StreamStore;
  private cli?: GreengrassIpc;
  private running?: Promise<PipelineSummary>;
  private failure?: unknown;

  private constructor(
    readonly pipeline: Pipeline,
    readonly proxy: QuotaProxy,
    readonly thingName: string,
    private readonly logger: Logger,
  ) {}

  /** `configurationMerge`: per component, keys merged over the recipe defaults at every runtime start (setComponentConfig changes them). */
  static async start(root: string, mosquitto: Mosquitto, logger: Logger, configurationMerge: Record<string, Record<string, unknown>> = {}): Promise<OurPipeline> {
    const thingName = 'bench-elevator-01';
    const proxy = await QuotaProxy.start({ targetPort: mosquitto.port, payloadTopicPrefix: dataTopic(thingName, '') });
    let ours: OurPipeline | undefined;
    const pipeline = new Pipeline({
      root,
      thingName,
      // Scenarios leave no backlog behind; a drain that needs longer than this has already failed one.
      drainTimeoutMs: 60_000,
      brokerUrl: mosquitto.url,
      deviceBrokerUrl: proxy.url,
      publisherTransport: 'ipc',
      // The QuotaProxy applies IoT Core's quotas where the scenario asks for them (and only there:
      // the sustained scenario runs without); the runtime's own, identical pacing would double them.
      runtimeArgs: ['--iot-pacing', 'off'],
      resume: false,
      timeScale: BENCH_SIMULATOR.timeScale,
      configurationMerge: {
        ...configurationMerge,
        [SENSOR_ACQUISITION]: {
          ...configurationMerge[SENSOR_ACQUISITION],
          simulator: { signalIntervalMs: BENCH_SIMULATOR.signalIntervalMs, metricsIntervalMs: BENCH_SIMULATOR.metricsIntervalMs },
        },
      },
      logger,
      onProgress: (p) => {
        if (ours) ours.progress = p;
      },
    });
    ours = new OurPipeline(pipeline, proxy, thingName, logger);
    ours.running = pipeline.run();
    ours.running.catch((error) => (ours!.failure = error));
    try {
      await ours.waitFor('the pipeline to start sampling', () => ours!.progress?.phase === 'sampling', 90_000);
      ours.store = await StreamStore.open(pipeline.paths.store, { owner: false, logger });
      await ours.connectCli();
    } catch (error) {
      // The runtime and the ingest are child processes: without this they would outlive the bench.
      await ours.finish().catch(() => undefined);
      throw error;
    }
    return ours;
  }

  /** The bench's own local-CLI connection (Greengrass CLI style), to stop and start components. */
  private async connectCli(): Promise<void> {
    await this.cli?.close().catch(() => undefined);
    const info = join(this.pipeline.paths.greengrass, 'cli_ipc_info', 'ipc.json');
    await this.waitFor('the runtime CLI socket', () => existsSync(info), 30_000);
    const { socketPath, token } = JSON.parse(readFileSync(info, 'utf8')) as { socketPath: string; token: string };
    this.cli = await GreengrassIpc.connect({ logger: this.logger, socketPath, authToken: token, connectDeadlineMs: 10_000 });
  }

  storeHandle(): StreamStore {
    return this.store!;
  }

  async stats(): Promise<StoreStats> {
    return this.store!.stats();
  }

  /** Records the cloud has acknowledged: the sum of the ack watermarks of the store's epoch. */
  async acked(): Promise<{ acked: number; backlog: number; appended: number }> {
    const stats = await this.stats();
    return {
      acked: stats.streams.reduce((sum, s) => sum + s.watermark, 0),
      backlog: stats.backlogRecords,
      appended: stats.streams.reduce((sum, s) => sum + s.appended, 0),
    };
  }

  componentPids(): Record<string, number | undefined> {
    const status = this.pipeline.runtimeStatus();
    return Object.fromEntries(COMPONENTS.map((name) => [name, status?.components[name]?.pid]));
  }

  runtimePid(): number | undefined {
    return this.pipeline.runtimeStatus()?.pid;
  }

  async stopAcquisition(): Promise<void> {
    await this.cli!.stopComponent(SENSOR_ACQUISITION);
    await this.waitFor('SensorAcquisition to stop', () => this.pipeline.runtimeStatus()?.components[SENSOR_ACQUISITION]?.state !== 'RUNNING', 30_000);
  }

  /**
   * Every device process at once, as a power cut does (the runtime and each component's process
   * group), then the runtime again from what is on disk, and SensorAcquisition stopped once more
   * so that only the backlog remains to drain.
   */
  async powerCutAndRestart(): Promise<void> {
    await this.restartDevice();
    await this.stopAcquisition();
  }

  /** A power cut and the runtime again from disk, every component RUNNING (in new processes), sampling included. */
  async restartDevice(): Promise<void> {
    await this.store?.close();
    await this.cli?.close().catch(() => undefined);
    this.pipeline.powerCut();
    await sleep(500);
    await this.pipeline.startRuntime();
    this.store = await StreamStore.open(this.pipeline.paths.store, { owner: false, logger: this.logger });
    await this.connectCli();
    await this.waitFor('every component to run again', () => COMPONENTS.every((name) => this.pipeline.runtimeStatus()?.components[name]?.state === 'RUNNING'), 30_000);
  }

  /**
   * Replaces MqttPublisher's deployment-merge keys in the runtime's --config file; the runtime
   * builds each component's configuration from it when it starts, so they apply from the next
   * powerCutAndRestart(). undefined values remove a key (the recipe default applies again).
   */
  setPublisherConfig(keys: Record<string, unknown>): void {
    this.setComponentConfig(MQTT_PUBLISHER, keys);
  }

  /** setPublisherConfig for any component: the keys apply from the next restart. */
  setComponentConfig(component: string, keys: Record<string, unknown>): void {
    const merge = JSON.parse(readFileSync(this.pipeline.paths.config, 'utf8')) as Record<string, Record<string, unknown>>;
    const settings = { ...(merge[component] ?? {}) };
    for (const [key, value] of Object.entries(keys)) {
      if (value === undefined) delete settings[key];
      else settings[key] = value;
    }
    merge[component] = settings;
    writeFileSync(this.pipeline.paths.config, JSON.stringify(merge, null, 2));
  }

  /** Stops sampling, lets the pipeline drain, stops every process and audits the archive (Pipeline.run's summary). */
  async finish(): Promise<PipelineSummary> {
    await this.cli?.close().catch(() => undefined);
    await this.store?.close().catch(() => undefined);
    this.pipeline.requestStop();
    try {
      return await this.running!;
    } finally {
      await this.proxy.close();
    }
  }

  async waitFor(what: string, ready: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ready()) {
      if (this.failure) throw this.failure;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await sleep(100);
    }
  }
}
