import { spawn, type ChildProcess } from 'node:child_process';
import { STREAM_QUARANTINE } from '../components/shared/records';
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { auditArchive } from '../cloud/audit';
import { LocalFolderArchive, type ArchiveBackend } from '../cloud/archive';
import { parseS3Url, S3ArchiveBackend } from '../cloud/s3-archive';
import { FleetViewServer } from '../cloud/fleet-view/server';
import { healthKey, STATUS_KEY } from '../cloud/keys';
import { GreengrassIpc } from '../components/shared/ipc';
import type { Logger } from '../components/shared/logger';
import { errorMessage } from '../components/shared/logger';
import { StreamStore, type StoreStats } from '../components/shared/store';
import { openStoreWhenHealthy, STORE_FILE_NAME } from '../components/shared/store-open';
import { heartbeatWildcard } from '../components/shared/topics';
import { startEmbeddedBroker, type EmbeddedBroker } from '../runtime/broker';
import { loadRecipes, mergeConfiguration } from '../runtime/recipe';
import type { BrokerTlsFiles } from '../components/shared/broker-tls';
import { STANDALONE_ENV } from '../components/shared/platform';
import { PLATFORM_FILE, type StandalonePlatformConfig } from '../components/shared/platform-standalone';
import type { RuntimeStatus } from '../runtime/runtime';
import { componentSettings } from '../components/shared/deployment-hooks';

/**
 * The whole system on one machine: an MQTT broker standing in for AWS IoT Core, the four
 * components, and the cloud ingest. The components run under the local Greengrass runtime
 * (platform "greengrass"), or as plain processes with no runtime at all, configured from files as
 * on a device without a nucleus (platform "standalone", docs/RUN-WITHOUT-GREENGRASS.md). It
 * samples for a while, stops sampling, lets the pipeline drain, stops every process cleanly, and
 * audits the archive.
 */
export const PROJECT_ROOT = resolve(__dirname, '..', '..');
const DIST = join(PROJECT_ROOT, 'dist');

export const SENSOR_ACQUISITION = 'com.elevator.SensorAcquisition';
export const HEALTH_REPORTER = 'com.elevator.HealthReporter';
/** Health every 5 s under npm start (30 s on a device), so the fleet view moves while one watches. */
const DEMO_HEALTH_INTERVAL_MS = 5000;
export const STREAM_BUFFER = 'com.elevator.StreamBuffer';
export const MQTT_PUBLISHER = 'com.elevator.MqttPublisher';
/** Standalone start order: StreamBuffer creates the store the others open (systemd: After=/Requires=). */
const STANDALONE_ORDER = [STREAM_BUFFER, SENSOR_ACQUISITION, MQTT_PUBLISHER, HEALTH_REPORTER];
/** Standalone, a component that exits on its own is started again after this long (systemd: Restart=on-failure, RestartSec). */
const STANDALONE_RESTART_DELAY_MS = 1000;

