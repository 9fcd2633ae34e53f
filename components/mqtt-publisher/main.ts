import { resolvesWithin } from '../shared/backoff';
import { runComponent } from '../shared/component';
import { errorMessage, type Logger } from '../shared/logger';
import { STANDALONE_ENV, type Platform } from '../shared/platform';
import { openStoreWhenHealthy, storePathFromEnv } from '../shared/store-open';
import { mqttPublisherConfigSchema, type MqttPublisherConfig, type TransportConfig } from './config';
import { DEFAULT_WILL_DELAY_SEC, deviceStatusOptions } from './device-status';
import { IpcTransport } from './ipc-transport';
import { Mqtt5Transport } from './mqtt5-transport';
import { Publisher } from './publisher';
import type { Transport } from './transport';

/** How long a start without a broker connection goes before it says so in the log. */
const CONNECT_WARNING_AFTER_MS = 10_000;
/**
 * At SIGTERM the envelope in flight may be waiting for a PUBACK over a dead link, for as long as
 * the outage lasts. After this long the transport is closed, which fails that publish (never
 * marked sent), well inside the nucleus's default 15 s shutdown timeout.
 */
const SHUTDOWN_GRACE_MS = 5_000;

interface BuiltTransport {
  transport: Transport;
  metrics(): Record<string, unknown>;
  close(): Promise<void>;
}

/** Checked before the store is opened, so a device without a nucleus hears about it at once. */
function checkTransportPlatform(config: TransportConfig, platform: Platform): void {
  if (config.type === 'ipc' && !platform.ipc) {
    throw new Error(
      `transport.type "ipc" publishes through the Greengrass nucleus, and there is none (${STANDALONE_ENV} is set): set transport.type "mqtt5" with brokerUrl and the certificate paths in ${platform.configurationSource ?? 'the configuration'}`,
    );
  }
}

function buildTransport(config: TransportConfig, platform: Platform, thingName: string, logger: Logger): BuiltTransport {
  if (config.type === 'ipc') {
    checkTransportPlatform(config, platform);
    const transport = new IpcTransport(platform.ipc!);
    return { transport, metrics: () => ({ transport: transport.name }), close: () => transport.close() };
  }
  const { type: _type, willDelaySec, ...options } = config;
  const clientId = options.clientId ?? thingName;
  // The connection is the device's status source: online on connect, its will offline (device-status.ts).
  const status = deviceStatusOptions(thingName, clientId, willDelaySec ?? DEFAULT_WILL_DELAY_SEC);
  const transport = new Mqtt5Transport({ ...options, ...status, clientId, logger });
  transport.start();
  // Not awaited: an offline device still starts, and its records wait in the store.
  transport.waitConnected(CONNECT_WARNING_AFTER_MS).catch((error) => logger.warn('MQTT 5: not connected yet; records wait in the store and the client keeps trying', { error: errorMessage(error) }));
  return {
    transport,
    metrics: () => ({ transport: transport.name, mqtt5: { connected: transport.isConnected, ...transport.counters } }),
    close: () => transport.close(),
  };
}

// Wiring only: store -> publisher -> transport (IPC or MQTT 5, per configuration; MQTT 5 only without Greengrass); acks come back on the same transport.
void runComponent<MqttPublisherConfig>({
  name: 'MqttPublisher',
  configSchema: mqttPublisherConfigSchema,
  heartbeatIntervalMs: (config) => config.heartbeatIntervalMs,
  async start({ config, logger, thingName, platform }) {
    checkTransportPlatform(config.transport, platform);
    const store = await openStoreWhenHealthy(storePathFromEnv(), logger);
    const path = buildTransport(config.transport, platform, thingName, logger);
    logger.info('publish path', { transport: path.transport.name, ...(config.transport.type === 'mqtt5' ? { broker: config.transport.brokerUrl } : {}) });
    const publisher = new Publisher(store, path.transport, thingName, config, logger);
    await publisher.start();
    const startedWith = JSON.stringify(config.transport);
    return {
      metrics: () => ({ ...publisher.metrics, ...publisher.losses.metrics, ...publisher.backfill.metrics, ...path.metrics(), epoch: store.epoch }),
      applyConfiguration: (next) => {
        if (JSON.stringify(next.transport) !== startedWith) logger.warn('transport configuration changed: it applies at the next restart of this component', { running: config.transport.type, configured: next.transport.type });
        publisher.reconfigure(next);
      },
      deferUpdate: () => publisher.updateDeferral(),
      async stop() {
        // Publisher first: it finishes the envelope in flight over the transport, then nothing more goes out.
        const stopped = publisher.stop();
        await resolvesWithin(stopped, SHUTDOWN_GRACE_MS);
        await path.close();
        await stopped;
        await store.close();
      },
    };
  },
});
