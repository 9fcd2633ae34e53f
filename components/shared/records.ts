/**
 * The data contracts of the record streams: which schema each stream's record data follows, its
 * retention priority, and the checks a record must pass at a boundary (acquisition on the device,
 * ingest in the cloud). The JSON Schemas under ./schemas are the contract; the domain checks here
 * add what a schema cannot say (a speed against the car's rated speed, a time against now).
 */
import doorCycleSchema from './schemas/door-cycle.v1.schema.json';
import runSchema from './schemas/run.v1.schema.json';
import motorSchema from './schemas/motor.v1.schema.json';
import rawSampleSchema from './schemas/raw-sample.v1.schema.json';
import quarantineSchema from './schemas/quarantine.v1.schema.json';
import { compileValidator, type Validator } from './validation';

export const STREAM_DOOR_CYCLE = 'door-cycle';
export const STREAM_RUN = 'run';
export const STREAM_MOTOR = 'motor';
export const STREAM_RAW_SAMPLE = 'raw-sample';
export const STREAM_QUARANTINE = 'quarantine';

/** Retention priority: events outrank periodic metrics, which outrank raw samples (the brief, StreamBuffer). */
export const PRIORITY = { event: 2, metric: 1, raw: 0 } as const;

export interface RecordKind {
  stream: string;
  /** The contract name carried in an envelope's dataSchema: elevator.<stream>/<major>. */
  dataSchema: string;
  priority: number;
  validate: Validator<Record<string, unknown>>;
}

function kind(stream: string, major: number, priority: number, schema: object): RecordKind {
  return { stream, dataSchema: `elevator.${stream}/${major}`, priority, validate: compileValidator<Record<string, unknown>>(schema) };
}

/**
 * One entry per stream. A stream has exactly one major version: a breaking change to a kind is a
 * new stream (for example door-cycle-v2), so a backlog never mixes versions within a stream
 * (docs/CONTRACTS.md, "Versions").
 */
export const RECORD_KINDS: ReadonlyMap<string, RecordKind> = new Map(
  [
    kind(STREAM_DOOR_CYCLE, 1, PRIORITY.event, doorCycleSchema),
    kind(STREAM_RUN, 1, PRIORITY.event, runSchema),
    kind(STREAM_MOTOR, 1, PRIORITY.metric, motorSchema),
    kind(STREAM_RAW_SAMPLE, 1, PRIORITY.raw, rawSampleSchema),
    // Quarantined records outrank metrics: they are the evidence of what went wrong.
    kind(STREAM_QUARANTINE, 1, PRIORITY.event, quarantineSchema),
  ].map((k) => [k.stream, k]),
);

/** Limits that depend on the installation or on now, which the schemas cannot state. */
export interface DomainLimits {
  /** The car's rated speed, m/s; a speed above 1.5 times it is impossible, not fast. */
  ratedSpeedMps: number;
  /** How far ahead of the device's clock an event time may be (clock steps, source skew). */
  maxFutureMs: number;
}

export const DEFAULT_DOMAIN_LIMITS: DomainLimits = { ratedSpeedMps: 1.6, maxFutureMs: 5 * 60_000 };

/** Multiple of the rated speed above which a reading is impossible rather than an overspeed (issue 5). */
export const IMPOSSIBLE_SPEED_FACTOR = 1.5;

export type RecordCheck = { ok: true; kind: RecordKind; data: Record<string, unknown> } | { ok: false; reason: string };

/**
 * Every check a record's data must pass before it is stored or archived: a known stream, only
 * finite numbers (JSON has no NaN or Infinity, and a schema cannot see them), the stream's JSON
 * Schema, then the domain rules. The reason names each violation with its JSON pointer.
 */
export function checkRecord(stream: unknown, data: unknown, limits: DomainLimits, nowMs: number): RecordCheck {
  if (typeof stream !== 'string') return { ok: false, reason: `stream is ${describeType(stream)}, not a string` };
  const kind = RECORD_KINDS.get(stream);
  if (!kind) return { ok: false, reason: `stream "${truncate(stream, 80)}" has no data contract (known: ${[...RECORD_KINDS.keys()].join(', ')})` };
  const nonFinite = nonFiniteNumbers(data, '');
  if (nonFinite.length > 0) return { ok: false, reason: `${stream}: ${nonFinite.join('; ')}` };
  const checked = kind.validate(data);
  if (!checked.ok) return { ok: false, reason: `${stream}: ${checked.reason}` };
  const domain = domainViolations(stream, checked.value, limits, nowMs);
  if (domain.length > 0) return { ok: false, reason: `${stream}: ${domain.join('; ')}` };
  return { ok: true, kind, data: checked.value };
}