export interface PipelineOptions {
  root: string;
  thingName: string;
  /** Sampling time; undefined samples until stop() (Ctrl-C). */
  durationMs?: number;
  /** Longest wait for the backlog to drain after sampling stops. */
  drainTimeoutMs: number;
  /** Existing broker URL; an embedded aedes broker when absent. */
  brokerUrl?: string;
  /** Keep the store and archive of an earlier run (default: start clean). */
  resume: boolean;
  /** Simulated elevator time per real time. */
  timeScale: number;
  /** Extra deployment-style configuration merges per component. */
  configurationMerge?: Record<string, Record<string, unknown>>;
  /** Where the runtime's IoT bridge connects, when not brokerUrl (e.g. through a fault proxy). */
  deviceBrokerUrl?: string;
  /**
   * How MqttPublisher reaches the broker: "ipc" (default) through the runtime's IoT bridge and
   * spooler, or "mqtt5" with its own MQTT 5 connection to deviceBrokerUrl (else brokerUrl).
   */
  publisherTransport?: 'ipc' | 'mqtt5';
  /**
   * "greengrass" (default): the components under the local runtime. "standalone": the four
   * bundles as plain processes, no runtime, configured from <root>/device/etc; needs an MQTT 5
   * broker (brokerUrl) and publishes with mqtt5.
   */
  platform?: 'greengrass' | 'standalone';
  /** Standalone: the device's local bus broker (plain MQTT on loopback); default brokerUrl when that is plain loopback MQTT. */
  localBrokerUrl?: string;
  /** Client certificate, key and CA for an mqtts:// broker: used by the runtime's bridge, the cloud ingest and the components' MQTT 5 connections. */
  brokerTls?: BrokerTlsFiles;
  /** MqttPublisher's transport.willDelaySec (mqtt5 only). */
  willDelaySec?: number;
  /**
   * Where the cloud ingest archives: s3://<bucket>[/<prefix>] for the S3 backend (credentials from
   * the SDK's default chain), else the run's own folder (<root>/cloud-archive).
   */
  archiveUrl?: string;
  /** An S3-compatible endpoint for archiveUrl (a local S3 server, MinIO). */
  s3Endpoint?: string;
  s3Region?: string;
  /** Extra flags for the runtime and the cloud ingest, and extra environment for the runtime. */
  runtimeArgs?: string[];
  runtimeEnv?: Record<string, string>;
  ingestArgs?: string[];
  logger: Logger;
  onProgress?: (progress: Progress) => void;
  /** Serve the fleet view (cloud/fleet-view) on this port of 127.0.0.1; 0 picks a free port; undefined: no view. */
  viewPort?: number;
  /** Called with the fleet view's URL once it listens. */
  onViewStarted?: (url: string) => void;
}

export interface Progress {
  phase: 'starting' | 'sampling' | 'draining' | 'stopping' | 'done';
  sampled: number;
  stored: number;
  sent: number;
  acked: number;
  archived: number;
  backlog: number;
  restarts: number;
}

export interface PipelineSummary {
  produced: number;
  archived: number;
  duplicatesDropped: number;
  missing: number;
  droppedByRetention: number;
  rejectedAtCloud: number;
  /** Records the acquisition quarantined (stream quarantine): they are in produced and archived too. */
  quarantinedOnDevice: number;
  /** Archived records the cloud found breaking their data contract. */
  invalidAtCloud: number;
  /**
   * Each device's last health as the cloud holds it when sampling ended (health goes out on every
   * change of status, so this is current), or null if none had arrived.
   */
  health: Record<string, { status: string; reasons: string[]; time: string } | null>;
  drained: boolean;
  epoch: string | null;
  watermarks: Record<string, number>;
  streams: Array<{ stream: string; produced: number; archived: number; missing: number; watermark: number; gaps: Array<[number, number]> }>;
  componentRestarts: Record<string, number>;
  samplingSeconds: number;
  drainSeconds: number;
}

interface DeviceProcess {
  componentName: string;
  child?: ChildProcess;
  restarts: number;
  /** Not restarted when it exits: stopped or killed on purpose. */
  held: boolean;
  restartTimer?: NodeJS.Timeout;
}

export class Pipeline {
  readonly paths: { greengrass: string; archive: string; store: string; config: string; device: string; deviceConfig: string; deviceLogs: string };
  /** What the ingest writes and the summary, progress and fleet view read. */
  readonly archive: ArchiveBackend;
  private broker?: EmbeddedBroker;
  private brokerUrl = '';
  private runtime?: ChildProcess;
  private ingest?: ChildProcess;
  private cli?: GreengrassIpc;
  private store?: StreamStore;
  private sampledByAcquisition = 0;
  private stopRequested?: () => void;
  /** A stop asked for before sampling began ends sampling as soon as it begins. */
  private stopEarly = false;
  private phase: Progress['phase'] = 'starting';
  private view?: FleetViewServer;
  /** Standalone: the component processes, by component name. */
  private readonly device = new Map<string, DeviceProcess>();

