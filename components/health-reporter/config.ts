import { LOG_LEVEL_SCHEMA, type LogLevel } from '../shared/component';
import type { HealthConfig } from './reporter';

export type HealthReporterConfig = HealthConfig & { logLevel?: LogLevel };

/** Recipe DefaultConfiguration keys for HealthReporter, with their defaults. */
export const healthReporterConfigSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    logLevel: LOG_LEVEL_SCHEMA,
    publishIntervalMs: { type: 'integer', minimum: 1000, maximum: 3600000, default: 30000 },
    // At most 50: each becomes a field of the health shadow, which must stay under 8 KiB.
    expectedComponents: { type: 'array', maxItems: 50, items: { type: 'string', pattern: '^[A-Za-z][A-Za-z0-9]{0,63}$' }, default: ['SensorAcquisition', 'StreamBuffer', 'MqttPublisher'] },
    heartbeatIntervalMs: { type: 'integer', minimum: 500, maximum: 3600000, default: 5000 },
    missedHeartbeats: { type: 'integer', minimum: 1, maximum: 100, default: 3 },
    backlogAgeDegradedSec: { type: 'integer', minimum: 1, maximum: 604800, default: 300 },
    // 100 MiB keeps room for logs and the OS on a small data partition.
    diskFreeMinBytes: { type: 'integer', minimum: 0, default: 104857600 },
    clockUnsyncedDegrades: { type: 'boolean', default: true },
  },
};
