import { LOG_LEVEL_SCHEMA, type LogLevel } from '../shared/component';
import type { Mqtt5TransportOptions } from './mqtt5-transport';
import type { PublisherConfig } from './publisher';

/**
 * How the publisher reaches the broker. "ipc" (the default): PublishToIoTCore through the
 * Greengrass nucleus and its spooler. "mqtt5": its own MQTT 5 connection straight to the broker
 * (AWS IoT Core or any MQTT 5 broker), for devices without a nucleus spooler worth having, and for
 * running without Greengrass. Unset mqtt5 fields take MQTT5_DEFAULTS (mqtt5-transport.ts).
 */
export type TransportConfig =
  | { type: 'ipc' }
  | ({
      type: 'mqtt5';
      /** Default: the thing name (AWS_IOT_THING_NAME), which is what an IoT Core policy usually allows. */
      clientId?: string;
      /** Delay before the broker publishes the connection's "offline" last will (device-status.ts, DEFAULT_WILL_DELAY_SEC). */
      willDelaySec?: number;
    } & Pick<
      Mqtt5TransportOptions,
      | 'brokerUrl'
      | 'certPath'
      | 'keyPath'
      | 'caPath'
      | 'keepAliveSec'
      | 'sessionExpirySec'
      | 'minReconnectDelayMs'
      | 'maxReconnectDelayMs'
      | 'maxQueuedPublishes'
      | 'ackTimeoutSec'
      | 'maxPublishesPerSec'
      | 'maxPublishBytesPerSec'
    >);

export interface MqttPublisherConfig extends PublisherConfig {
  logLevel?: LogLevel;
  heartbeatIntervalMs: number;
  transport: TransportConfig;
}

const PEM_PATH = { type: 'string', minLength: 1, maxLength: 4096 };

const transportSchema = {
  type: 'object',
  additionalProperties: false,
  default: { type: 'ipc' },
  required: ['type'],
  properties: {
    type: { enum: ['ipc', 'mqtt5'] },
    brokerUrl: { type: 'string', pattern: '^mqtts?://[^/]+$', maxLength: 1024 },
    // AWS IoT Core: a client id is at most 128 bytes (IoT Core quotas, "Client ID size").
    clientId: { type: 'string', minLength: 1, maxLength: 128 },
    certPath: PEM_PATH,
    keyPath: PEM_PATH,
    caPath: PEM_PATH,
    // AWS IoT Core accepts a keep-alive of 30..1200 s (IoT Core quotas, "Keep-alive period").
    keepAliveSec: { type: 'integer', minimum: 30, maximum: 1200 },
    // AWS IoT Core keeps a persistent session at most 7 days (604800 s).
    sessionExpirySec: { type: 'integer', minimum: 0, maximum: 604800 },
    minReconnectDelayMs: { type: 'integer', minimum: 100, maximum: 600000 },
    maxReconnectDelayMs: { type: 'integer', minimum: 100, maximum: 3600000 },
    // AWS IoT Core allows 100 unacknowledged QoS 1 publishes per connection.
    maxQueuedPublishes: { type: 'integer', minimum: 1, maximum: 100 },
    ackTimeoutSec: { type: 'integer', minimum: 5, maximum: 3600 },
    // AWS IoT Core: 100 publishes/s and 512 KiB/s per connection, not adjustable; other brokers may
    // allow more. 0 does not pace.
    maxPublishesPerSec: { type: 'integer', minimum: 0, maximum: 1000000 },
    maxPublishBytesPerSec: { type: 'integer', minimum: 0, maximum: 1073741824 },
    // MQTT 5 Will Delay Interval (MQTT 5.0, 3.1.3.2.2); a day is far past any outage worth hiding.
    willDelaySec: { type: 'integer', minimum: 0, maximum: 86400 },
  },
  // The MQTT 5 fields mean nothing over IPC: refusing them there catches a half-edited deployment.
  if: { properties: { type: { const: 'mqtt5' } } },
  then: { required: ['brokerUrl'], properties: { brokerUrl: true } },
  else: { maxProperties: 1 },
  // Mutual TLS needs both halves; one without the other is a deployment mistake, not a choice.
  dependencies: { certPath: ['keyPath'], keyPath: ['certPath'] },
};

/** Recipe DefaultConfiguration keys for MqttPublisher, with their defaults. */
export const mqttPublisherConfigSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    logLevel: LOG_LEVEL_SCHEMA,
    // 128 KiB is the AWS IoT Core payload limit and the nucleus's mqtt.maxMessageSizeInBytes default.
    maxEnvelopeBytes: { type: 'integer', minimum: 4096, maximum: 131072, default: 120000 },
    maxRecordsPerEnvelope: { type: 'integer', minimum: 1, maximum: 10000, default: 2000 },
    // gzip: envelopes whose JSON exceeds compressAboveBytes go out compressed (the ingest reads both),
    // packed up to maxUncompressedEnvelopeBytes of JSON; a backlog then drains several times faster
    // under IoT Core's 512 KiB/s per connection (docs/PERFORMANCE.md).
    compression: { enum: ['gzip', 'none'], default: 'gzip' },
    compressAboveBytes: { type: 'integer', minimum: 0, maximum: 131072, default: 4096 },
    maxUncompressedEnvelopeBytes: { type: 'integer', minimum: 4096, maximum: 8388608, default: 2097152 },
    idleIntervalMs: { type: 'integer', minimum: 10, maximum: 60000, default: 200 },
    // 0: a record goes out at the next idle tick. At fleet scale, seconds here cut publishes and acks (docs/SCALING.md).
    minEnvelopeIntervalMs: { type: 'integer', minimum: 0, maximum: 3600000, default: 0 },
    resendAfterMs: { type: 'integer', minimum: 1000, maximum: 86400000, default: 30000 },
    backpressureBaseMs: { type: 'integer', minimum: 10, maximum: 60000, default: 500 },
    backpressureMaxMs: { type: 'integer', minimum: 10, maximum: 600000, default: 30000 },
    maxBackfillRecords: { type: 'integer', minimum: 1, maximum: 10000, default: 10000 },
    reportRepeatMs: { type: 'integer', minimum: 1000, maximum: 86400000, default: 300000 },
    heartbeatIntervalMs: { type: 'integer', minimum: 500, maximum: 3600000, default: 5000 },
    transport: transportSchema,
  },
};