  constructor(private readonly options: PipelineOptions) {
    const root = resolve(options.root);
    const standalone = options.platform === 'standalone';
    this.paths = {
      greengrass: join(root, 'greengrass'),
      archive: join(root, 'cloud-archive'),
      store: standalone ? join(root, 'device', 'var', STORE_FILE_NAME) : join(root, 'greengrass', 'work', STREAM_BUFFER, STORE_FILE_NAME),
      config: join(root, 'deployment.json'),
      device: join(root, 'device'),
      deviceConfig: join(root, 'device', 'etc'),
      deviceLogs: join(root, 'device', 'logs'),
    };
    this.archive = options.archiveUrl
      ? new S3ArchiveBackend({ ...parseS3Url(options.archiveUrl), endpoint: options.s3Endpoint, region: options.s3Region })
      : new LocalFolderArchive(this.paths.archive);
  }

  /** Runs the whole cycle and returns the audited summary. */
  async run(): Promise<PipelineSummary> {
    const started = Date.now();
    let samplingEnded = started;
    let drained = false;
    let finalHealth: PipelineSummary['health'] = {};
    const progressTimer = setInterval(() => void this.reportProgress(), 1000);
    try {
      await this.start();
      this.phase = 'sampling';
      await new Promise<void>((resolveWait) => {
        this.stopRequested = resolveWait;
        if (this.stopEarly) resolveWait();
        if (this.options.durationMs !== undefined) setTimeout(resolveWait, this.options.durationMs);
      });
      samplingEnded = Date.now();
      finalHealth = await this.archivedHealth();
      this.phase = 'draining';
      await this.stopSampling();
      drained = await this.waitForDrain();
    } finally {
      this.phase = 'stopping';
      clearInterval(progressTimer);
      await this.reportProgress();
      await this.shutdown();
    }
    const summary = { ...(await this.audit(drained, (samplingEnded - started) / 1000, (Date.now() - samplingEnded) / 1000)), health: finalHealth };
    this.phase = 'done';
    return summary;
  }

  /** Ends sampling early (Ctrl-C); the pipeline still drains and stops cleanly. */
  requestStop(): void {
    this.stopEarly = true;
    this.stopRequested?.();
  }

  /** The runtime's status file: component states, pids, restarts. */
  runtimeStatus(): RuntimeStatus | undefined {
    const path = join(this.paths.greengrass, 'status.json');
    if (!existsSync(path)) return undefined;
    try {
      return JSON.parse(readFileSync(path, 'utf8')) as RuntimeStatus;
    } catch {
      return undefined;
    }
  }

  private async start(): Promise<void> {
    const root = resolve(this.options.root);
    if (!this.options.resume) rmSync(root, { recursive: true, force: true });
    mkdirSync(root, { recursive: true });
    await this.startView();
    const standalone = this.options.platform === 'standalone';
    if (standalone && this.options.publisherTransport === 'ipc') {
      throw new Error('--platform standalone has no nucleus to publish through: MqttPublisher uses its own MQTT 5 connection (--transport mqtt5, the default there)');
    }
    if (this.options.brokerUrl) {
      this.brokerUrl = this.options.brokerUrl;
    } else if (this.options.publisherTransport === 'mqtt5' || standalone) {
      throw new Error(
        `${standalone ? '--platform standalone' : '--transport mqtt5'} needs an MQTT 5 broker: pass --broker mqtt://host:port (for example a local mosquitto); the embedded aedes broker speaks MQTT 3.1.1 only`,
      );
    } else {
      this.broker = await startEmbeddedBroker();
      this.brokerUrl = this.broker.url;
    }
    const merge = mergeConfiguration(
      {
        [SENSOR_ACQUISITION]: { simulator: { timeScale: this.options.timeScale }, heartbeatIntervalMs: 1000 },
        [HEALTH_REPORTER]: { publishIntervalMs: DEMO_HEALTH_INTERVAL_MS },
        ...(this.options.publisherTransport === 'mqtt5' || standalone ? { [MQTT_PUBLISHER]: { transport: this.mqtt5TransportConfig() } } : {}),
      },
      this.options.configurationMerge ?? {},
    );
    writeFileSync(this.paths.config, JSON.stringify(merge, null, 2));
    if (standalone) this.writeDeviceConfiguration(merge);
    this.startIngest();
    if (standalone) await this.startDevice();
    else await this.startRuntime();
  }

