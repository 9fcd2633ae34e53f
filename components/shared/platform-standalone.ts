import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Mqtt5Transport, parseBrokerUrl } from '../mqtt-publisher/mqtt5-transport';
import { componentSettings } from './deployment-hooks';
import { errorMessage, type Logger } from './logger';
import type { ConfigurationWatch, ConfigurationWatchOptions, Platform, PlatformCounters } from './platform';
import { shadowTopic } from './topics';
import { compileValidator, type Validator } from './validation';

/**
 * The platform on a plain Linux device: no nucleus, no local runtime (docs/RUN-WITHOUT-GREENGRASS.md).
 * - Configuration: <dir>/<Component>.json, the same keys as the recipe's DefaultConfiguration,
 *   checked with the component's own schema; SIGHUP re-reads it (there are no deployments).
 * - Local pub/sub (heartbeats): a local MQTT 5 broker (mosquitto on the device), plain MQTT on a
 *   loopback address only, as the nucleus's IPC socket never leaves the device either.
 * - IoT Core: its own MQTT 5 connection per component that needs one (client id
 *   <thing>-<component>), opened at the first use, so SensorAcquisition and StreamBuffer never
 *   connect. Shadows over the reserved $aws/things/<thing>/shadow topics.
 * - No UpdateState (systemd sees the process), no component updates to defer.
 * The device-wide settings (broker addresses, certificates) are in <dir>/platform.json, the
 * part a nucleus's own configuration would hold.
 */
export const PLATFORM_FILE = 'platform.json';
export const DEFAULT_LOCAL_BROKER_URL = 'mqtt://127.0.0.1:1883';

export interface StandalonePlatformConfig {
  localBroker: { url: string };
  iotCore?: {
    brokerUrl: string;
    certPath?: string;
    keyPath?: string;
    caPath?: string;
    keepAliveSec?: number;
  };
}

const PEM_PATH = { type: 'string', minLength: 1, maxLength: 4096 };

export const standalonePlatformSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    localBroker: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { url: { type: 'string', pattern: '^mqtts?://[^/]+$', maxLength: 1024, default: DEFAULT_LOCAL_BROKER_URL } },
    },
    iotCore: {
      type: 'object',
      additionalProperties: false,
      required: ['brokerUrl'],
      properties: {
        brokerUrl: { type: 'string', pattern: '^mqtts?://[^/]+$', maxLength: 1024 },
        certPath: PEM_PATH,
        keyPath: PEM_PATH,
        caPath: PEM_PATH,
        // AWS IoT Core accepts a keep-alive of 30..1200 s (IoT Core quotas, "Keep-alive period").
        keepAliveSec: { type: 'integer', minimum: 30, maximum: 1200 },
      },
      // Mutual TLS needs both halves.
      dependencies: { certPath: ['keyPath'], keyPath: ['certPath'] },
    },
  },
};

const validatePlatform: Validator<StandalonePlatformConfig> = compileValidator<StandalonePlatformConfig>(standalonePlatformSchema);

/** A JSON file, or undefined when it does not exist; any other problem names the file. */
function readJsonFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`${path}: cannot be read: ${errorMessage(error)}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`${path}: not valid JSON: ${errorMessage(error)}`);
  }
}

export function readPlatformConfig(configDir: string): StandalonePlatformConfig {
  const path = join(configDir, PLATFORM_FILE);
  const raw = readJsonFile(path) ?? {};
  const checked = validatePlatform(raw);
  if (!checked.ok) throw new Error(`${path}: invalid: ${checked.reason}`);
  return checked.value;
}

/** Heartbeats carry the state of this device only: a plain-text bus must never leave it. */
function checkLocalBroker(url: string): void {
  const { tls, host } = parseBrokerUrl(url);
  if (!tls && !['127.0.0.1', 'localhost', '::1', '[::1]'].includes(host)) {
    throw new Error(`localBroker.url "${url}" is plain MQTT to another host: use a loopback address (the broker on this device) or mqtts://`);
  }
}