function domainViolations(stream: string, data: Record<string, unknown>, limits: DomainLimits, nowMs: number): string[] {
  const problems: string[] = [];
  const maxSpeed = limits.ratedSpeedMps * IMPOSSIBLE_SPEED_FACTOR;
  const future = (pointer: string, value: unknown) => {
    if (typeof value === 'number' && value > nowMs + limits.maxFutureMs) {
      problems.push(`${pointer} ${new Date(value).toISOString()} is more than ${limits.maxFutureMs} ms ahead of the device clock`);
    }
  };
  const speed = (pointer: string, value: unknown) => {
    if (typeof value === 'number' && Math.abs(value) > maxSpeed) {
      problems.push(`${pointer} ${value} m/s is above ${IMPOSSIBLE_SPEED_FACTOR} x the rated speed of ${limits.ratedSpeedMps} m/s`);
    }
  };
  const ordered = (fromPointer: string, from: unknown, toPointer: string, to: unknown) => {
    if (typeof from === 'number' && typeof to === 'number' && to < from) problems.push(`${toPointer} is before ${fromPointer} (a negative duration)`);
  };
  if (stream === STREAM_DOOR_CYCLE) {
    ordered('/openStartTime', data.openStartTime, '/closeEndTime', data.closeEndTime);
    future('/closeEndTime', data.closeEndTime);
  } else if (stream === STREAM_RUN) {
    ordered('/startTime', data.startTime, '/stopTime', data.stopTime);
    future('/stopTime', data.stopTime);
    speed('/peakSpeedMps', data.peakSpeedMps);
    if (data.fromFloor === data.toFloor) problems.push('/toFloor equals /fromFloor: a run goes somewhere');
  } else if (stream === STREAM_RAW_SAMPLE) {
    future('/t', data.t);
    speed('/velocityMps', data.velocityMps);
  }
  return problems;
}

/** JSON pointers of every NaN or +-Infinity inside value. */
function nonFiniteNumbers(value: unknown, pointer: string, depth = 0): string[] {
  if (typeof value === 'number') return Number.isFinite(value) ? [] : [`${pointer || '/'} is ${value}`];
  if (depth > MAX_DEPTH || value === null || typeof value !== 'object') return [];
  const found: string[] = [];
  for (const [key, inner] of Object.entries(value)) found.push(...nonFiniteNumbers(inner, `${pointer}/${key}`, depth + 1));
  return found;
}

const MAX_DEPTH = 32;
const MAX_STRING = 1024;
const MAX_ENTRIES = 200;

/**
 * A JSON-safe copy of any value, for a quarantine record: numbers JSON cannot carry, undefined,
 * functions, symbols and bigints become strings; strings, arrays, objects and nesting are cut at
 * fixed bounds, and each cut says so. It never throws, whatever it is given (cycles included).
 */
export function jsonSafe(value: unknown, depth = 0, seen: WeakSet<object> = new WeakSet()): unknown {
  if (value === null || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value === 'string') return truncate(value, MAX_STRING);
  if (typeof value !== 'object') return `[${typeof value}${typeof value === 'bigint' ? ` ${String(value)}` : ''}]`;
  if (seen.has(value)) return '[circular]';
  if (depth >= MAX_DEPTH) return `[nested deeper than ${MAX_DEPTH} levels]`;
  seen.add(value);
  if (Array.isArray(value)) {
    const items = value.slice(0, MAX_ENTRIES).map((item) => jsonSafe(item, depth + 1, seen));
    if (value.length > MAX_ENTRIES) items.push(`[${value.length - MAX_ENTRIES} more items]`);
    return items;
  }
  const out: Record<string, unknown> = {};
  const entries = Object.entries(value);
  for (const [key, inner] of entries.slice(0, MAX_ENTRIES)) out[truncate(key, 100)] = jsonSafe(inner, depth + 1, seen);
  if (entries.length > MAX_ENTRIES) out['[cut]'] = `${entries.length - MAX_ENTRIES} more keys`;
  return out;
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}[... ${text.length - max} more characters]`;
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}

/** The quarantine record for data that failed its contract: it travels like any other record. */
export function quarantineData(stream: unknown, value: unknown, reason: string, detectedBy: 'acquisition' | 'cloud'): Record<string, unknown> {
  return {
    stream: typeof stream === 'string' ? truncate(stream, 150) : `[${describeType(stream)}]`,
    reason: truncate(reason, 1900),
    value: jsonSafe(value),
    detectedBy,
  };
}