  /** TLS file paths for a URL: only an mqtts:// one takes them. */
  private tlsFor(url: string): BrokerTlsFiles {
    const tls = this.options.brokerTls ?? {};
    if (!url.startsWith('mqtts://')) return {};
    return Object.fromEntries(Object.entries({ certPath: tls.certPath, keyPath: tls.keyPath, caPath: tls.caPath }).filter(([, v]) => v !== undefined));
  }

  private tlsArgs(url: string): string[] {
    const tls = this.tlsFor(url);
    return [...(tls.certPath ? ['--cert', tls.certPath] : []), ...(tls.keyPath ? ['--key', tls.keyPath] : []), ...(tls.caPath ? ['--ca', tls.caPath] : [])];
  }

  /**
   * What a device without Greengrass holds in /etc/elevator: platform.json (the brokers and
   * certificates a nucleus would hold) and one <Component>.json per component, the recipe's
   * DefaultConfiguration with this run's merge on top, as a deployment would produce.
   */
  private writeDeviceConfiguration(merge: Record<string, unknown>): void {
    mkdirSync(this.paths.deviceConfig, { recursive: true });
    const iotBroker = this.options.deviceBrokerUrl ?? this.brokerUrl;
    const platform: StandalonePlatformConfig = {
      localBroker: { url: this.localBrokerUrl() },
      iotCore: { brokerUrl: iotBroker, ...this.tlsFor(iotBroker) },
    };
    writeFileSync(join(this.paths.deviceConfig, PLATFORM_FILE), JSON.stringify(platform, null, 2));
    for (const { recipe } of loadRecipes(join(PROJECT_ROOT, 'recipes'))) {
      // Without a nucleus nothing reads nodeOptions from the file; the process gets it as
      // NODE_OPTIONS, as a systemd unit sets it (deploy/systemd/).
      this.nodeOptionsByComponent.set(recipe.ComponentName, String(recipe.ComponentConfiguration?.DefaultConfiguration?.nodeOptions ?? ''));
      const defaults = componentSettings(recipe.ComponentConfiguration?.DefaultConfiguration ?? {});
      const config = mergeConfiguration(defaults, (merge[recipe.ComponentName] as Record<string, unknown> | undefined) ?? {});
      writeFileSync(join(this.paths.deviceConfig, `${shortName(recipe.ComponentName)}.json`), JSON.stringify(config, null, 2));
    }
  }

  /** The standalone device's local bus: as given, else the broker itself when it is plain MQTT on loopback. */
  private localBrokerUrl(): string {
    if (this.options.localBrokerUrl) return this.options.localBrokerUrl;
    const { protocol, hostname } = new URL(this.brokerUrl);
    if (protocol === 'mqtt:' && ['127.0.0.1', 'localhost', '[::1]'].includes(hostname)) return this.brokerUrl;
    throw new Error(`--platform standalone needs a local MQTT 5 broker for the heartbeats (--local-broker mqtt://127.0.0.1:port): ${this.brokerUrl} is not plain MQTT on this machine`);
  }

