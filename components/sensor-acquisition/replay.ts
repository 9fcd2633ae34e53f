/**
 * Replay of a recorded file of signal samples, NDJSON or CSV, paced by timeScale. A line that is
 * not a sample is rejected with its line number and the reason and handed back with the samples
 * (for a warn log and quarantine); the rest plays on.
 *
 * Time mapping: recorded times are kept by default (the events say when things happened). With
 * `rebase`, the first sample is moved to `startTimeMs` and every other sample keeps its distance
 * from the first; by default startTimeMs is chosen so the last sample's time is the wall-clock
 * moment it plays (so no time is ever in the future, whatever timeScale), and a rebased sample is
 * held back until the wall clock reaches its time (this matters for later passes of a loop).
 * Pacing: a sample plays once (t - first t) / timeScale ms of real time (the sum of advance()
 * steps) have passed.
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { rejectedText, SAMPLE_FIELDS, sampleFromCells, toSample, type RejectedInput, type SignalBatch, type SignalSample, type SignalSource } from './signals';

export type ReplayFormat = 'ndjson' | 'csv';

export interface ReplayOptions {
  /** Recorded sample time per real time (10: ten recorded seconds per real second). Default 1. */
  timeScale?: number;
  /** Move the recording to the present. Default false: recorded times as they are. */
  rebase?: boolean;
  /**
   * With rebase: where the first sample goes. Default: the wall clock at construction minus
   * span x (1 - 1/timeScale), so the last sample's time is the moment it plays.
   */
  startTimeMs?: number;
  /** The wall clock, ms since 1970 (default Date.now). A rebased sample never plays before its time. */
  now?: () => number;
  /** Start over at the end; each pass is shifted by the recording's span plus one sample interval. Default false. */
  loop?: boolean;
  /** Name used in rejected entries. */
  origin?: string;
}

/** The format named by a file's extension (.ndjson/.jsonl/.json -> ndjson, .csv -> csv). */
export function formatFromPath(path: string): ReplayFormat {
  const ext = extname(path).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.ndjson' || ext === '.jsonl' || ext === '.json') return 'ndjson';
  throw new Error(`cannot tell the replay format of "${path}" from its extension; set source.format to ndjson or csv`);
}

/** CSV header -> for each SAMPLE_FIELDS entry the column index. Throws on a bad header (nothing could be played). */
function csvColumns(header: string, origin: string): number[] {
  const names = header.split(',').map((cell) => cell.trim());
  const unknown = names.filter((name) => !(SAMPLE_FIELDS as readonly string[]).includes(name));
  if (unknown.length > 0) throw new Error(`${origin}: line 1: CSV header has unknown column ${unknown.map((n) => JSON.stringify(n)).join(', ')} (expected ${SAMPLE_FIELDS.join(',')})`);
  const missing = SAMPLE_FIELDS.filter((field) => !names.includes(field));
  if (missing.length > 0) throw new Error(`${origin}: line 1: CSV header lacks column ${missing.join(', ')}`);
  if (new Set(names).size !== names.length) throw new Error(`${origin}: line 1: CSV header names a column twice`);
  return SAMPLE_FIELDS.map((field) => names.indexOf(field));
}

/** Parses one line; undefined for a blank line. */
export type LineParser = (text: string) => { ok: true; sample: SignalSample } | { ok: false; reason: string } | undefined;

export function ndjsonParser(): LineParser {
  return (text) => {
    if (text.trim() === '') return undefined;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      return { ok: false, reason: `not JSON: ${(error as Error).message}` };
    }
    return toSample(value);
  };
}

export function csvParser(columns: number[]): LineParser {
  return (text) => {
    if (text.trim() === '') return undefined;
    const cells = text.split(',');
    if (cells.length !== columns.length) return { ok: false, reason: `${cells.length} cells, the header has ${columns.length}` };
    return sampleFromCells(columns.map((index) => cells[index]));
  };
}

export class ReplaySignals implements SignalSource {
  private readonly lines: string[];
  private readonly parse: LineParser;
  private readonly firstLine: number;
  private readonly timeScale: number;
  private readonly origin: string;
  private cursor: number;
  private elapsedMs = 0;
  /** Recorded time of the first sample (set when it is read). */
  private firstT: number | null = null;
  private lastRecordedT = -Infinity;
  private lastT = -Infinity;
  private span = 0;
  private interval = 0;
  private pass = 0;
  private shift = 0;
  private lookahead: { sample: SignalSample } | null = null;
  private played = 0;
  private rejectedCount = 0;
  private ended = false;
  private readonly rebaseStart: number | null;
  private readonly now: () => number;

