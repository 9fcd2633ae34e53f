import type { AcquisitionConfig } from '../../components/sensor-acquisition/acquisition';
import { sensorAcquisitionConfigSchema } from '../../components/sensor-acquisition/config';
import type { SampledRecord, SensorSource } from '../../components/sensor-acquisition/derive';
import { DEFAULT_SIMULATOR_CONFIG, ElevatorSimulator } from '../../components/sensor-acquisition/simulator';
import { mulberry32 } from '../../test/helpers/prng';

/**
 * The readings every scenario sends: real simulator output, motor metrics every 20 ms of simulated
 * time at 20x (about 1,000 records/s of real time) plus the door-cycle and run events derived from
 * the same signals. Motor metrics rather than raw samples because the shipped MqttPublisher recipe
 * allows publishing motor, not raw-sample (its accessControl lists ".../raw"). Generated once for
 * the in-process scenarios, so the cost of simulating is not charged to the store or the
 * publisher, and both pipelines send the very same data.
 */
export const BENCH_SIMULATOR = { ...DEFAULT_SIMULATOR_CONFIG, timeScale: 20, signalIntervalMs: 20, metricsIntervalMs: 20 };

export function recordPool(count: number, seed = 9): SampledRecord[] {
  const simulator = new ElevatorSimulator(BENCH_SIMULATOR, mulberry32(seed));
  const pool: SampledRecord[] = [];
  while (pool.length < count) pool.push(...simulator.advance(1000));
  return pool.slice(0, count);
}

/** A sensor source that yields pool records at a set rate of real time, or a fixed number per step. */
export class PoolSource implements SensorSource {
  ratePerSec = 0;
  /** When set, every advance() yields this many, whatever the elapsed time (filling a store flat out). */
  perAdvance: number | undefined;
  produced = 0;
  private carry = 0;
  private next = 0;

  constructor(private readonly pool: SampledRecord[]) {
    if (pool.length === 0) throw new RangeError('PoolSource needs at least one record');
  }

  advance(realElapsedMs: number): SampledRecord[] {
    let count: number;
    if (this.perAdvance !== undefined) {
      count = this.perAdvance;
    } else {
      const exact = (this.ratePerSec * Math.max(0, realElapsedMs)) / 1000 + this.carry;
      count = Math.floor(exact);
      this.carry = exact - count;
    }
    const out: SampledRecord[] = new Array(count);
    for (let i = 0; i < count; i += 1) {
      out[i] = this.pool[this.next];
      this.next = (this.next + 1) % this.pool.length;
    }
    this.produced += count;
    return out;
  }
}

type Defaults = Record<string, { default: number }>;

/** SensorAcquisition's shipped defaults (recipe DefaultConfiguration), read from its schema so they cannot drift. */
export function acquisitionDefaults(): AcquisitionConfig {
  const p = sensorAcquisitionConfigSchema.properties as unknown as Defaults;
  return {
    sampleIntervalMs: p.sampleIntervalMs.default,
    jitterFraction: p.jitterFraction.default,
    maxBatchRecords: p.maxBatchRecords.default,
    maxPendingRecords: p.maxPendingRecords.default,
  };
}