  /** Standalone: the four bundles as plain processes, StreamBuffer first, as systemd would order them. */
  private async startDevice(): Promise<void> {
    mkdirSync(this.paths.deviceLogs, { recursive: true });
    mkdirSync(join(this.paths.device, 'var'), { recursive: true });
    for (const name of STANDALONE_ORDER) {
      this.startComponent(name);
      if (name === STREAM_BUFFER) {
        const buffer = this.device.get(STREAM_BUFFER)!;
        await waitUntil('StreamBuffer to create the stream store', () => existsSync(this.paths.store), 30_000, () => buffer.child?.exitCode !== null && buffer.child?.exitCode !== undefined);
      }
    }
    this.store = await openStoreWhenHealthy(this.paths.store, this.options.logger);
  }

  /** Standalone: each component's nodeOptions as its recipe ships it (read with the recipes in writeDeviceConfiguration). */
  private readonly nodeOptionsByComponent = new Map<string, string>();

  /** Standalone: starts (or starts again) one component process; it is restarted if it exits on its own. */
  startComponent(componentName: string): void {
    const entry = this.device.get(componentName) ?? { componentName, restarts: 0, held: false };
    this.device.set(componentName, entry);
    if (entry.child && entry.child.exitCode === null && entry.child.signalCode === null) return;
    entry.held = false;
    const logFile = join(this.paths.deviceLogs, `${componentName}.log`);
    const child = spawn(process.execPath, [join(PROJECT_ROOT, 'build', 'artifacts', componentName, 'main.js')], {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: this.paths.device,
      env: {
        ...process.env,
        ...this.options.runtimeEnv,
        AWS_IOT_THING_NAME: this.options.thingName,
        STORE_PATH: this.paths.store,
        [STANDALONE_ENV]: this.paths.deviceConfig,
        // What the systemd unit sets: the recipe's nodeOptions default (deploy/systemd/).
        NODE_OPTIONS: this.nodeOptionsByComponent.get(componentName) ?? '',
      },
    });
    const out = createWriteStream(logFile, { flags: 'a' });
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
    entry.child = child;
    child.once('exit', (code, signal) => {
      if (entry.held || this.phase === 'stopping' || this.phase === 'done') return;
      this.options.logger.error(`${componentName} exited; restarting it`, { code, signal, log: logFile, inMs: STANDALONE_RESTART_DELAY_MS });
      entry.restarts += 1;
      entry.restartTimer = setTimeout(() => {
        if (!entry.held && this.phase !== 'stopping' && this.phase !== 'done') this.startComponent(componentName);
      }, STANDALONE_RESTART_DELAY_MS);
    });
  }

  /** Standalone: SIGKILLs one component and leaves it down (until startComponent). Returns its pid. */
  killComponent(componentName: string): number | undefined {
    const entry = this.device.get(componentName);
    if (!entry?.child) return undefined;
    entry.held = true;
    if (entry.restartTimer) clearTimeout(entry.restartTimer);
    entry.child.kill('SIGKILL');
    return entry.child.pid;
  }

  /** Standalone: SIGTERM, as systemctl stop; the component finishes its work and exits. Left down. */
  async stopComponent(componentName: string, timeoutMs = 60_000): Promise<void> {
    const entry = this.device.get(componentName);
    if (!entry) return;
    entry.held = true;
    if (entry.restartTimer) clearTimeout(entry.restartTimer);
    await stopProcess(entry.child, timeoutMs);
  }

  /**
   * MqttPublisher's own MQTT 5 connection. Its client id is not the thing name, which the
   * runtime's IoT bridge already uses: two connections with one id would take each other's session.
   */
  private mqtt5TransportConfig(): Record<string, unknown> {
    const brokerUrl = this.options.deviceBrokerUrl ?? this.brokerUrl;
    return {
      type: 'mqtt5',
      brokerUrl,
      clientId: `${this.options.thingName}-publisher`,
      minReconnectDelayMs: 200,
      maxReconnectDelayMs: 5000,
      ...this.tlsFor(brokerUrl),
      ...(this.options.willDelaySec !== undefined ? { willDelaySec: this.options.willDelaySec } : {}),
    };
  }