/** HealthReporter -> health-reporter, for client ids. */
function kebab(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
}

export interface StandaloneOptions {
  configDir: string;
  component: string;
  thingName: string;
  logger: Logger;
}

export class StandalonePlatform implements Platform {
  readonly kind = 'standalone' as const;
  readonly ipc = undefined;
  readonly metrics = { shadowUpdatesRejected: 0 };
  private iot?: Mqtt5Transport;
  private readonly shadowsWatched = new Set<string>();
  private stateLogged = false;

  private constructor(
    private readonly options: StandaloneOptions,
    readonly config: StandalonePlatformConfig,
    private readonly local: Mqtt5Transport,
  ) {}

  /** Reads platform.json and starts the local bus connection (it retries on its own until the broker is up). */
  static async open(options: StandaloneOptions): Promise<StandalonePlatform> {
    const config = readPlatformConfig(options.configDir);
    checkLocalBroker(config.localBroker.url);
    const local = new Mqtt5Transport({
      brokerUrl: config.localBroker.url,
      clientId: `${options.thingName}-${kebab(options.component)}-local`,
      // Heartbeats are current state: nothing is worth keeping for a component that is gone.
      sessionExpirySec: 0,
      minReconnectDelayMs: 500,
      maxReconnectDelayMs: 10_000,
      logger: options.logger,
    });
    local.start();
    options.logger.info('running without Greengrass', { configDir: options.configDir, localBroker: config.localBroker.url, iotCore: config.iotCore?.brokerUrl ?? null });
    return new StandalonePlatform(options, config, local);
  }

  get counters(): PlatformCounters {
    return { connects: this.local.counters.connectionSuccess, disconnects: this.local.counters.disconnections, callFailures: this.local.counters.publishFailures };
  }

