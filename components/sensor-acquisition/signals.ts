/**
 * Signal samples: what every sensor source produces (simulator, replay, real driver). One type,
 * the same fields as the raw-sample.v1 record, so a raw sample record is a signal sample as it was
 * read. null is a reading the sensor did not deliver (a dropout). The deriver (derive.ts) turns a
 * stream of samples into door-cycle, run and motor records.
 */
import type { RawSampleV1 } from '../shared/contracts.generated';
import rawSampleSchema from '../shared/schemas/raw-sample.v1.schema.json';

/**
 * One sample of every signal: exactly the raw-sample.v1 record, whose type is generated from its
 * schema (components/shared/contracts.generated.ts). t is strictly increasing within one source.
 */
export type SignalSample = RawSampleV1;

export const NUMERIC_SIGNALS = ['positionM', 'velocityMps', 'doorOpening', 'currentA', 'temperatureC', 'vibrationMmS'] as const;
export type NumericSignal = (typeof NUMERIC_SIGNALS)[number];

/** Every field of a sample, in the order CSV files and the line protocol use. */
export const SAMPLE_FIELDS = ['t', 'positionM', 'velocityMps', 'doorOpening', 'obstructed', 'currentA', 'temperatureC', 'vibrationMmS'] as const;
export type SampleField = (typeof SAMPLE_FIELDS)[number];

/** Physical range of each numeric signal, read from the raw-sample.v1 schema so the two never disagree. */
export const SIGNAL_RANGES: Readonly<Record<NumericSignal, { min: number; max: number }>> = (() => {
  const properties = rawSampleSchema.properties as Record<string, { minimum?: number; maximum?: number }>;
  const ranges = {} as Record<NumericSignal, { min: number; max: number }>;
  for (const name of NUMERIC_SIGNALS) {
    const { minimum, maximum } = properties[name];
    if (typeof minimum !== 'number' || typeof maximum !== 'number') throw new Error(`raw-sample schema has no range for ${name}`);
    ranges[name] = { min: minimum, max: maximum };
  }
  return ranges;
})();

export const MAX_TIME_MS = 8640000000000000;

export function inRange(signal: NumericSignal, value: number): boolean {
  const range = SIGNAL_RANGES[signal];
  return value >= range.min && value <= range.max;
}

/** An input line (file line, device line) that did not become a sample, with why. */
export interface RejectedInput {
  /** 1-based line number in the file or since the driver started. */
  line: number;
  /** The line as read (cut at 1024 characters). */
  text: string;
  reason: string;
  /** Where it came from: a file path, a device path, '-' for stdin. */
  origin: string;
}

export interface SignalBatch {
  samples: SignalSample[];
  rejected: RejectedInput[];
}

/**
 * A source of signal samples. read() returns what the source has for the next realElapsedMs of
 * real time: a simulator or a replay computes it, a real driver returns what the device sent since
 * the last call. Samples come in strictly increasing t.
 */
export interface SignalSource {
  read(realElapsedMs: number): SignalBatch;
  /** Source-specific counters for the heartbeat. */
  metrics?(): Record<string, number | string | boolean>;
  /** Releases a file or device. */
  close?(): void | Promise<void>;
}

export const MAX_REJECTED_TEXT = 1024;

export function rejectedText(text: string): string {
  return text.length <= MAX_REJECTED_TEXT ? text : `${text.slice(0, MAX_REJECTED_TEXT)}[... ${text.length - MAX_REJECTED_TEXT} more characters]`;
}

/**
 * Checks a parsed sample object: exactly the eight fields, t an integer ms since 1970, numbers
 * finite or null, obstructed boolean or null. A value outside the physical range is NOT an error
 * here: it is a reading, and the deriver counts it as out of range.
 */