  /** The cloud ingest process; it keeps its archive and broker session across restarts. */
  startIngest(): void {
    this.ingest = this.spawnNode('cloud-ingest', join(DIST, 'cloud/main.js'), [
      '--broker',
      this.brokerUrl,
      '--archive',
      this.options.archiveUrl ?? this.paths.archive,
      ...(this.options.s3Endpoint ? ['--s3-endpoint', this.options.s3Endpoint] : []),
      ...(this.options.s3Region ? ['--s3-region', this.options.s3Region] : []),
      '--health-interval-ms',
      String(DEMO_HEALTH_INTERVAL_MS),
      ...this.tlsArgs(this.brokerUrl),
      ...(this.options.ingestArgs ?? []),
    ]);
  }

  killIngest(): void {
    this.ingest?.kill('SIGKILL');
  }

  /** Every device process at once, as a power cut would: the runtime and each component's process group. */
  powerCut(): number[] {
    if (this.options.platform === 'standalone') {
      const killed = [...this.device.keys()].map((name) => this.killComponent(name)).filter((pid): pid is number => pid !== undefined);
      // As after a real power cut, the device comes back: systemd starts every unit again.
      for (const name of STANDALONE_ORDER) setTimeout(() => this.startComponent(name), STANDALONE_RESTART_DELAY_MS);
      return killed;
    }
    const pids = Object.values(this.runtimeStatus()?.components ?? {})
      .map((c) => c.pid)
      .filter((pid): pid is number => pid !== undefined);
    // The local CLI is on the device and goes down with it; left open, it would chase the dying
    // runtime's socket with reconnects until startRuntime replaced it.
    void this.cli?.close().catch(() => undefined);
    this.cli = undefined;
    for (const pid of pids) killGroup(pid);
    this.runtime?.kill('SIGKILL');
    return pids;
  }

  /** Whether the runtime process this pipeline started last is still running. */
  runtimeRunning(): boolean {
    return this.runtime !== undefined && this.runtime.exitCode === null && this.runtime.signalCode === null;
  }

  /** Starts the runtime (again) from what is on disk, and reconnects the local CLI to it. */
  async startRuntime(): Promise<void> {
    await this.cli?.close().catch(() => undefined);
    await this.store?.close().catch(() => undefined);
    this.cli = undefined;
    this.store = undefined;
    const cliInfo = join(this.paths.greengrass, 'cli_ipc_info', 'ipc.json');
    rmSync(cliInfo, { force: true });
    const runtime = this.spawnNode(
      'runtime',
      join(DIST, 'runtime/main.js'),
      [
        '--root', this.paths.greengrass,
        '--recipes', join(PROJECT_ROOT, 'recipes'),
        '--artifacts', join(PROJECT_ROOT, 'build/artifacts'),
        '--thing', this.options.thingName,
        '--broker', this.options.deviceBrokerUrl ?? this.brokerUrl,
        ...this.tlsArgs(this.options.deviceBrokerUrl ?? this.brokerUrl),
        '--config', this.paths.config,
        ...(this.options.runtimeArgs ?? []),
      ],
      this.options.runtimeEnv,
    );
    this.runtime = runtime;
    await waitUntil('the runtime to write its CLI socket info', () => existsSync(cliInfo), 30_000, () => runtime.exitCode !== null || runtime.signalCode !== null);
    const { socketPath, token } = JSON.parse(readFileSync(cliInfo, 'utf8')) as { socketPath: string; token: string };
    this.cli = await GreengrassIpc.connect({ logger: this.options.logger, socketPath, authToken: token, connectDeadlineMs: 10_000 });
    await this.cli.subscribeToTopic(heartbeatWildcard(), (message) => {
      const beat = message as { component?: string; metrics?: { sampled?: number } };
      if (beat.component === 'SensorAcquisition' && typeof beat.metrics?.sampled === 'number') this.sampledByAcquisition = beat.metrics.sampled;
    });
    await waitUntil('the stream store to exist', () => existsSync(this.paths.store), 30_000, () => runtime.exitCode !== null);
    this.store = await openStoreWhenHealthy(this.paths.store, this.options.logger);
  }

