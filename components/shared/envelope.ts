import { createHash } from 'node:crypto';
import envelopeSchema from './schemas/envelope.schema.json';
import ackSchema from './schemas/ack.schema.json';
import { compileValidator } from './validation';

export const ENVELOPE_SCHEMA = 'elevator.envelope/1';
export const ACK_SCHEMA = 'elevator.ack/1';

/** One sampled record as it travels: per-stream sequence number, wall-clock ms, monotonic ms, domain data. */
export interface WireRecord {
  seq: number;
  time: number;
  mono: number;
  data: Record<string, unknown>;
}

export interface Envelope {
  schema: typeof ENVELOPE_SCHEMA;
  envelopeId: string;
  device: string;
  stream: string;
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

/**
 * sha256 over JSON.stringify(records). JSON.parse keeps key order and doubles round-trip
 * exactly through JSON.stringify, so the receiver recomputes the same bytes from what it parsed.
 */
export function recordsChecksum(records: WireRecord[]): string {
  return `sha256:${createHash('sha256').update(JSON.stringify(records)).digest('hex')}`;
}

export function buildEnvelope(device: string, stream: string, epoch: string, records: WireRecord[], now = new Date()): Envelope {
  if (records.length === 0) throw new RangeError('an envelope needs at least one record');
  for (let i = 1; i < records.length; i += 1) {
    if (records[i].seq !== records[i - 1].seq + 1) {
      throw new RangeError(`envelope records must be contiguous: seq ${records[i - 1].seq} is followed by ${records[i].seq}`);
    }
  }
  const seqFrom = records[0].seq;
  const seqTo = records[records.length - 1].seq;
  return {
    schema: ENVELOPE_SCHEMA,
    envelopeId: `${device}/${stream}/${epoch}/${seqFrom}-${seqTo}`,
    device,
    stream,
    epoch,
    seqFrom,
    seqTo,
    count: records.length,
    sentAt: now.toISOString(),
    checksum: recordsChecksum(records),
    records,
  };
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

export function parseJson(payload: Uint8Array | string): Checked<unknown> {
  try {
    return { ok: true, value: JSON.parse(typeof payload === 'string' ? payload : Buffer.from(payload).toString('utf8')) };
  } catch (error) {
    return { ok: false, reason: `json: ${(error as Error).message}` };
  }
}
