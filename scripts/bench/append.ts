import { join } from 'node:path';
import { Acquisition } from '../../components/sensor-acquisition/acquisition';
import type { SampledRecord } from '../../components/sensor-acquisition/derive';
import type { Logger } from '../../components/shared/logger';
import { StreamStore } from '../../components/shared/store';
import { acquisitionDefaults, PoolSource } from './source';

/**
 * Drives the real acquisition path (Acquisition: contract check, stamping, append in transactions
 * of maxBatchRecords with synchronous=FULL) flat out into a store until `records` are committed.
 * Each step hands it 5 transactions' worth, as a tick after a stall would.
 */
export async function appendFlatOut(store: StreamStore, pool: SampledRecord[], records: number, logger: Logger): Promise<{ seconds: number; appended: number; batches: number }> {
  const config = acquisitionDefaults();
  const source = new PoolSource(pool);
  source.perAdvance = Math.min(records, config.maxBatchRecords * 5);
  const acquisition = new Acquisition(source, store, config, logger);
  const started = performance.now();
  while (acquisition.metrics.appended < records) {
    source.perAdvance = Math.min(source.perAdvance, records - acquisition.metrics.appended);
    acquisition.sampleOnce();
    await acquisition.flush();
    if (acquisition.metrics.appendFailures > 0) throw new Error(`append failed ${acquisition.metrics.appendFailures} times; see the log`);
  }
  return { seconds: (performance.now() - started) / 1000, appended: acquisition.metrics.appended, batches: acquisition.metrics.appendBatches };
}

export interface AppendResult {
  recordsPerSec: number;
  records: number;
  seconds: number;
  recordsPerTransaction: number;
  /** Rows per INSERT statement; undefined: the store's default. */
  rowsPerInsert: number | undefined;
}

/**
 * append: records/s committed to a fresh store file by the acquisition path, nothing else running
 * in this process. rowsPerInsert 1 is the store's original one-statement-per-row path.
 */
export async function runAppend(dir: string, pool: SampledRecord[], records: number, logger: Logger, rowsPerInsert?: number): Promise<AppendResult> {
  const file = join(dir, `append-${rowsPerInsert ?? 'default'}.sqlite`);
  const store = await StreamStore.open(file, { owner: true, logger, ...(rowsPerInsert === undefined ? {} : { rowsPerInsert }) });
  try {
    // A short warm-up: the first transactions create the stream rows and grow the file.
    await appendFlatOut(store, pool, Math.min(2000, Math.ceil(records / 10)), logger);
    const run = await appendFlatOut(store, pool, records, logger);
    return { recordsPerSec: run.appended / run.seconds, records: run.appended, seconds: run.seconds, recordsPerTransaction: run.appended / run.batches, rowsPerInsert };
  } finally {
    await store.close();
  }
}