  /** Greengrass CLI style: StopComponent makes the acquisition flush what it sampled and exit. */
  private async stopSampling(): Promise<void> {
    if (this.options.platform === 'standalone') return this.stopComponent(SENSOR_ACQUISITION);
    await this.cli!.stopComponent(SENSOR_ACQUISITION);
  }

  private async waitForDrain(): Promise<boolean> {
    const deadline = Date.now() + this.options.drainTimeoutMs;
    while (Date.now() < deadline) {
      const stats = await this.storeStats();
      if (stats && stats.backlogRecords === 0) return true;
      await new Promise((r) => setTimeout(r, 250));
    }
    this.options.logger.error('backlog did not drain in time', { drainTimeoutMs: this.options.drainTimeoutMs });
    return false;
  }

  private async shutdown(): Promise<void> {
    // First, so that a failure further down can never leave the view's server holding the process open.
    await this.view?.stop();
    await this.cli?.close().catch(() => undefined);
    await this.store?.close().catch(() => undefined);
    // Device first, so nothing publishes into a cloud that is going away; then the cloud.
    for (const name of [...STANDALONE_ORDER].reverse()) await this.stopComponent(name);
    await stopProcess(this.runtime, 60_000);
    await stopProcess(this.ingest, 15_000);
    await this.broker?.close();
  }

  /** The fleet view's URL, once it listens. */
  get viewUrl(): string | undefined {
    return this.view?.port === undefined ? undefined : this.view.url;
  }

  /** The view only reads the archive folder, so it runs in this process. A port in use costs the view, not the run. */
  private async startView(): Promise<void> {
    if (this.options.viewPort === undefined) return;
    const view = new FleetViewServer({ archive: this.archive, port: this.options.viewPort, logger: this.options.logger });
    try {
      const url = await view.start();
      this.view = view;
      this.options.onViewStarted?.(url);
    } catch (error) {
      this.options.logger.error('fleet view not started', { port: this.options.viewPort, error: errorMessage(error) });
      await view.stop();
    }
  }

  async storeStats(): Promise<StoreStats | undefined> {
    try {
      return await this.store?.stats();
    } catch (error) {
      this.options.logger.warn('could not read store stats', { error: errorMessage(error) });
      return undefined;
    }
  }

  private async ingestStatus(): Promise<{ recordsArchived?: number; duplicatesDropped?: number; rejected?: Record<string, number>; invalidRecords?: Record<string, number> }> {
    try {
      const body = await this.archive.get(STATUS_KEY);
      return body ? JSON.parse(body.toString('utf8')) : {};
    } catch {
      return {}; // not written yet, or the archive is unreachable for a moment: progress only
    }
  }

  private restarts(): Record<string, number> {
    if (this.options.platform === 'standalone') return Object.fromEntries([...this.device.values()].map((p) => [p.componentName, p.restarts]));
    const status = this.runtimeStatus();
    return Object.fromEntries(Object.entries(status?.components ?? {}).map(([name, c]) => [name, c.restarts]));
  }

  private async reportProgress(): Promise<void> {
    if (!this.options.onProgress) return;
    const stats = await this.storeStats();
    const stored = sum(stats?.streams.map((s) => s.appended));
    const unsent = sum(stats?.streams.map((s) => s.unsentRecords));
    this.options.onProgress({
      phase: this.phase,
      sampled: Math.max(this.sampledByAcquisition, stored),
      stored,
      sent: stored - unsent,
      acked: sum(stats?.streams.map((s) => s.watermark)),
      archived: (await this.ingestStatus()).recordsArchived ?? 0,
      backlog: stats?.backlogRecords ?? 0,
      restarts: sum(Object.values(this.restarts())),
    });
  }

