import { gzipSync } from 'node:zlib';
import type { SampledRecord } from '../../components/sensor-acquisition/derive';
import { buildEnvelope, type WireRecord } from '../../components/shared/envelope';

export interface EnvelopeSize {
  recordsPerEnvelope: number;
  jsonBytesPerRecord: number;
  gzipBytesPerRecord: number;
  gzipRatio: number;
}

/**
 * What an envelope of the bench's records weighs on the wire as the publisher builds it today
 * (JSON), and what gzip (zlib level 6) would make of it. Under a bytes/s quota the drain rate is
 * the quota divided by bytes per record, so this says how far compression alone would move it.
 */
export function envelopeSize(pool: SampledRecord[], recordsPerEnvelope: number): EnvelopeSize {
  const now = Date.now();
  // An envelope holds one stream; the bench's traffic is nearly all motor metrics.
  const stream = pool[0].stream;
  const records: WireRecord[] = pool
    .filter((r) => r.stream === stream)
    .slice(0, recordsPerEnvelope)
    .map((r, i) => ({ seq: 1_000_001 + i, time: now + i, mono: 5_000_000 + i, data: r.data, clock: 'synced' }));
  const envelope = buildEnvelope('bench-elevator-01', stream, '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9', records);
  const json = Buffer.from(JSON.stringify(envelope));
  const gzip = gzipSync(json);
  return {
    recordsPerEnvelope: records.length,
    jsonBytesPerRecord: json.length / records.length,
    gzipBytesPerRecord: gzip.length / records.length,
    gzipRatio: json.length / gzip.length,
  };
}
