import { LOG_LEVEL_SCHEMA, type LogLevel } from '../shared/component';
import { DEFAULT_BUFFER_CONFIG, type BufferConfig } from './buffer';

export interface StreamBufferConfig extends BufferConfig {
  logLevel?: LogLevel;
  heartbeatIntervalMs: number;
}

/** Recipe DefaultConfiguration keys for StreamBuffer; defaults match DEFAULT_BUFFER_CONFIG. */
export const streamBufferConfigSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    logLevel: LOG_LEVEL_SCHEMA,
    maxStoreBytes: { type: 'integer', minimum: 1048576, default: DEFAULT_BUFFER_CONFIG.maxStoreBytes },
    // 0 disables the age cap. At most 10 years: a longer cap is no cap, and 0 says that plainly.
    maxRecordAgeSec: { type: 'integer', minimum: 0, maximum: 315360000, default: DEFAULT_BUFFER_CONFIG.maxRecordAgeSec },
    // 0 disables the disk-space guard.
    minFreeDiskBytes: { type: 'integer', minimum: 0, default: DEFAULT_BUFFER_CONFIG.minFreeDiskBytes },
    retentionIntervalMs: { type: 'integer', minimum: 100, maximum: 3600000, default: DEFAULT_BUFFER_CONFIG.retentionIntervalMs },
    checkpointIntervalMs: { type: 'integer', minimum: 100, maximum: 3600000, default: DEFAULT_BUFFER_CONFIG.checkpointIntervalMs },
    statsIntervalMs: { type: 'integer', minimum: 100, maximum: 3600000, default: DEFAULT_BUFFER_CONFIG.statsIntervalMs },
    heartbeatIntervalMs: { type: 'integer', minimum: 500, maximum: 3600000, default: 5000 },
  },
};

export type { StreamBufferConfig as Config };