export function toSample(value: unknown): { ok: true; sample: SignalSample } | { ok: false; reason: string } {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return { ok: false, reason: 'not an object' };
  const object = value as Record<string, unknown>;
  const unknown = Object.keys(object).filter((key) => !(SAMPLE_FIELDS as readonly string[]).includes(key));
  if (unknown.length > 0) return { ok: false, reason: `unknown field ${unknown.map((k) => JSON.stringify(k)).join(', ')}` };
  const missing = SAMPLE_FIELDS.filter((key) => !(key in object));
  if (missing.length > 0) return { ok: false, reason: `missing field ${missing.join(', ')} (a dropout is null, not absent)` };
  const t = object.t;
  if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t > MAX_TIME_MS) return { ok: false, reason: `t is ${JSON.stringify(t)}, not an integer ms since 1970` };
  for (const name of NUMERIC_SIGNALS) {
    const v = object[name];
    if (v !== null && (typeof v !== 'number' || !Number.isFinite(v))) return { ok: false, reason: `${name} is ${JSON.stringify(v) ?? String(v)}, not a finite number or null` };
  }
  if (object.obstructed !== null && typeof object.obstructed !== 'boolean') return { ok: false, reason: `obstructed is ${JSON.stringify(object.obstructed)}, not a boolean or null` };
  return {
    ok: true,
    sample: {
      t,
      positionM: object.positionM as number | null,
      velocityMps: object.velocityMps as number | null,
      doorOpening: object.doorOpening as number | null,
      obstructed: object.obstructed as boolean | null,
      currentA: object.currentA as number | null,
      temperatureC: object.temperatureC as number | null,
      vibrationMmS: object.vibrationMmS as number | null,
    },
  };
}

/** A decimal number cell of CSV or the line protocol: empty = null; anything else must be a plain finite number. */
export function parseNumberCell(cell: string): number | null | undefined {
  const trimmed = cell.trim();
  if (trimmed === '') return null;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(trimmed)) return undefined;
  const value = Number(trimmed);
  return Number.isFinite(value) ? value : undefined;
}

/** A boolean cell: empty = null; true/false/1/0. */
export function parseBooleanCell(cell: string): boolean | null | undefined {
  const trimmed = cell.trim().toLowerCase();
  if (trimmed === '') return null;
  if (trimmed === 'true' || trimmed === '1') return true;
  if (trimmed === 'false' || trimmed === '0') return false;
  return undefined;
}

/**
 * Builds a sample from cells in SAMPLE_FIELDS order (CSV after column mapping, the line protocol),
 * with the reason when a cell is not a number / boolean / empty.
 */
export function sampleFromCells(cells: readonly string[]): { ok: true; sample: SignalSample } | { ok: false; reason: string } {
  if (cells.length !== SAMPLE_FIELDS.length) return { ok: false, reason: `${cells.length} fields, expected ${SAMPLE_FIELDS.length}` };
  const object: Record<string, unknown> = {};
  for (let i = 0; i < SAMPLE_FIELDS.length; i += 1) {
    const field = SAMPLE_FIELDS[i];
    const value = field === 'obstructed' ? parseBooleanCell(cells[i]) : parseNumberCell(cells[i]);
    if (value === undefined) return { ok: false, reason: `${field} "${cells[i].slice(0, 40)}" is not ${field === 'obstructed' ? 'true/false/1/0' : 'a number'} or empty` };
    if (field === 't' && value === null) return { ok: false, reason: 't is empty' };
    object[field] = value;
  }
  return toSample(object);
}

/**
 * Landing heights, m above the lowest landing: an explicit list (strictly increasing) or floors x
 * floorHeightM. Index 0 is the lowest served landing.
 */
export function landingHeights(config: { floors: number; floorHeightM: number; landingHeightsM?: number[] }): number[] {
  if (config.landingHeightsM && config.landingHeightsM.length > 0) {
    const heights = config.landingHeightsM;
    if (heights.length < 2) throw new RangeError(`landingHeightsM needs at least 2 landings, got ${heights.length}`);
    for (let i = 1; i < heights.length; i += 1) {
      if (!(heights[i] > heights[i - 1])) throw new RangeError(`landingHeightsM must be strictly increasing, got ${heights[i - 1]} then ${heights[i]} at index ${i}`);
    }
    return [...heights];
  }
  if (!(config.floors >= 2)) throw new RangeError(`floors must be >= 2, got ${config.floors}`);
  return Array.from({ length: config.floors }, (_, i) => i * config.floorHeightM);
}

/** Index of the landing nearest to a position (binary search in the sorted heights). */
export function nearestLanding(heights: readonly number[], positionM: number): number {
  let lo = 0;
  let hi = heights.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (heights[mid] <= positionM) lo = mid;
    else hi = mid;
  }
  return Math.abs(positionM - heights[lo]) <= Math.abs(heights[hi] - positionM) ? lo : hi;
}
