import type { GreengrassIpc } from './ipc';
import type { Logger } from './logger';
import type { LiveConfigurable } from './deployment-hooks';
import { IpcPlatform } from './platform-ipc';
import { StandalonePlatform } from './platform-standalone';

/**
 * What the components need from the device they run on, and nothing more. Two implementations:
 * - Greengrass (platform-ipc.ts): every call is the Greengrass IPC operation of the same name,
 *   exactly as before this seam existed;
 * - standalone (platform-standalone.ts): a plain Linux device with no nucleus, selected by
 *   ELEVATOR_STANDALONE_CONFIG_DIR: configuration from <dir>/<Component>.json, the local bus over
 *   a local MQTT 5 broker, IoT Core over the SDK's MQTT 5 client with mutual TLS.
 * The contract between the two is docs/CONTRACTS.md ("Running without Greengrass").
 */
export type PlatformKind = 'greengrass' | 'standalone';

/** Connection figures for the heartbeat (heartbeat-metrics.ts reports them as ipcReconnects, ipcCallFailures). */
export interface PlatformCounters {
  connects: number;
  disconnects: number;
  callFailures: number;
}

export interface ConfigurationWatchOptions<C> {
  logger: Logger;
  schema: object;
  current: () => C;
  onValidConfiguration: (config: C) => Promise<void>;
  component: LiveConfigurable<C>;
}

/** How configuration changes reach a running component: deployments under Greengrass, SIGHUP standalone. */
export interface ConfigurationWatch {
  /** Before the component opens its store: under Greengrass, so an update can be deferred during a migration. */
  watchUpdates(): Promise<void>;
  /** Once the component runs. */
  watchConfiguration(): Promise<void>;
  readonly metrics: Record<string, number>;
}

export interface Platform {
  readonly kind: PlatformKind;
  readonly counters: PlatformCounters;
  /** The platform's own figures for the heartbeat, if it keeps any. */
  readonly metrics?: Record<string, number>;
  /** The Greengrass IPC client, for what only a nucleus offers (the IPC transport); undefined standalone. */
  readonly ipc?: GreengrassIpc;
  /** Where the configuration comes from, when naming it helps an error message (the file, standalone). */
  readonly configurationSource?: string;
  /** The component's own configuration, unvalidated (the caller validates with its schema). */
  readConfiguration(): Promise<Record<string, unknown>>;
  /** Local pub/sub between components on this device (heartbeats); JSON messages. */
  publishLocal(topic: string, message: unknown): Promise<void>;
  subscribeLocal(topic: string, onMessage: (message: unknown, topic: string) => void): Promise<void>;
  /** QoS 1 by default. A rejection is the caller's to count: the message was not accepted. */
  publishToIoTCore(topic: string, payload: Buffer | string, options?: { qos?: 0 | 1; retain?: boolean }): Promise<void>;
  subscribeToIoTCore(filter: string, onMessage: (payload: Buffer, topic: string) => void): Promise<void>;
  /** A named shadow update (shadowName "" is the classic shadow). */
  updateThingShadow(thingName: string, shadowName: string, document: Record<string, unknown>): Promise<unknown>;
  /** The component's lifecycle state; a no-op where no nucleus listens. */
  updateState(state: 'RUNNING' | 'ERRORED'): Promise<void>;
  configurationWatch<C>(options: ConfigurationWatchOptions<C>): ConfigurationWatch;
  close(): Promise<void>;
}

/** Set to a folder to run without Greengrass; see docs/RUN-WITHOUT-GREENGRASS.md. */
export const STANDALONE_ENV = 'ELEVATOR_STANDALONE_CONFIG_DIR';

export function platformKindFromEnv(env: NodeJS.ProcessEnv = process.env): PlatformKind {
  return env[STANDALONE_ENV] ? 'standalone' : 'greengrass';
}

/** The platform this process runs on: standalone when ELEVATOR_STANDALONE_CONFIG_DIR is set, else Greengrass IPC. */
export async function connectPlatform(options: { component: string; thingName: string; logger: Logger }): Promise<Platform> {
  const dir = process.env[STANDALONE_ENV];
  if (dir) return StandalonePlatform.open({ ...options, configDir: dir });
  return IpcPlatform.connect(options.logger);
}
