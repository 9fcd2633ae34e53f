import { LOG_LEVEL_SCHEMA, type LogLevel } from '../shared/component';
import { DEFAULT_SIMULATOR_CONFIG, type SimulatorConfig } from './simulator';
import type { AcquisitionConfig } from './acquisition';

export interface SensorAcquisitionConfig extends AcquisitionConfig {
  logLevel?: LogLevel;
  simulator: SimulatorConfig;
  heartbeatIntervalMs: number;
}

/** Recipe DefaultConfiguration keys for SensorAcquisition, with their defaults. */
export const sensorAcquisitionConfigSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    logLevel: LOG_LEVEL_SCHEMA,
    sampleIntervalMs: { type: 'integer', minimum: 10, maximum: 60000, default: 100 },
    jitterFraction: { type: 'number', minimum: 0, maximum: 0.5, default: 0.1 },
    maxBatchRecords: { type: 'integer', minimum: 1, maximum: 10000, default: 200 },
    maxPendingRecords: { type: 'integer', minimum: 100, maximum: 10000000, default: 100000 },
    heartbeatIntervalMs: { type: 'integer', minimum: 500, maximum: 3600000, default: 5000 },
    simulator: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        floors: { type: 'integer', minimum: 2, maximum: 200, default: DEFAULT_SIMULATOR_CONFIG.floors },
        floorHeightM: { type: 'number', exclusiveMinimum: 0, maximum: 20, default: DEFAULT_SIMULATOR_CONFIG.floorHeightM },
        maxSpeedMps: { type: 'number', exclusiveMinimum: 0, maximum: 20, default: DEFAULT_SIMULATOR_CONFIG.maxSpeedMps },
        accelMps2: { type: 'number', exclusiveMinimum: 0, maximum: 5, default: DEFAULT_SIMULATOR_CONFIG.accelMps2 },
        doorWidthM: { type: 'number', exclusiveMinimum: 0, maximum: 5, default: DEFAULT_SIMULATOR_CONFIG.doorWidthM },
        timeScale: { type: 'number', exclusiveMinimum: 0, maximum: 10000, default: DEFAULT_SIMULATOR_CONFIG.timeScale },
        metricsIntervalMs: { type: 'integer', minimum: 1, maximum: 3600000, default: DEFAULT_SIMULATOR_CONFIG.metricsIntervalMs },
        maxIdleMs: { type: 'integer', minimum: 0, maximum: 3600000, default: DEFAULT_SIMULATOR_CONFIG.maxIdleMs },
      },
    },
  },
};
