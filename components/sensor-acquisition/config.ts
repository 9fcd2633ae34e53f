import { LOG_LEVEL_SCHEMA, type LogLevel } from '../shared/component';
import { DEFAULT_DOMAIN_LIMITS, type DomainLimits } from '../shared/records';
import { DEFAULT_DETECTOR_CONFIG, type DetectorConfig } from './derive';
import { DEFAULT_SIMULATOR_CONFIG, NO_FAULTS, type SimulatorConfig } from './simulator';
import type { AcquisitionConfig } from './acquisition';
import type { LineClock } from './line-driver';
import type { ReplayFormat } from './replay';
import { NUMERIC_SIGNALS } from './signals';

export type SourceKind = 'simulator' | 'replay' | 'line';

export interface SourceConfig {
  type: SourceKind;
  /** replay: the recording; line: the device, FIFO or file, '-' for stdin. */
  path?: string;
  /** replay: default from the file extension. */
  format?: ReplayFormat;
  /** replay: recorded time per real time. */
  timeScale: number;
  /** replay: move the first sample to the start time. */
  rebase: boolean;
  /** replay: start over at the end. */
  loop: boolean;
  /** line: whose clock stamps a sample. */
  clock: LineClock;
}

export interface SensorAcquisitionConfig extends AcquisitionConfig {
  logLevel?: LogLevel;
  source: SourceConfig;
  /** Emit every signal sample as a raw-sample record (discovery phases). */
  rawSamples: boolean;
  detector: DetectorConfig;
  /** The simulator's settings; its floor table, door width and metricsIntervalMs also describe the installation for every source. */
  simulator: SimulatorConfig;
  heartbeatIntervalMs: number;
}

const D = DEFAULT_SIMULATOR_CONFIG;
const F = NO_FAULTS;
const fraction = (value: number) => ({ type: 'number', minimum: 0, maximum: 1, default: value });
const enabled = { type: 'boolean', default: false };

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
    rawSamples: { type: 'boolean', default: false },
    source: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        type: { enum: ['simulator', 'replay', 'line'], default: 'simulator' },
        path: { type: 'string', minLength: 1, maxLength: 4096 },
        format: { enum: ['ndjson', 'csv'] },
        timeScale: { type: 'number', exclusiveMinimum: 0, maximum: 10000, default: 1 },
        rebase: { type: 'boolean', default: false },
        loop: { type: 'boolean', default: false },
        clock: { enum: ['device', 'host'], default: 'device' },
      },
      if: { required: ['type'], properties: { type: { enum: ['replay', 'line'] } } },
      then: { required: ['path'], properties: { path: { type: 'string' } } },
    },
    detector: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        runStartSpeedMps: { type: 'number', exclusiveMinimum: 0, maximum: 5, default: DEFAULT_DETECTOR_CONFIG.runStartSpeedMps },
        stopSpeedMps: { type: 'number', exclusiveMinimum: 0, maximum: 5, default: DEFAULT_DETECTOR_CONFIG.stopSpeedMps },
        settleMs: { type: 'integer', minimum: 0, maximum: 60000, default: DEFAULT_DETECTOR_CONFIG.settleMs },
        landingToleranceM: { type: 'number', exclusiveMinimum: 0, maximum: 10, default: DEFAULT_DETECTOR_CONFIG.landingToleranceM },
        doorClosedMax: { type: 'number', minimum: 0, maximum: 0.5, default: DEFAULT_DETECTOR_CONFIG.doorClosedMax },
        doorOpenMin: { type: 'number', minimum: 0.5, maximum: 1, default: DEFAULT_DETECTOR_CONFIG.doorOpenMin },
        doorHysteresis: { type: 'number', exclusiveMinimum: 0, maximum: 0.5, default: DEFAULT_DETECTOR_CONFIG.doorHysteresis },
      },
    },
    simulator: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        floors: { type: 'integer', minimum: 2, maximum: 200, default: D.floors },
        floorHeightM: { type: 'number', exclusiveMinimum: 0, maximum: 20, default: D.floorHeightM },
        landingHeightsM: { type: 'array', minItems: 2, maxItems: 300, items: { type: 'number', minimum: -100, maximum: 1000 } },
        maxSpeedMps: { type: 'number', exclusiveMinimum: 0, maximum: 20, default: D.maxSpeedMps },
        accelMps2: { type: 'number', exclusiveMinimum: 0, maximum: 5, default: D.accelMps2 },
        jerkMps3: { type: 'number', exclusiveMinimum: 0, maximum: 50, default: D.jerkMps3 },
        profile: { enum: ['trapezoidal', 's-curve'], default: D.profile },
        doorWidthM: { type: 'number', exclusiveMinimum: 0, maximum: 5, default: D.doorWidthM },
        doorOpeningSpeedMps: { type: 'number', exclusiveMinimum: 0, maximum: 5, default: D.doorOpeningSpeedMps },
        doorClosingSpeedMps: { type: 'number', exclusiveMinimum: 0, maximum: 5, default: D.doorClosingSpeedMps },
        doorDwellMs: { type: 'integer', minimum: 0, maximum: 600000, default: D.doorDwellMs },
        reversalProbability: fraction(D.reversalProbability),
        levelingErrorMm: { type: 'number', minimum: 0, maximum: 100, default: D.levelingErrorMm },
        signalIntervalMs: { type: 'integer', minimum: 5, maximum: 10000, default: D.signalIntervalMs },
        timeScale: { type: 'number', exclusiveMinimum: 0, maximum: 10000, default: D.timeScale },
        catchUpMs: { type: 'integer', minimum: 0, maximum: 86400000, default: D.catchUpMs },
        metricsIntervalMs: { type: 'integer', minimum: 1, maximum: 3600000, default: D.metricsIntervalMs },
        maxIdleMs: { type: 'integer', minimum: 0, maximum: 3600000, default: D.maxIdleMs },
        faults: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            slowDoors: faultSchema({ factor: { type: 'number', exclusiveMinimum: 0, maximum: 1, default: F.slowDoors.factor } }),
            repeatedReversals: faultSchema({ perCycle: { type: 'integer', minimum: 1, maximum: 20, default: F.repeatedReversals.perCycle } }),
            levelingDrift: faultSchema({
              mmPerRun: { type: 'number', exclusiveMinimum: 0, maximum: 100, default: F.levelingDrift.mmPerRun },
              maxMm: { type: 'number', exclusiveMinimum: 0, maximum: 1000, default: F.levelingDrift.maxMm },
            }),
            stuckSensor: faultSchema({
              signal: { enum: [...NUMERIC_SIGNALS], default: F.stuckSensor.signal },
              afterMs: { type: 'integer', minimum: 0, maximum: 8640000000, default: F.stuckSensor.afterMs },
            }),
            dropouts: faultSchema({ fraction: fraction(F.dropouts.fraction) }),
            noise: faultSchema({ level: { type: 'number', minimum: 0, maximum: 100, default: F.noise.level } }),
            outOfRange: faultSchema({ fraction: fraction(F.outOfRange.fraction) }),
          },
        },
      },
    },
  },
};

function faultSchema(properties: Record<string, object>): object {
  return { type: 'object', additionalProperties: false, default: {}, properties: { enabled, ...properties } };
}

/**
 * The limits records are checked against (records.ts). The car's rated speed is simulator.maxSpeedMps,
 * which every source shares with the floor table; a speed above 1.5 times it is refused.
 */
export function domainLimitsOf(config: SensorAcquisitionConfig): DomainLimits {
  return { ...DEFAULT_DOMAIN_LIMITS, ratedSpeedMps: config.simulator.maxSpeedMps };
}
