/**
 * The archive's key layout, in one place so the ingest, the ledger rebuild and the audit can
 * never disagree about it. Every key is S3-safe: only characters from the "safe characters"
 * list of the Amazon S3 object-key naming guidelines (0-9 a-z A-Z ! - _ . * ' ( ) and /).
 *
 *   records/<device>/<stream>/<epoch>/<seqFrom:12>-<seqTo:12>.json   one contiguous run of records
 *   gaps/<device>/<stream>/<epoch>/<seqFrom:12>-<seqTo:12>.json      a permanent gap and its reason
 *   epochs/<device>/<epoch>.json                                     an epoch report from the device
 *   health/<device>/latest.json                                      last health message per device
 *   quarantine/<device>/<stream>/<epoch>/<seqFrom:12>-<seqTo:12>.json records of an archived run that broke their data contract, with reasons
 *   rejected/<YYYY-MM-DD>/<uuid>.json                                a rejected message and its reason
 *   _status/ingest.json                                              the ingest's counters
 *   _status/ingest-<clientId>.json                                   counters of one instance of a shared-subscription group
 *   _status/checker.json                                             the integrity checker's counters
 */

export const RECORDS_PREFIX = 'records/';
export const GAPS_PREFIX = 'gaps/';
export const EPOCHS_PREFIX = 'epochs/';
export const HEALTH_PREFIX = 'health/';
export const REJECTED_PREFIX = 'rejected/';
export const QUARANTINE_PREFIX = 'quarantine/';
export const STATUS_KEY = '_status/ingest.json';

/** One status object per instance of a group: instances must not overwrite each other's counters. */
export function instanceStatusKey(clientId: string): string {
  return `_status/ingest-${encodeKeySegment(clientId)}.json`;
}

export const STATUS_PREFIX = '_status/';
export const CHECKER_STATUS_KEY = '_status/checker.json';

/** The instance (client id) whose status a key holds, or undefined for any other key. */
export function parseInstanceStatusKey(key: string): string | undefined {
  const match = /^_status\/ingest-([^/]+)\.json$/.exec(key);
  return match ? decodeKeySegment(match[1]) : undefined;
}

/** Zero-padded so that lexicographic key order (how S3 lists) equals numeric sequence order. */
export const SEQ_DIGITS = 12;
export const MAX_KEY_SEQ = 10 ** SEQ_DIGITS - 1;

const PLAIN = /^[A-Za-z0-9_-]$/;

/**
 * Makes any string usable as one key segment. Device names may contain ':' (IoT thing names
 * allow it) and topic levels may contain anything; S3 lists ':' among characters that "might
 * require special handling". Every byte outside [A-Za-z0-9_-] becomes '!' + two hex digits
 * ('!' itself included, and '.', so a segment can never be '.' or '..' or start a dot-file).
 */
export function encodeKeySegment(value: string): string {
  if (value.length === 0) throw new RangeError('a key segment cannot be empty');
  let out = '';
  for (const char of value) {
    if (PLAIN.test(char)) {
      out += char;
    } else {
      for (const byte of Buffer.from(char, 'utf8')) out += `!${byte.toString(16).toUpperCase().padStart(2, '0')}`;
    }
  }
  return out;
}

export function decodeKeySegment(segment: string): string | undefined {
  if (!/^(?:[A-Za-z0-9_-]|![0-9A-F]{2})+$/.test(segment)) return undefined;
  const bytes: number[] = [];
  for (let i = 0; i < segment.length; ) {
    if (segment[i] === '!') {
      bytes.push(parseInt(segment.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      bytes.push(segment.charCodeAt(i));
      i += 1;
    }
  }
  const text = Buffer.from(bytes).toString('utf8');
  // A decoded value that does not re-encode to the same segment was not written by us.
  return encodeKeySegment(text) === segment ? text : undefined;
}

export interface RecordKey {
  device: string;
  stream: string;
  epoch: string;
  seqFrom: number;
  seqTo: number;
}

function padSeq(seq: number): string {
  if (!Number.isInteger(seq) || seq < 1 || seq > MAX_KEY_SEQ) {
    throw new RangeError(`a sequence number in a key must be an integer in 1..${MAX_KEY_SEQ}, got ${seq}`);
  }
  return String(seq).padStart(SEQ_DIGITS, '0');
}

function rangeKey(prefix: string, device: string, stream: string, epoch: string, seqFrom: number, seqTo: number): string {
  if (seqTo < seqFrom) throw new RangeError(`seqTo ${seqTo} < seqFrom ${seqFrom}`);
  return `${prefix}${encodeKeySegment(device)}/${encodeKeySegment(stream)}/${encodeKeySegment(epoch)}/${padSeq(seqFrom)}-${padSeq(seqTo)}.json`;
}

export function recordKey(device: string, stream: string, epoch: string, seqFrom: number, seqTo: number): string {
  return rangeKey(RECORDS_PREFIX, device, stream, epoch, seqFrom, seqTo);
}

/** Same range as the records object it annotates, so a resent envelope rewrites it identically. */
export function quarantineKey(device: string, stream: string, epoch: string, seqFrom: number, seqTo: number): string {
  return rangeKey(QUARANTINE_PREFIX, device, stream, epoch, seqFrom, seqTo);
}

export function gapKey(device: string, stream: string, epoch: string, seqFrom: number, seqTo: number): string {
  return rangeKey(GAPS_PREFIX, device, stream, epoch, seqFrom, seqTo);
}

export function epochKey(device: string, epoch: string): string {
  return `${EPOCHS_PREFIX}${encodeKeySegment(device)}/${encodeKeySegment(epoch)}.json`;
}

/** Inverse of recordKey; undefined for any key recordKey could not have produced. */
export function parseRecordKey(key: string): RecordKey | undefined {
  return parseRangeKey(key, RECORDS_PREFIX);
}

/** Inverse of gapKey. */
export function parseGapKey(key: string): RecordKey | undefined {
  return parseRangeKey(key, GAPS_PREFIX);
}

function parseRangeKey(key: string, prefix: string): RecordKey | undefined {
  const parts = key.split('/');
  if (parts.length !== 5 || `${parts[0]}/` !== prefix) return undefined;
  const match = /^(\d{12})-(\d{12})\.json$/.exec(parts[4]);
  if (!match) return undefined;
  const seqFrom = Number(match[1]);
  const seqTo = Number(match[2]);
  if (seqFrom < 1 || seqTo < seqFrom) return undefined;
  const device = decodeKeySegment(parts[1]);
  const stream = decodeKeySegment(parts[2]);
  const epoch = decodeKeySegment(parts[3]);
  if (device === undefined || stream === undefined || epoch === undefined) return undefined;
  return { device, stream, epoch, seqFrom, seqTo };
}

export function healthKey(device: string): string {
  return `${HEALTH_PREFIX}${encodeKeySegment(device)}/latest.json`;
}

/** Dated folders keep a day's rejects together for whoever investigates them. */
export function rejectedKey(receivedAt: Date, id: string): string {
  return `${REJECTED_PREFIX}${receivedAt.toISOString().slice(0, 10)}/${encodeKeySegment(id)}.json`;
}
