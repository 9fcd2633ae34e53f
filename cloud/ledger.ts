import type { ArchiveBackend } from './archive';
import { parseRecordKey, RECORDS_PREFIX } from './keys';

/** An inclusive [from, to] range of sequence numbers. */
export type SeqRange = [number, number];

/** The ack schema (components/shared/schemas/ack.schema.json) allows at most 100 gaps. */
export const MAX_GAPS = 100;

/**
 * The archived sequence numbers of one (device, stream, epoch), kept as sorted, disjoint,
 * non-adjacent ranges. A healthy stream collapses to a single range, so memory stays constant
 * however many records arrive.
 */
export class StreamLedger {
  private readonly ranges: SeqRange[] = [];
  private total = 0;

  /** Marks from..to (inclusive) as archived; overlapping and adjacent ranges merge. */
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

  /** How many distinct sequence numbers are archived. */
  get count(): number {
    return this.total;
  }

  /** Highest n such that 1..n are all archived; 0 if seq 1 is missing. */
  watermark(): number {
    return this.ranges.length > 0 && this.ranges[0][0] === 1 ? this.ranges[0][1] : 0;
  }

  /** Highest archived sequence number; 0 if none. */
  highest(): number {
    return this.ranges.length > 0 ? this.ranges[this.ranges.length - 1][1] : 0;
  }

  /** Missing ranges between the watermark and the highest archived seq, lowest first, at most limit. */
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

  /** Total number of missing seqs between 1 and the highest archived seq (not capped). */
  missingCount(): number {
    return this.highest() - this.total;
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
  static async rebuild(archive: ArchiveBackend, onIgnoredKey?: (key: string) => void): Promise<Ledger> {
    const ledger = new Ledger();
    for (const key of await archive.list(RECORDS_PREFIX)) {
      const parsed = parseRecordKey(key);
      if (!parsed) {
        onIgnoredKey?.(key);
        continue;
      }
      ledger.stream(parsed.device, parsed.stream, parsed.epoch).add(parsed.seqFrom, parsed.seqTo);
    }
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