  /** The cloud's last health message of this device (cloud/README.md, health/<device>/latest.json). */
  private async archivedHealth(): Promise<PipelineSummary['health']> {
    try {
      const body = await this.archive.get(healthKey(this.options.thingName));
      if (!body) return { [this.options.thingName]: null };
      const { health } = JSON.parse(body.toString('utf8')) as { health: { status: string; reasons: string[]; time: string } };
      return { [this.options.thingName]: { status: health.status, reasons: health.reasons, time: health.time } };
    } catch {
      return { [this.options.thingName]: null };
    }
  }

  /** Counts from the archive's contents, compared with what the store says was produced. */
  private async audit(drained: boolean, samplingSeconds: number, drainSeconds: number): Promise<Omit<PipelineSummary, 'health'>> {
    const store = await StreamStore.open(this.paths.store, { owner: false, logger: this.options.logger });
    const stats = await store.stats();
    await store.close();
    const audit = await auditArchive(this.archive);
    const ingest = await this.ingestStatus();
    const streams = stats.streams.map((s) => {
      const archivedStream = audit.streams.find((a) => a.device === this.options.thingName && a.stream === s.stream && a.epoch === stats.epoch);
      const archived = archivedStream?.uniqueRecords ?? 0;
      const dropped = sum(Object.values(s.drops));
      return {
        stream: s.stream,
        produced: s.appended,
        archived,
        missing: Math.max(0, s.appended - archived - dropped),
        watermark: archivedStream?.watermark ?? 0,
        gaps: archivedStream?.gaps ?? [],
      };
    });
    return {
      produced: sum(streams.map((s) => s.produced)),
      archived: audit.uniqueRecords,
      duplicatesDropped: ingest.duplicatesDropped ?? 0,
      missing: sum(streams.map((s) => s.missing)),
      droppedByRetention: sum(stats.streams.map((s) => sum(Object.values(s.drops)))),
      rejectedAtCloud: sum(Object.values(ingest.rejected ?? {})),
      quarantinedOnDevice: streams.find((s) => s.stream === STREAM_QUARANTINE)?.produced ?? 0,
      invalidAtCloud: sum(Object.values(ingest.invalidRecords ?? {})),
      drained,
      epoch: stats.epoch,
      watermarks: Object.fromEntries(streams.map((s) => [s.stream, s.watermark])),
      streams,
      componentRestarts: this.restarts(),
      samplingSeconds: round1(samplingSeconds),
      drainSeconds: round1(drainSeconds),
    };
  }

  private spawnNode(name: string, script: string, args: string[], env: Record<string, string> = {}): ChildProcess {
    const logFile = join(resolve(this.options.root), `${name}.log`);
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], cwd: PROJECT_ROOT, env: { ...process.env, ...env } });
    const out = createWriteStream(logFile, { flags: 'a' });
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
    child.once('exit', (code, signal) => {
      if (this.phase !== 'stopping' && this.phase !== 'done' && signal !== 'SIGKILL') {
        this.options.logger.error(`${name} exited unexpectedly`, { code, signal, log: logFile });
      }
    });
    return child;
  }
}

/** com.elevator.MqttPublisher -> MqttPublisher: the component's own name, and its configuration file's. */
function shortName(componentName: string): string {
  return componentName.split('.').pop()!;
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

export async function stopProcess(child: ChildProcess | undefined, timeoutMs: number): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
}

async function waitUntil(what: string, ready: () => boolean, timeoutMs: number, failed: () => boolean = () => false): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ready()) {
    if (failed()) throw new Error(`gave up waiting for ${what}: the process it depends on has exited (see its log)`);
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function sum(values: number[] | undefined): number {
  return (values ?? []).reduce((a, b) => a + b, 0);
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}

export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) throw new Error(`duration "${text}" is not like 20s, 500ms, 5m or 1h`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(match[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Number(match[1]) * unit;
}
