import { LOG_LEVEL_SCHEMA, type LogLevel } from '../shared/component';
import type { PublisherConfig } from './publisher';

export interface MqttPublisherConfig extends PublisherConfig {
  logLevel?: LogLevel;
  heartbeatIntervalMs: number;
}

/** Recipe DefaultConfiguration keys for MqttPublisher, with their defaults. */
export const mqttPublisherConfigSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    logLevel: LOG_LEVEL_SCHEMA,
    // 128 KiB is the AWS IoT Core payload limit and the nucleus's mqtt.maxMessageSizeInBytes default.
    maxEnvelopeBytes: { type: 'integer', minimum: 4096, maximum: 131072, default: 120000 },
    maxRecordsPerEnvelope: { type: 'integer', minimum: 1, maximum: 10000, default: 500 },
    idleIntervalMs: { type: 'integer', minimum: 10, maximum: 60000, default: 200 },
    resendAfterMs: { type: 'integer', minimum: 1000, maximum: 86400000, default: 30000 },
    backpressureBaseMs: { type: 'integer', minimum: 10, maximum: 60000, default: 500 },
    backpressureMaxMs: { type: 'integer', minimum: 10, maximum: 600000, default: 30000 },
    maxBackfillRecords: { type: 'integer', minimum: 1, maximum: 10000, default: 10000 },
    reportRepeatMs: { type: 'integer', minimum: 1000, maximum: 86400000, default: 300000 },
    heartbeatIntervalMs: { type: 'integer', minimum: 500, maximum: 3600000, default: 5000 },
  },
};
