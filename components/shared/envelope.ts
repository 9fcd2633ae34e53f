import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import envelopeSchema from './schemas/envelope.v1.schema.json';
import ackSchema from './schemas/ack.v1.schema.json';
import backfillSchema from './schemas/backfill.v1.schema.json';
import lossSchema from './schemas/loss.v1.schema.json';
import epochSchema from './schemas/epoch.v1.schema.json';
import { RECORD_KINDS } from './records';
import { compileValidator } from './validation';

export const ENVELOPE_SCHEMA = 'elevator.envelope/1';
export const ACK_SCHEMA = 'elevator.ack/1';
export const BACKFILL_SCHEMA = 'elevator.backfill/1';
export const LOSS_SCHEMA = 'elevator.loss/1';
export const EPOCH_SCHEMA = 'elevator.epoch/1';

/** Bounds of one backfill request (docs/CONTRACTS.md, "Backfill"). */
export const MAX_BACKFILL_RANGES = 20;
export const MAX_BACKFILL_RECORDS = 10_000;

export type LossReason = 'byte-cap' | 'age-cap' | 'disk-guard' | 'acquisition-overflow' | 'deleted-after-ack' | 'not-sampled' | 'unknown';
/**
 * Reasons that are a named policy at work, as opposed to a fault: StreamBuffer's retention rules,
 * and the acquisition's memory cap on samples the store refused (maxPendingRecords).
 */
export const RETENTION_REASONS: readonly LossReason[] = ['byte-cap', 'age-cap', 'disk-guard', 'acquisition-overflow'];
/** Permanent-gap reason the cloud records for what a replaced epoch never delivered. */
export const EPOCH_REPLACED = 'epoch-replaced';

/** One sampled record as it travels: per-stream sequence number, wall-clock ms, monotonic ms, domain data. */
export interface WireRecord {
  seq: number;
  time: number;
  mono: number;
  data: Record<string, unknown>;
  /** Wall-clock sync state when stamped: 'synced', 'unsynced' or 'unknown'. */
  clock?: string;
}

export interface Envelope {
  schema: typeof ENVELOPE_SCHEMA;
  envelopeId: string;
  device: string;
  stream: string;
  /** The data contract of every record's data, elevator.<stream>/<major>; absent means version 1 (records.ts). */
  dataSchema?: string;
  epoch: string;
  seqFrom: number;
  seqTo: number;
  count: number;
  sentAt: string;
  checksum: string;
  records: WireRecord[];
}

export interface AckCommand {
  schema: typeof ACK_SCHEMA;
  stream: string;
  epoch: string;
  /** Highest sequence number n such that every record 1..n of this stream and epoch is archived. */
  watermark: number;
  /** Inclusive [from, to] ranges above the watermark that are still missing. */
  gaps: Array<[number, number]>;
  issuedAt: string;
}

export interface BackfillRequest {
  schema: typeof BACKFILL_SCHEMA;
  requestId: string;
  device: string;
  stream: string;
  epoch: string;
  ranges: Array<[number, number]>;
  issuedAt: string;
}

export interface LossReport {
  schema: typeof LOSS_SCHEMA;
  device: string;
  stream: string;
  epoch: string;
  ranges: Array<[number, number]>;
  reason: LossReason;
  requestId?: string;
  reportedAt: string;
}

export interface EpochReport {
  schema: typeof EPOCH_SCHEMA;
  device: string;
  epoch: string;
  previousEpoch: string | null;
  previousStreams: Array<{ stream: string; appended: number; watermark: number }> | null;
  reportedAt: string;
}

/**
 * sha256 over JSON.stringify(records). JSON.parse keeps key order and doubles round-trip
 * exactly through JSON.stringify, so the receiver recomputes the same bytes from what it parsed.
 */
export function recordsChecksum(records: WireRecord[]): string {
  return `sha256:${createHash('sha256').update(JSON.stringify(records)).digest('hex')}`;
}

/**
 * The correlation id of a run of records: <device>/<stream>/<epoch>/<seqFrom>-<seqTo>. An envelope's
 * id is exactly this, so the acquisition's append, the publisher's envelope and the cloud's archive
 * object of the same records carry ids that name overlapping ranges (scripts/trace.ts follows them).
 */
export function correlationId(device: string, stream: string, epoch: string, seqFrom: number, seqTo: number): string {
  return `${device}/${stream}/${epoch}/${seqFrom}-${seqTo}`;
}

function dataSchemaOf(stream: string): string | undefined {
  return RECORD_KINDS.get(stream)?.dataSchema;
}

