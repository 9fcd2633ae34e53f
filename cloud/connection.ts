import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { readBrokerTls, type BrokerTlsFiles } from '../components/shared/broker-tls';
import { errorMessage, type Logger } from '../components/shared/logger';

/**
 * AWS IoT Core accepts at most 1 CONNECT per second per client id (AWS IoT Core quotas,
 * "Connect requests per second per client ID"); retrying faster only earns throttling.
 */
export const MIN_RECONNECT_PERIOD_MS = 1000;
export const DEFAULT_RECONNECT_PERIOD_MS = 2000;

export interface IngestClientOptions {
  reconnectPeriodMs?: number;
  keepaliveSec?: number;
  connectTimeoutMs?: number;
  /** Default false (a persistent session); a client that only publishes wants none. */
  clean?: boolean;
  /** PEM files for an mqtts:// broker: client certificate and key (mutual TLS), and the CA that signed the broker (else the system's). */
  tls?: BrokerTlsFiles;
}

/**
 * The ingest's MQTT connection. clean: false with a stable client id makes the broker keep the
 * subscription and queue QoS 1 messages while the ingest is down or restarting; they are
 * delivered after it reconnects. MQTT.js retries forever at reconnectPeriod, so the ingest rides
 * out broker restarts instead of exiting.
 */
export function createIngestClient(url: string, clientId: string, logger: Logger, options: IngestClientOptions = {}): MqttClient {
  const reconnectPeriod = options.reconnectPeriodMs ?? DEFAULT_RECONNECT_PERIOD_MS;
  if (!(reconnectPeriod >= MIN_RECONNECT_PERIOD_MS)) {
    throw new RangeError(
      `reconnectPeriodMs must be >= ${MIN_RECONNECT_PERIOD_MS} (AWS IoT Core allows 1 CONNECT/s per client id), got ${reconnectPeriod}`,
    );
  }
  const clientOptions: IClientOptions = {
    clientId,
    clean: options.clean ?? false,
    reconnectPeriod,
    keepalive: options.keepaliveSec ?? 60,
    connectTimeout: options.connectTimeoutMs ?? 10_000,
    // CloudIngest subscribes again on every connect itself, so MQTT.js's copy would be a duplicate.
    resubscribe: false,
    ...readBrokerTls(url, options.tls),
  };
  const client = mqtt.connect(url, clientOptions);
  watchConnection(client, logger, url);
  return client;
}

/**
 * Logs the connection lifecycle. Failed attempts repeat every reconnect period for as long as
 * the broker is away, so only the first of a streak and then every 30th are logged.
 */
export function watchConnection(client: MqttClient, logger: Logger, url: string): void {
  let failures = 0;
  client.on('connect', (connack) => {
    logger.info('connected to broker', { url, sessionPresent: connack.sessionPresent, afterFailures: failures });
    failures = 0;
  });
  client.on('offline', () => logger.warn('broker connection lost; reconnecting', { url }));
  client.on('error', (error) => {
    failures += 1;
    if (failures === 1 || failures % 30 === 0) logger.warn('broker connection error', { url, error: errorMessage(error), failures });
  });
  client.on('disconnect', (packet) => logger.warn('broker sent DISCONNECT', { url, reasonCode: packet.reasonCode }));
}
