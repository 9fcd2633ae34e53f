import { DEFAULT_BUFFER_CONFIG, type BufferConfig } from './buffer';

export interface StreamBufferConfig extends BufferConfig {
  heartbeatIntervalMs: number;
}

/** Recipe DefaultConfiguration keys for StreamBuffer; defaults match DEFAULT_BUFFER_CONFIG. */
export const streamBufferConfigSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    maxStoreBytes: { type: 'integer', minimum: 1048576, default: DEFAULT_BUFFER_CONFIG.maxStoreBytes },
    retentionIntervalMs: { type: 'integer', minimum: 100, maximum: 3600000, default: DEFAULT_BUFFER_CONFIG.retentionIntervalMs },
    checkpointIntervalMs: { type: 'integer', minimum: 100, maximum: 3600000, default: DEFAULT_BUFFER_CONFIG.checkpointIntervalMs },
    statsIntervalMs: { type: 'integer', minimum: 100, maximum: 3600000, default: DEFAULT_BUFFER_CONFIG.statsIntervalMs },
    heartbeatIntervalMs: { type: 'integer', minimum: 500, maximum: 3600000, default: 5000 },
  },
};

export type { StreamBufferConfig as Config };