export function buildEnvelope(device: string, stream: string, epoch: string, records: WireRecord[], now = new Date()): Envelope {
  assertContiguous(records);
  return { ...envelopeHeader(device, stream, epoch, records[0].seq, records.length, recordsChecksum(records), now), records };
}

function assertContiguous(records: ReadonlyArray<{ seq: number }>): void {
  if (records.length === 0) throw new RangeError('an envelope needs at least one record');
  for (let i = 1; i < records.length; i += 1) {
    if (records[i].seq !== records[i - 1].seq + 1) {
      throw new RangeError(`envelope records must be contiguous: seq ${records[i - 1].seq} is followed by ${records[i].seq}`);
    }
  }
}

/** Every field but records, in the envelope's key order (records comes last). */
function envelopeHeader(device: string, stream: string, epoch: string, seqFrom: number, count: number, checksum: string, now: Date): Omit<Envelope, 'records'> {
  const seqTo = seqFrom + count - 1;
  return {
    schema: ENVELOPE_SCHEMA,
    envelopeId: correlationId(device, stream, epoch, seqFrom, seqTo),
    device,
    stream,
    ...(dataSchemaOf(stream) ? { dataSchema: dataSchemaOf(stream) } : {}),
    epoch,
    seqFrom,
    seqTo,
    count,
    sentAt: now.toISOString(),
    checksum,
  };
}

/**
 * The same bytes as JSON.stringify(buildEnvelope(...)) with each record's data parsed from
 * dataJson, built without parsing it: the store's text is JSON.stringify output already, so it is
 * spliced in, and the checksum is taken over the same text. This is the publisher's hot path
 * (docs/PERFORMANCE.md: parsing every record only to stringify it twice was most of its CPU).
 */
export function encodeStoredEnvelope(
  device: string,
  stream: string,
  epoch: string,
  /** Records whose data is still the JSON text the store holds (written by JSON.stringify at append). */
  records: ReadonlyArray<{ seq: number; time: number; mono: number; dataJson: string; clock?: string | null }>,
  now = new Date(),
): { header: Omit<Envelope, 'records'>; json: string } {
  assertContiguous(records);
  const parts = records.map((r) => {
    const clock = r.clock ? `,"clock":${JSON.stringify(r.clock)}` : '';
    return `{"seq":${JSON.stringify(r.seq)},"time":${JSON.stringify(r.time)},"mono":${JSON.stringify(r.mono)},"data":${r.dataJson}${clock}}`;
  });
  const recordsJson = `[${parts.join(',')}]`;
  const checksum = `sha256:${createHash('sha256').update(recordsJson).digest('hex')}`;
  const header = envelopeHeader(device, stream, epoch, records[0].seq, records.length, checksum, now);
  // records is the last key of an envelope, so it goes in before the header's closing brace.
  return { header, json: `${JSON.stringify(header).slice(0, -1)},"records":${recordsJson}}` };
}

/** encodeEnvelopePayload for an envelope already serialized by encodeStoredEnvelope. */
export function encodeEnvelopeJson(json: string, compressAboveBytes: number | null): Buffer {
  const bytes = Buffer.from(json);
  return compressAboveBytes !== null && bytes.length > compressAboveBytes ? gzipSync(bytes) : bytes;
}

const validateEnvelopeShape = compileValidator<Envelope>(envelopeSchema);
const validateAckShape = compileValidator<AckCommand>(ackSchema);

export type Checked<T> = { ok: true; value: T } | { ok: false; reason: string };

/** Schema, internal consistency (range, count, contiguity) and checksum, in that order. */
export function checkEnvelope(value: unknown): Checked<Envelope> {
  const shape = validateEnvelopeShape(value);
  if (!shape.ok) return { ok: false, reason: `schema: ${shape.reason}` };
  const env = shape.value;
  if (env.seqTo < env.seqFrom) return { ok: false, reason: `range: seqTo ${env.seqTo} < seqFrom ${env.seqFrom}` };
  if (env.count !== env.records.length || env.count !== env.seqTo - env.seqFrom + 1) {
    return { ok: false, reason: `count: count=${env.count}, records=${env.records.length}, range ${env.seqFrom}-${env.seqTo}` };
  }
  for (let i = 0; i < env.records.length; i += 1) {
    if (env.records[i].seq !== env.seqFrom + i) {
      return { ok: false, reason: `sequence: records[${i}].seq is ${env.records[i].seq}, expected ${env.seqFrom + i}` };
    }
  }
  const actual = recordsChecksum(env.records);
  if (actual !== env.checksum) return { ok: false, reason: `checksum: envelope says ${env.checksum}, records hash to ${actual}` };
  return { ok: true, value: env };
}

