import type { ArchiveBackend } from './archive';
import { GAPS_PREFIX, RECORDS_PREFIX } from './keys';
import { MAX_GAPS, StreamLedger, type SeqRange } from './ledger';

export interface StreamAudit {
  device: string;
  stream: string;
  epoch: string;
  /** Distinct sequence numbers found in the objects' contents. */
  uniqueRecords: number;
  /** Record copies beyond the first of the same seq: exactly-once storage means 0. */
  duplicateRecords: number;
  /** Seqs never archived that the device declared gone, by reason (gaps/ objects). */
  gone: Record<string, number>;
  watermark: number;
  highestSeq: number;
  /** At most MAX_GAPS ranges, lowest first; missingRecords counts them all. */
  gaps: SeqRange[];
  missingRecords: number;
}

export interface ArchiveAudit {
  streams: StreamAudit[];
  uniqueRecords: number;
  duplicateRecords: number;
  /** Seqs missing below each stream's highest archived seq, summed over streams. */
  missingRecords: number;
  objects: number;
  /** Keys whose object could not be read or is not a record run; their contents are not counted. */
  unreadable: Array<{ key: string; reason: string }>;
}

/**
 * Counts what the archive really holds by reading every records/ object. Unlike
 * Ledger.rebuild it trusts no key name: the device, stream, epoch and seqs come from the
 * contents, so a key that lies or an object that was overwritten with other records shows up.
 */
export async function auditArchive(archive: ArchiveBackend): Promise<ArchiveAudit> {
  const streams = new Map<string, { device: string; stream: string; epoch: string; ledger: StreamLedger; duplicates: number }>();
  const entryFor = (device: string, stream: string, epoch: string) => {
    const id = `${device}\u0000${stream}\u0000${epoch}`;
    let entry = streams.get(id);
    if (!entry) {
      entry = { device, stream, epoch, ledger: new StreamLedger(), duplicates: 0 };
      streams.set(id, entry);
    }
    return entry;
  };
  const unreadable: ArchiveAudit['unreadable'] = [];
  const keys = await archive.list(RECORDS_PREFIX);
  for (const key of keys) {
    const body = await archive.get(key);
    if (body === undefined) {
      // Listed then gone: with S3 this is a concurrent delete, not corruption.
      unreadable.push({ key, reason: 'object disappeared after listing' });
      continue;
    }
    const run = parseRun(body);
    if (typeof run === 'string') {
      unreadable.push({ key, reason: run });
      continue;
    }
    const entry = entryFor(run.device, run.stream, run.epoch);
    for (const seq of run.seqs) {
      if (entry.ledger.has(seq)) entry.duplicates += 1;
      else entry.ledger.add(seq, seq);
    }
  }
  for (const key of await archive.list(GAPS_PREFIX)) {
    const gap = parseGap(await archive.get(key));
    if (typeof gap === 'string') {
      unreadable.push({ key, reason: gap });
      continue;
    }
    entryFor(gap.device, gap.stream, gap.epoch).ledger.markGone(gap.seqFrom, gap.seqTo, gap.reason);
  }
  const result = [...streams.values()]
    .map(({ device, stream, epoch, ledger, duplicates }) => ({
      device,
      stream,
      epoch,
      uniqueRecords: ledger.count,
      duplicateRecords: duplicates,
      gone: ledger.goneByReason(),
      watermark: ledger.watermark(),
      highestSeq: ledger.highest(),
      gaps: ledger.gaps(MAX_GAPS),
      missingRecords: ledger.missingCount(),
    }))
    .sort((a, b) => compare(a.device, b.device) || compare(a.stream, b.stream) || compare(a.epoch, b.epoch));
  return {
    streams: result,
    uniqueRecords: result.reduce((sum, s) => sum + s.uniqueRecords, 0),
    duplicateRecords: result.reduce((sum, s) => sum + s.duplicateRecords, 0),
    missingRecords: result.reduce((sum, s) => sum + s.missingRecords, 0),
    objects: keys.length,
    unreadable,
  };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A gaps/ object's range and reason, or why it is unusable. */
function parseGap(body: Buffer | undefined): { device: string; stream: string; epoch: string; seqFrom: number; seqTo: number; reason: string } | string {
  if (body === undefined) return 'object disappeared after listing';
  try {
    const gap = JSON.parse(body.toString('utf8'));
    for (const field of ['device', 'stream', 'epoch', 'reason']) if (typeof gap[field] !== 'string') return `missing "${field}"`;
    if (!Number.isInteger(gap.seqFrom) || !Number.isInteger(gap.seqTo) || gap.seqFrom < 1 || gap.seqTo < gap.seqFrom) return 'bad seqFrom/seqTo';
    return gap;
  } catch (error) {
    return `json: ${(error as Error).message}`;
  }
}

/** The parts of a record-run object the audit relies on, or why they are unusable. */
function parseRun(body: Buffer): { device: string; stream: string; epoch: string; seqs: number[] } | string {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (error) {
    return `json: ${(error as Error).message}`;
  }
  if (typeof value !== 'object' || value === null) return 'not a JSON object';
  const run = value as Record<string, unknown>;
  for (const field of ['device', 'stream', 'epoch'] as const) {
    if (typeof run[field] !== 'string' || run[field] === '') return `missing or empty "${field}"`;
  }
  if (!Array.isArray(run.records)) return 'missing "records" array';
  const seqs: number[] = [];
  for (const [i, record] of run.records.entries()) {
    const seq = (record as { seq?: unknown } | null)?.seq;
    if (typeof seq !== 'number' || !Number.isInteger(seq) || seq < 1) return `records[${i}].seq is not a positive integer`;
    seqs.push(seq);
  }
  return { device: run.device as string, stream: run.stream as string, epoch: run.epoch as string, seqs };
}