  /** `text` is the whole recording. Throws if the format or a CSV header is unusable. */
  constructor(
    text: string,
    readonly format: ReplayFormat,
    private readonly options: ReplayOptions = {},
  ) {
    this.origin = options.origin ?? '(replay)';
    this.timeScale = options.timeScale ?? 1;
    if (!(this.timeScale > 0)) throw new RangeError(`replay timeScale must be > 0, got ${this.timeScale}`);
    this.lines = text.split('\n').map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
    if (this.lines.length > 0 && this.lines[this.lines.length - 1] === '') this.lines.pop();
    if (format === 'csv') {
      if (this.lines.length === 0) throw new Error(`${this.origin}: empty CSV file, no header`);
      this.parse = csvParser(csvColumns(this.lines[0], this.origin));
      this.firstLine = 1;
    } else {
      this.parse = ndjsonParser();
      this.firstLine = 0;
    }
    this.cursor = this.firstLine;
    this.now = options.now ?? Date.now;
    this.rebaseStart = options.rebase ? Math.floor(options.startTimeMs ?? this.now() - this.recordedSpan() * (1 - 1 / this.timeScale)) : null;
  }

  static fromFile(path: string, format: ReplayFormat = formatFromPath(path), options: ReplayOptions = {}): ReplaySignals {
    return new ReplaySignals(readFileSync(path, 'utf8'), format, { origin: path, ...options });
  }

  /** True once every line was played (never with loop). */
  get done(): boolean {
    return this.ended;
  }

  read(realElapsedMs: number): SignalBatch {
    this.elapsedMs += Math.max(0, realElapsedMs);
    const samples: SignalSample[] = [];
    const rejected: RejectedInput[] = [];
    for (;;) {
      if (!this.lookahead && !this.readNext(rejected)) break;
      const next = this.lookahead!;
      const recordedOffset = next.sample.t - (this.firstT as number);
      if (recordedOffset / this.timeScale > this.elapsedMs) break;
      if (this.rebaseStart !== null && recordedOffset + this.rebaseStart > this.now()) break;
      samples.push(this.mapTime(next.sample));
      this.lookahead = null;
      this.played += 1;
    }
    return { samples, rejected };
  }

  metrics(): Record<string, number | boolean> {
    return { replayedSamples: this.played, replayRejectedLines: this.rejectedCount, replayDone: this.ended, replayPass: this.pass };
  }

  /** Reads lines until one becomes a sample (kept as lookahead); false at the end. */
  private readNext(rejected: RejectedInput[]): boolean {
    for (;;) {
      if (this.cursor >= this.lines.length) {
        if (!this.options.loop || this.played === 0) {
          this.ended = true;
          return false;
        }
        this.pass += 1;
        this.shift += this.span + Math.max(1, this.interval);
        this.cursor = this.firstLine;
        this.lastRecordedT = -Infinity;
      }
      const index = this.cursor;
      this.cursor += 1;
      const text = this.lines[index];
      const parsed = this.parse(text);
      if (parsed === undefined) continue;
      let reason: string | undefined;
      if (!parsed.ok) reason = parsed.reason;
      else if (!(parsed.sample.t > this.lastRecordedT)) reason = `t ${parsed.sample.t} is not after the previous sample's ${this.lastRecordedT}`;
      if (reason !== undefined) {
        // On a later loop pass the same lines are not reported again.
        if (this.pass === 0) {
          this.rejectedCount += 1;
          rejected.push({ line: index + 1, text: rejectedText(text), reason, origin: this.origin });
        }
        continue;
      }
      const sample = (parsed as { sample: SignalSample }).sample;
      if (this.pass === 0) {
        if (this.firstT === null) this.firstT = sample.t;
        else if (this.interval === 0) this.interval = sample.t - this.lastRecordedT;
        this.span = sample.t - this.firstT;
      }
      this.lastRecordedT = sample.t;
      sample.t += this.shift;
      this.lookahead = { sample };
      return true;
    }
  }

  /** Last minus first valid sample time in the file (0 if fewer than two). */
  private recordedSpan(): number {
    const valid = (index: number) => {
      const parsed = this.parse(this.lines[index]);
      return parsed && parsed.ok ? parsed.sample.t : undefined;
    };
    let first: number | undefined;
    for (let i = this.firstLine; i < this.lines.length && first === undefined; i += 1) first = valid(i);
    let last: number | undefined;
    for (let i = this.lines.length - 1; i >= this.firstLine && last === undefined; i -= 1) last = valid(i);
    return first !== undefined && last !== undefined && last > first ? last - first : 0;
  }

  private mapTime(sample: SignalSample): SignalSample {
    if (this.rebaseStart !== null) sample.t = sample.t - (this.firstT as number) + this.rebaseStart;
    if (!(sample.t > this.lastT)) sample.t = this.lastT + 1; // a loop pass never goes back in time
    this.lastT = sample.t;
    return sample;
  }
}