export function checkAck(value: unknown): Checked<AckCommand> {
  const shape = validateAckShape(value);
  if (!shape.ok) return { ok: false, reason: `schema: ${shape.reason}` };
  for (const [from, to] of shape.value.gaps) {
    if (to < from || from <= shape.value.watermark) {
      return { ok: false, reason: `gaps: [${from}, ${to}] must satisfy watermark < from <= to` };
    }
  }
  return shape;
}

const validateBackfillShape = compileValidator<BackfillRequest>(backfillSchema);
const validateLossShape = compileValidator<LossReport>(lossSchema);
const validateEpochShape = compileValidator<EpochReport>(epochSchema);

/** Ranges must be well formed and disjoint; returns the number of seqs they cover. */
function checkRanges(ranges: Array<[number, number]>): Checked<number> {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  let total = 0;
  for (let i = 0; i < sorted.length; i += 1) {
    const [from, to] = sorted[i];
    if (to < from) return { ok: false, reason: `ranges: [${from}, ${to}] has to < from` };
    if (i > 0 && from <= sorted[i - 1][1]) return { ok: false, reason: `ranges: [${from}, ${to}] overlaps [${sorted[i - 1][0]}, ${sorted[i - 1][1]}]` };
    total += to - from + 1;
  }
  return { ok: true, value: total };
}

/** Schema, well-formed disjoint ranges, and at most MAX_BACKFILL_RECORDS records in all. */
export function checkBackfill(value: unknown, maxRecords = MAX_BACKFILL_RECORDS): Checked<BackfillRequest> {
  const shape = validateBackfillShape(value);
  if (!shape.ok) return { ok: false, reason: `schema: ${shape.reason}` };
  const total = checkRanges(shape.value.ranges);
  if (!total.ok) return total;
  if (total.value > maxRecords) return { ok: false, reason: `too-large: ${total.value} records requested, at most ${maxRecords} per request` };
  return shape;
}

export function checkLoss(value: unknown): Checked<LossReport> {
  const shape = validateLossShape(value);
  if (!shape.ok) return { ok: false, reason: `schema: ${shape.reason}` };
  const total = checkRanges(shape.value.ranges);
  return total.ok ? shape : total;
}

export function checkEpochReport(value: unknown): Checked<EpochReport> {
  const shape = validateEpochShape(value);
  if (!shape.ok) return { ok: false, reason: `schema: ${shape.reason}` };
  for (const s of shape.value.previousStreams ?? []) {
    if (s.watermark > s.appended) return { ok: false, reason: `previousStreams: ${s.stream} watermark ${s.watermark} > appended ${s.appended}` };
  }
  return shape;
}

/**
 * An envelope on the wire is its JSON text, or that text gzip-compressed (RFC 1952) once it is
 * larger than compressAboveBytes. JSON of similar records shrinks several times over, and the
 * drain of a backlog is bounded by bytes (AWS IoT Core allows 512 KiB/s per connection), so a
 * compressed envelope carries several times the records. A receiver tells the two apart by the
 * first byte: gzip starts with 0x1f 0x8b, JSON text never does. null never compresses.
 */
export function encodeEnvelopePayload(envelope: Envelope, compressAboveBytes: number | null): Buffer {
  return encodeEnvelopeJson(JSON.stringify(envelope), compressAboveBytes);
}

/** A decompressed envelope larger than this is refused: 8 MiB holds 10,000 records of 800 bytes. */
export const MAX_DECOMPRESSED_ENVELOPE_BYTES = 8 * 1024 * 1024;

export function isGzip(payload: Uint8Array): boolean {
  return payload.length >= 2 && payload[0] === 0x1f && payload[1] === 0x8b;
}

/** Parses a payload written by encodeEnvelopePayload; a gzip bomb stops at maxBytes with reason `oversized`. */
export function parseEnvelopePayload(payload: Uint8Array, maxBytes = MAX_DECOMPRESSED_ENVELOPE_BYTES): Checked<unknown> {
  if (!isGzip(payload)) return parseJson(payload);
  let text: Buffer;
  try {
    text = gunzipSync(payload, { maxOutputLength: maxBytes });
  } catch (error) {
    if ((error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') return { ok: false, reason: `oversized: gzip payload expands beyond ${maxBytes} bytes` };
    return { ok: false, reason: `gzip: ${(error as Error).message}` };
  }
  return parseJson(text);
}

export function parseJson(payload: Uint8Array | string): Checked<unknown> {
  try {
    return { ok: true, value: JSON.parse(typeof payload === 'string' ? payload : Buffer.from(payload).toString('utf8')) };
  } catch (error) {
    return { ok: false, reason: `json: ${(error as Error).message}` };
  }
}
