import type { ArchiveBackend } from './archive';
import { GAPS_PREFIX, parseGapKey, parseRecordKey, RECORDS_PREFIX } from './keys';
import { countInto } from '../components/shared/heartbeat-metrics';

/** An inclusive [from, to] range of sequence numbers. */
export type SeqRange = [number, number];

/** The ack schema (components/shared/schemas/ack.v1.schema.json) allows at most 100 gaps. */
export const MAX_GAPS = 100;

/**
 * A set of sequence numbers kept as sorted, disjoint, non-adjacent ranges. A healthy stream
 * collapses to a single range, so memory stays constant however many records arrive.
 */
export class RangeSet {
  private readonly ranges: SeqRange[] = [];
  private total = 0;

  /** Adds from..to (inclusive); overlapping and adjacent ranges merge. */
  add(from: number, to: number): void {
    if (!Number.isInteger(from) || !Number.isInteger(to) || from < 1 || to < from) {
      throw new RangeError(`a ledger range needs integers 1 <= from <= to, got [${from}, ${to}]`);
    }
    // First range that overlaps or touches [from, to]: its end is at least from - 1.
    const start = this.firstEndingAtOrAfter(from - 1);
    let end = start;
    let mergedFrom = from;
    let mergedTo = to;
    let removed = 0;
    while (end < this.ranges.length && this.ranges[end][0] <= to + 1) {
      mergedFrom = Math.min(mergedFrom, this.ranges[end][0]);
      mergedTo = Math.max(mergedTo, this.ranges[end][1]);
      removed += this.ranges[end][1] - this.ranges[end][0] + 1;
      end += 1;
    }
    this.ranges.splice(start, end - start, [mergedFrom, mergedTo]);
    this.total += mergedTo - mergedFrom + 1 - removed;
  }

  has(seq: number): boolean {
    const i = this.firstEndingAtOrAfter(seq);
    return i < this.ranges.length && this.ranges[i][0] <= seq;
  }

  /** How many distinct sequence numbers are in the set. */
  get count(): number {
    return this.total;
  }

  /** Highest n such that 1..n are all in the set; 0 if seq 1 is missing. */
  watermark(): number {
    return this.ranges.length > 0 && this.ranges[0][0] === 1 ? this.ranges[0][1] : 0;
  }

  /** Highest sequence number in the set; 0 if none. */
  highest(): number {
    return this.ranges.length > 0 ? this.ranges[this.ranges.length - 1][1] : 0;
  }

  /** Ranges missing between 1 and the highest seq, lowest first, at most limit. */
  gaps(limit = MAX_GAPS): SeqRange[] {
    const out: SeqRange[] = [];
    let previousEnd = 0;
    for (const [from, to] of this.ranges) {
      if (out.length >= limit) break;
      if (from > previousEnd + 1) out.push([previousEnd + 1, from - 1]);
      previousEnd = to;
    }
    return out;
  }

  /** Total number of missing seqs between 1 and the highest seq (not capped). */
  missingCount(): number {
    return this.highest() - this.total;
  }

  /** Every range of 1..upTo not in the set, uncapped. */
  complement(upTo: number): SeqRange[] {
    const out: SeqRange[] = [];
    let next = 1;
    for (const [from, to] of this.ranges) {
      if (from > upTo) break;
      if (from > next) out.push([next, from - 1]);
      next = Math.max(next, to + 1);
    }
    if (next <= upTo) out.push([next, upTo]);
    return out;
  }

  toArray(): SeqRange[] {
    return this.ranges.map(([from, to]) => [from, to]);
  }

  private firstEndingAtOrAfter(seq: number): number {
    let low = 0;
    let high = this.ranges.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.ranges[mid][1] < seq) low = mid + 1;
      else high = mid;
    }
    return low;
  }
}


/**
 * What the cloud knows of one (device, stream, epoch): the archived seqs, and the permanent gaps
 * the device reported (dropped by a named retention rule, or lost with a replaced epoch). The
 * watermark and gaps count both, so a reported loss never holds a device's deletions back, while
 * `count` and `has` speak of archived records only.
 */
export class StreamLedger {
  private readonly archived = new RangeSet();
  private readonly gone = new RangeSet();
  private readonly covered = new RangeSet();
  private readonly goneReasons: Array<{ from: number; to: number; reason: string }> = [];

  /** Marks from..to (inclusive) as archived. */
  add(from: number, to: number): void {
    this.archived.add(from, to);
    this.covered.add(from, to);
  }

  /** Marks from..to as permanently missing, for a reason the device stated. */
  markGone(from: number, to: number, reason: string): void {
    this.gone.add(from, to);
    this.covered.add(from, to);
    this.goneReasons.push({ from, to, reason });
  }

  has(seq: number): boolean {
    return this.archived.has(seq);
  }

  isGone(seq: number): boolean {
    return this.gone.has(seq);
  }

  /** How many distinct sequence numbers are archived. */
  get count(): number {
    return this.archived.count;
  }

  /** Highest n such that each of 1..n is archived or a permanent gap; 0 if seq 1 is neither. */
  watermark(): number {
    return this.covered.watermark();
  }