  /** <dir>/<Component>.json; a missing file means every default, and says so. */
  async readConfiguration(): Promise<Record<string, unknown>> {
    const path = this.configPath;
    const raw = readJsonFile(path);
    if (raw === undefined) {
      this.options.logger.warn('no configuration file; every key takes its default', { path });
      return {};
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${path}: must hold a JSON object of configuration keys`);
    return raw as Record<string, unknown>;
  }

  get configurationSource(): string {
    return this.configPath;
  }

  get configPath(): string {
    return join(this.options.configDir, `${this.options.component}.json`);
  }

  async publishLocal(topic: string, message: unknown): Promise<void> {
    await this.local.publish(topic, Buffer.from(JSON.stringify(message)), { qos: 0 });
  }

  /** Non-JSON payloads reach the handler as text, as IPC hands over a binary message: the receiver counts it as invalid. */
  async subscribeLocal(topic: string, onMessage: (message: unknown, topic: string) => void): Promise<void> {
    await this.local.subscribe(topic, (received, payload) => {
      const text = payload.toString('utf8');
      let message: unknown = text;
      try {
        message = JSON.parse(text);
      } catch {
        // handed over as text
      }
      onMessage(message, received);
    });
  }

  async publishToIoTCore(topic: string, payload: Buffer | string, options: { qos?: 0 | 1; retain?: boolean } = {}): Promise<void> {
    await this.iotCore().publish(topic, Buffer.isBuffer(payload) ? payload : Buffer.from(payload), { qos: options.qos ?? 1, retain: options.retain });
  }

  async subscribeToIoTCore(filter: string, onMessage: (payload: Buffer, topic: string) => void): Promise<void> {
    await this.iotCore().subscribe(filter, (topic, payload) => onMessage(payload, topic));
  }

  /**
   * Publishes the update request (QoS 1) and resolves on the broker's PUBACK. The shadow service
   * answers on .../update/rejected when it refuses a document (version conflict, too large): that
   * arrives later and is logged and counted (shadowUpdatesRejected), not awaited, so a broker
   * with no shadow service (a local test broker) does not stall health reporting.
   */
  async updateThingShadow(thingName: string, shadowName: string, document: Record<string, unknown>): Promise<unknown> {
    const clientToken = randomUUID();
    await this.watchShadowRejections(thingName, shadowName);
    await this.publishToIoTCore(shadowTopic(thingName, shadowName, 'update'), JSON.stringify({ ...document, clientToken }), { qos: 1 });
    return { clientToken };
  }

  private async watchShadowRejections(thingName: string, shadowName: string): Promise<void> {
    const topic = shadowTopic(thingName, shadowName, 'update/rejected');
    if (this.shadowsWatched.has(topic)) return;
    this.shadowsWatched.add(topic);
    try {
      await this.subscribeToIoTCore(topic, (payload) => {
        this.metrics.shadowUpdatesRejected += 1;
        this.options.logger.warn('shadow update rejected by the shadow service', { shadow: shadowName, response: payload.toString('utf8').slice(0, 512) });
      });
    } catch (error) {
      // Updates still go out; only their rejections would go unseen, and the log says so.
      this.options.logger.warn('cannot subscribe to shadow rejections; rejected updates will not be seen', { topic, error: errorMessage(error) });
    }
  }

  async updateState(state: 'RUNNING' | 'ERRORED'): Promise<void> {
    if (this.stateLogged) return;
    this.stateLogged = true;
    this.options.logger.info('no nucleus to tell the component state; systemd watches the process', { state });
  }

  configurationWatch<C>(options: ConfigurationWatchOptions<C>): ConfigurationWatch {
    return new SighupReload<C>(options, () => this.readConfiguration(), this.configPath);
  }

  async close(): Promise<void> {
    await this.iot?.close();
    await this.local.close();
  }

  private iotCore(): Mqtt5Transport {
    if (this.iot) return this.iot;
    const iot = this.config.iotCore;
    if (!iot) throw new Error(`${join(this.options.configDir, PLATFORM_FILE)}: "iotCore" is not set, and ${this.options.component} publishes to AWS IoT Core`);
    this.iot = new Mqtt5Transport({
      ...iot,
      clientId: `${this.options.thingName}-${kebab(this.options.component)}`,
      logger: this.options.logger,
    });
    this.iot.start();
    return this.iot;
  }
}

/**
 * Without deployments, a changed configuration file is applied on SIGHUP (systemctl reload):
 * re-read, checked with the component's schema, and applied live as a deployment would be. An
 * invalid file keeps the running configuration and says why.
 */
export class SighupReload<C> implements ConfigurationWatch {
  readonly metrics = { reloadsApplied: 0, reloadsRejected: 0 };
  private readonly validate: Validator<C>;
  private applying: Promise<void> = Promise.resolve();

  constructor(
    private readonly options: ConfigurationWatchOptions<C>,
    private readonly read: () => Promise<Record<string, unknown>>,
    private readonly path: string,
  ) {
    this.validate = compileValidator<C>(options.schema);
  }

  async watchUpdates(): Promise<void> {
    // No component updates without a nucleus: a new version arrives as a new package and a restart.
  }

  async watchConfiguration(): Promise<void> {
    process.on('SIGHUP', () => {
      this.applying = this.applying.then(() => this.reload());
    });
  }

  /** Exposed for tests that cannot send a signal to themselves. */
  async reload(): Promise<void> {
    const { logger } = this.options;
    try {
      const checked = this.validate(structuredClone(componentSettings(await this.read())));
      if (!checked.ok) {
        this.metrics.reloadsRejected += 1;
        logger.error('configuration file is invalid; keeping the running configuration', { path: this.path, reason: checked.reason });
        return;
      }
      if (JSON.stringify(checked.value) === JSON.stringify(this.options.current())) {
        logger.info('configuration file unchanged', { path: this.path });
        return;
      }
      await this.options.onValidConfiguration(checked.value);
      await this.options.component.applyConfiguration?.(checked.value);
      this.metrics.reloadsApplied += 1;
      logger.info('configuration reloaded', { path: this.path, config: checked.value });
    } catch (error) {
      this.metrics.reloadsRejected += 1;
      logger.error('could not reload the configuration file', { path: this.path, error: errorMessage(error) });
    }
  }
}