  /** Highest sequence number archived or reported gone; 0 if none. */
  highest(): number {
    return this.covered.highest();
  }

  /** Open gaps (neither archived nor reported gone) up to the highest known seq, at most limit. */
  gaps(limit = MAX_GAPS): SeqRange[] {
    return this.covered.gaps(limit);
  }

  /** Ranges of 1..upTo neither archived nor reported gone, uncapped. */
  uncovered(upTo: number): SeqRange[] {
    return this.covered.complement(upTo);
  }

  /** Number of open-gap seqs (not capped). */
  missingCount(): number {
    return this.covered.missingCount();
  }

  /** Permanent-gap seqs that were never archived, by reason (first reason reported wins). */
  goneByReason(): Record<string, number> {
    const counted = new RangeSet();
    const out: Record<string, number> = {};
    for (const { from, to, reason } of this.goneReasons) {
      for (let seq = from; seq <= to; seq += 1) {
        if (this.archived.has(seq) || counted.has(seq)) continue;
        counted.add(seq, seq);
        countInto(out, reason);
      }
    }
    return out;
  }

  /**
   * The records not yet archived, grouped into runs of consecutive seqs, in input order. Each
   * run becomes one archive object, so a key always names a contiguous run.
   */
  missingFrom<T extends { seq: number }>(records: readonly T[]): T[][] {
    const runs: T[][] = [];
    let run: T[] | undefined;
    for (const record of records) {
      if (this.has(record.seq)) {
        run = undefined;
        continue;
      }
      if (run && run[run.length - 1].seq === record.seq - 1) {
        run.push(record);
      } else {
        run = [record];
        runs.push(run);
      }
    }
    return runs;
  }

  toArray(): SeqRange[] {
    return this.archived.toArray();
  }
}

export interface StreamId {
  device: string;
  stream: string;
  epoch: string;
}

/** Every stream's StreamLedger, keyed on (device, stream, epoch) as the contract requires. */
export class Ledger {
  private readonly streams = new Map<string, { id: StreamId; ledger: StreamLedger }>();

  /**
   * Rebuilds from key names alone: a records/ key names exactly the contiguous run its object
   * holds, so listing is enough and no object has to be read. Keys that do not parse are
   * reported through onIgnoredKey and otherwise skipped.
   */
  static async rebuild(archive: ArchiveBackend, onIgnoredKey?: (key: string) => void, gapReasons?: Map<string, string>): Promise<Ledger> {
    const ledger = new Ledger();
    for (const key of await archive.list(RECORDS_PREFIX)) {
      const parsed = parseRecordKey(key);
      if (!parsed) {
        onIgnoredKey?.(key);
        continue;
      }
      ledger.stream(parsed.device, parsed.stream, parsed.epoch).add(parsed.seqFrom, parsed.seqTo);
    }
    // Permanent gaps: the key names the range, the body the reason. A gap object never changes,
    // so a caller that rebuilds often passes gapReasons and each body is read once.
    const listed = new Set<string>();
    for (const key of await archive.list(GAPS_PREFIX)) {
      const parsed = parseGapKey(key);
      if (!parsed) {
        onIgnoredKey?.(key);
        continue;
      }
      listed.add(key);
      let reason = gapReasons?.get(key);
      if (reason === undefined) {
        reason = gapReason(await archive.get(key));
        gapReasons?.set(key, reason);
      }
      ledger.stream(parsed.device, parsed.stream, parsed.epoch).markGone(parsed.seqFrom, parsed.seqTo, reason);
    }
    if (gapReasons) for (const key of gapReasons.keys()) if (!listed.has(key)) gapReasons.delete(key);
    return ledger;
  }

  /** The stream's ledger, created empty on first use. */
  stream(device: string, stream: string, epoch: string): StreamLedger {
    const key = Ledger.key(device, stream, epoch);
    let entry = this.streams.get(key);
    if (!entry) {
      entry = { id: { device, stream, epoch }, ledger: new StreamLedger() };
      this.streams.set(key, entry);
    }
    return entry.ledger;
  }

  peek(device: string, stream: string, epoch: string): StreamLedger | undefined {
    return this.streams.get(Ledger.key(device, stream, epoch))?.ledger;
  }

  entries(): Array<StreamId & { ledger: StreamLedger }> {
    return [...this.streams.values()].map(({ id, ledger }) => ({ ...id, ledger }));
  }

  private static key(device: string, stream: string, epoch: string): string {
    // NUL cannot occur in MQTT topic levels or the schema's name patterns, so keys cannot collide.
    return `${device}\u0000${stream}\u0000${epoch}`;
  }
}

/** A gaps/ object's reason; an unreadable body still records the gap, only its reason is lost. */
function gapReason(body: Buffer | undefined): string {
  try {
    const reason = (JSON.parse(body?.toString('utf8') ?? '{}') as { reason?: unknown } | null)?.reason;
    return reason === undefined || reason === null ? 'unknown' : String(reason);
  } catch {
    return 'unknown';
  }
}
