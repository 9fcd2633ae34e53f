import { errorMessage, type Logger } from '../shared/logger';
import { correlationId } from '../shared/envelope';
import { checkRecord, DEFAULT_DOMAIN_LIMITS, quarantineData, RECORD_KINDS, STREAM_QUARANTINE, type DomainLimits } from '../shared/records';
import type { AppendInput, ClockSync, StreamStore, UnstoredSamples } from '../shared/store';
import { monotonicMs } from '../shared/monotonic';
import { ClockMonitor } from './clock';
import type { SampledRecord, SensorSource } from './simulator';
import type { RejectedInput } from './signals';
import { countInto } from '../shared/heartbeat-metrics';
import { randomUUID } from 'node:crypto';
import { journalNoteValue, LOSS_JOURNAL_NOTE, LossJournalFile, parseJournalNote, type JournalState } from './loss-journal';

/** How often, at most, the journal file is rewritten while the store refuses appends. */
const JOURNAL_REWRITE_MS = 1000;

/**
 * Samples a sensor source on a jittered schedule, checks each record, stamps wall-clock and
 * monotonic time, and appends each tick's records to the store (in transactions of at most
 * maxBatchRecords) before the next tick. A reading counts as sampled once that transaction commits: a SIGKILL can only take the
 * tick in progress, never a reading the pipeline has already counted. The store assigns the
 * per-stream sequence numbers inside the append transaction.
 */
export interface AcquisitionConfig {
  sampleIntervalMs: number;
  /** +/- fraction of sampleIntervalMs added at random to each tick, so a fleet drifts apart. */
  jitterFraction: number;
  maxBatchRecords: number;
  /** Records held in memory while the store cannot take them (disk full, locked). */
  maxPendingRecords: number;
}

export interface AcquisitionMetrics {
  sampled: number;
  appended: number;
  appendBatches: number;
  appendFailures: number;
  /** Records that failed their data contract, per stream they were meant for; each went to the quarantine stream. */
  invalid: Record<string, number>;
  quarantined: number;
  droppedOverflow: number;
  pending: number;
  lastAppendAt: string | null;
  /** Samples a previous process held in memory and lost when it ended, found in the loss journal. */
  lostByPreviousProcess: number;
  journalWriteFailures: number;
}

const MAX_STREAM_LABEL = 64;
/** The label under which input that never became a record (a bad line) is counted and quarantined. */
const SENSOR_INPUT = '[sensor input]';

export class Acquisition {
  private pending: AppendInput[] = [];
  /** Samples dropped by the memory cap and not yet recorded in the store, per stream. */
  private unstored = new Map<string, UnstoredSamples>();
  private sampleTimer?: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();
  private lastTickAt = 0;
  private stopped = false;
  /** The loss journal: its file, and what of the samples it names this process still holds. */
  private journalFile?: LossJournalFile;
  private journal?: JournalState & { coveredPending: number; coveredUnstored: Map<string, number> };
  private journalWrittenAt = 0;
  private journalRewriteMs = JOURNAL_REWRITE_MS;
  private lastAppendFailed = false;
  /** The last failed append took at least the rewrite interval (it waited out a lock): the next write is not held back. */
  private lastFailureWasSlow = false;
  readonly clock: ClockMonitor;
  readonly metrics: AcquisitionMetrics = {
    sampled: 0,
    appended: 0,
    appendBatches: 0,
    appendFailures: 0,
    invalid: {},
    quarantined: 0,
    droppedOverflow: 0,
    pending: 0,
    lastAppendAt: null,
    lostByPreviousProcess: 0,
    journalWriteFailures: 0,
  };

  constructor(
    private readonly source: SensorSource,
    private readonly store: StreamStore,
    private config: AcquisitionConfig,
    private readonly logger: Logger,
    private readonly random: () => number = Math.random,
    clock?: ClockMonitor,
    private limits: DomainLimits = DEFAULT_DOMAIN_LIMITS,
  ) {
    this.clock = clock ?? new ClockMonitor(logger);
  }

  /**
   * The loss journal (docs/RELIABILITY.md): while the store refuses appends, the samples held in
   * memory are named, per stream, in a file beside the component; each append during the recovery
   * keeps, in the same transaction, what of them is still unstored. A process that ends holding
   * samples leaves both behind, and the next one, here, records the difference as lost
   * (acquisition-overflow): the cloud gets a loss report instead of a silent gap. Call before start.
   */
  async recoverLossJournal(path: string, rewriteMs = JOURNAL_REWRITE_MS): Promise<void> {
    this.journalFile = new LossJournalFile(path, this.logger);
    this.journalRewriteMs = rewriteMs;
    const file = this.journalFile.read();
    if (!file) return;
    let remaining = file.remaining;
    if (file.epoch !== undefined && file.epoch !== this.store.epoch) {
      // The store was replaced since: the old file's note went with it, so what of the journal
      // it had taken is unknown; counted whole (the old epoch's loss may count some of it too).
      this.logger.warn('loss journal from another store epoch: counted whole', { journalEpoch: file.epoch, epoch: this.store.epoch });
    } else {
      const progress = await this.readJournalNote();
      // The note of the same journal says what of it was stored since; another id, none of it.
      if (progress?.id === file.id) remaining = progress.remaining;
    }
    for (const [stream, count] of Object.entries(remaining)) {
      const lost = this.unstored.get(stream) ?? { stream, count: 0, bytes: 0 };
      lost.count += count;
      this.unstored.set(stream, lost);
      this.metrics.lostByPreviousProcess += count;
    }
    if (this.metrics.lostByPreviousProcess === 0) {
      this.journalFile.remove();
      return;
    }
    this.logger.error('samples held in memory by the previous process were lost when it ended; recorded as lost (acquisition-overflow)', {
      streams: remaining,
      journal: file.id,
    });
    // A new journal names them at once: this process could end before it stores them.
    if (!this.writeJournal(true)) {
      // Carry on under the old journal's id, so the append that records them notes it as done:
      // the next process must not count them again from the old file.
      this.journal = { id: file.id, remaining, coveredPending: 0, coveredUnstored: new Map(Object.entries(remaining)) };
    }
  }

  /** The store note of the journal's progress; a failing read is retried, since counting without it may count stored samples twice. */
  private async readJournalNote(): Promise<JournalState | undefined> {
    let note: string | undefined;
    for (let attempt = 1; ; attempt += 1) {
      try {
        note = await this.store.note(LOSS_JOURNAL_NOTE);
        break;
      } catch (error) {
        if (attempt >= 5) {
          this.logger.error('could not read the loss journal note; counting the whole journal as lost (some of it may be in the store)', { error: errorMessage(error) });
          return undefined;
        }
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
    return note ? parseJournalNote(note, this.logger) : undefined;
  }

  start(offsetMs: number): void {
    this.lastTickAt = performance.now();
    const schedule = (delay: number): void => {
      this.sampleTimer = setTimeout(async () => {
        if (this.stopped) return;
        this.sampleOnce();
        await this.flush();
        if (!this.stopped) schedule(this.nextDelayMs());
      }, delay);
    };
    schedule(offsetMs);
  }

  /** One sampling step: everything the source produced since the last one (the source sees real elapsed time, so a slow store delays samples but loses none). */
  sampleOnce(): void {
    const now = performance.now();
    const elapsed = now - this.lastTickAt;
    this.lastTickAt = now;
    const clock = this.clock.check();
    for (const record of this.source.advance(elapsed)) this.accept(record, clock);
    for (const input of this.source.takeRejected?.() ?? []) this.acceptRejectedInput(input, clock);
  }

  /** Appends what is pending, in batches of at most maxBatchRecords; failures keep the records. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.flushPending());
    return this.flushing;
  }

  /** New sampling settings and limits take effect from the next tick; nothing sampled is lost. */
  reconfigure(config: AcquisitionConfig, limits: DomainLimits = this.limits): void {
    this.config = config;
    this.limits = limits;
  }

  /** Stops sampling and writes everything sampled so far. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.sampleTimer) clearTimeout(this.sampleTimer);
    // The flush below may wait out a lock past the stop timeout and be killed: journal first.
    if (this.lastAppendFailed && this.journalBehind()) this.writeJournal(true);
    await this.flush();
    if (this.pending.length > 0 || this.unstored.size > 0) {
      const dropped = [...this.unstored.values()].reduce((n, u) => n + u.count, 0);
      this.logger.error('stopping with records that could not be stored', { pending: this.pending.length, droppedNotRecorded: dropped, lossJournal: this.journalFile?.path ?? null });
      this.writeJournal(true);
    }
  }

  /**
   * Every sampled record is checked against its data contract (records.ts). One that fails is not
   * dropped: it goes to the quarantine stream with the reason, and travels like any other record.
   */
  private accept(record: SampledRecord, clock: ClockSync): void {
    this.metrics.sampled += 1;
    const checked = checkRecord(record.stream, record.data, this.limits, Date.now());
    if (checked.ok) return this.enqueue(checked.kind.stream, checked.kind.priority, checked.data, clock);
    // A stream name from a broken source can be anything, a megabyte included: counted under a bounded label.
    const stream = typeof record.stream === 'string' ? record.stream.slice(0, MAX_STREAM_LABEL) : `[${typeof record.stream}]`;
    this.logger.warn('sampled record failed its data contract; quarantined', { stream, reason: checked.reason });
    this.quarantine(stream, record.stream, record.data, checked.reason, clock);
  }

  /** Input a source could not turn into samples (a bad replay line, a bad checksum): quarantined, not dropped. */
  private acceptRejectedInput(input: RejectedInput, clock: ClockSync): void {
    const reason = `${input.origin}: line ${input.line}: ${input.reason}`;
    this.logger.warn('sensor input rejected by its source; quarantined', { reason });
    this.quarantine(SENSOR_INPUT, SENSOR_INPUT, input, reason, clock);
  }

  private quarantine(label: string, stream: unknown, value: unknown, reason: string, clock: ClockSync): void {
    countInto(this.metrics.invalid, label);
    this.metrics.quarantined += 1;
    const kind = RECORD_KINDS.get(STREAM_QUARANTINE)!;
    this.enqueue(kind.stream, kind.priority, quarantineData(stream, value, reason, 'acquisition'), clock);
  }

  private enqueue(stream: string, priority: number, data: Record<string, unknown>, clock: ClockSync): void {
    if (this.pending.length >= this.config.maxPendingRecords) {
      // Memory is bounded; the oldest unstored record goes, and the loss is counted and logged.
      // It still gets a seq once the store is back, recorded as dropped (acquisition-overflow), so
      // the cloud receives the loss as an exact range with its reason (docs/RELIABILITY.md).
      const dropped = this.pending.shift()!;
      this.metrics.droppedOverflow += 1;
      if (this.journal && this.journal.coveredPending > 0) {
        this.journal.coveredPending -= 1;
        this.journal.coveredUnstored.set(dropped.stream, (this.journal.coveredUnstored.get(dropped.stream) ?? 0) + 1);
      }
      const lost = this.unstored.get(dropped.stream) ?? { stream: dropped.stream, count: 0, bytes: 0 };
      lost.count += 1;
      lost.bytes += Buffer.byteLength(JSON.stringify(dropped.data));
      this.unstored.set(dropped.stream, lost);
      this.logger.error('store unavailable too long; dropping the oldest unstored sample', { stream: dropped.stream, maxPendingRecords: this.config.maxPendingRecords });
    }
    this.pending.push({ stream, priority, time: Date.now(), mono: monotonicMs(), data, clock });
    this.metrics.pending = this.pending.length;
  }

  private async flushPending(): Promise<void> {
    while (this.pending.length > 0 || this.unstored.size > 0) {
      const batch = this.pending.slice(0, this.config.maxBatchRecords);
      const unstored = [...this.unstored.values()];
      let assigned: Array<{ stream: string; seq: number }>;
      // While appends fail, each one may wait out the store's busy timeout (10 s): the samples
      // that came since the journal was written are named before that wait, not after it; after a
      // wait that long, the interval between rewrites has passed anyway.
      if (this.lastAppendFailed && this.journalBehind()) this.writeJournal(this.lastFailureWasSlow);
      const appendStartedAt = new Date().toISOString();
      const attemptStarted = performance.now();
      const progress = this.journalAfter(batch);
      try {
        assigned = await this.store.append(batch, unstored, progress && { key: LOSS_JOURNAL_NOTE, value: journalNoteValue(progress) });
      } catch (error) {
        this.metrics.appendFailures += 1;
        this.lastAppendFailed = true;
        this.lastFailureWasSlow = performance.now() - attemptStarted >= this.journalRewriteMs;
        this.logger.error('append to the store failed; keeping the batch for the next flush', { records: batch.length, error: errorMessage(error) });
        if (this.journalBehind()) this.writeJournal(false);
        return;
      }
      this.lastAppendFailed = false;
      if (progress) this.journalStored(progress);
      if (unstored.length > 0) {
        this.unstored.clear();
        this.logger.warn('samples dropped during the store outage recorded as lost (acquisition-overflow); the cloud gets them as a loss report', {
          streams: Object.fromEntries(unstored.map((u) => [u.stream, u.count])),
        });
      }
      this.pending.splice(0, batch.length);
      this.metrics.appended += batch.length;
      this.metrics.appendBatches += 1;
      this.metrics.lastAppendAt = new Date().toISOString();
      this.metrics.pending = this.pending.length;
      this.logAppended(assigned, appendStartedAt);
    }
  }

  /** One debug line per stream and batch, with the correlation id scripts/trace.ts follows. */
  private logAppended(assigned: Array<{ stream: string; seq: number }>, appendStartedAt: string): void {
    if (!this.logger.isDebugEnabled()) return;
    const thing = String((this.logger.defaultMeta as { thing?: unknown } | undefined)?.thing ?? 'unknown-thing');
    const ranges = new Map<string, { from: number; to: number }>();
    for (const { stream, seq } of assigned) {
      const range = ranges.get(stream);
      if (!range) ranges.set(stream, { from: seq, to: seq });
      else range.to = Math.max(range.to, seq);
    }
    for (const [stream, { from, to }] of ranges) {
      // appendStartedAt: the publisher may read the committed rows before this line is written.
      this.logger.debug('records appended', { correlationId: correlationId(thing, stream, this.store.epoch, from, to), stream, epoch: this.store.epoch, seqFrom: from, seqTo: to, appendStartedAt });
    }
  }

  /** Whether samples held in memory are not all named in the journal file. */
  private journalBehind(): boolean {
    if (!this.journal) return this.pending.length > 0 || this.unstored.size > 0;
    if (this.pending.length > this.journal.coveredPending) return true;
    for (const lost of this.unstored.values()) if (lost.count > (this.journal.coveredUnstored.get(lost.stream) ?? 0)) return true;
    return false;
  }

  /** What the journal will still name once this batch and every unstored count are stored. */
  private journalAfter(batch: AppendInput[]): (JournalState & { coveredStored: number }) | undefined {
    if (!this.journal) return undefined;
    const remaining = { ...this.journal.remaining };
    const coveredStored = Math.min(batch.length, this.journal.coveredPending);
    for (const record of batch.slice(0, coveredStored)) remaining[record.stream] = (remaining[record.stream] ?? 0) - 1;
    for (const [stream, count] of this.journal.coveredUnstored) remaining[stream] = (remaining[stream] ?? 0) - count;
    for (const stream of Object.keys(remaining)) if (remaining[stream] <= 0) delete remaining[stream];
    return { id: this.journal.id, remaining, coveredStored };
  }

  /** After a successful append: the journal names less; once it names nothing, its file goes. */
  private journalStored(progress: JournalState & { coveredStored: number }): void {
    const journal = this.journal;
    if (!journal || journal.id !== progress.id) return;
    journal.remaining = progress.remaining;
    journal.coveredPending -= progress.coveredStored;
    journal.coveredUnstored.clear();
    if (Object.keys(journal.remaining).length > 0) return;
    this.journal = undefined;
    // The note already says nothing remains: a file left by a failed removal records no loss.
    this.journalFile?.remove();
  }

  /**
   * Names, in the journal file, every sample held in memory now (atomically: a new file renamed
   * over the old). At most once a second while the store refuses appends; `force` for the moments
   * a process may end (stopping, or starting with a previous process's loss).
   */
  private writeJournal(force: boolean): boolean {
    if (!this.journalFile) return false;
    if (!force && this.journal && Date.now() - this.journalWrittenAt < this.journalRewriteMs) return false;
    const remaining: Record<string, number> = {};
    for (const record of this.pending) remaining[record.stream] = (remaining[record.stream] ?? 0) + 1;
    const coveredUnstored = new Map<string, number>();
    for (const lost of this.unstored.values()) {
      remaining[lost.stream] = (remaining[lost.stream] ?? 0) + lost.count;
      coveredUnstored.set(lost.stream, lost.count);
    }
    if (Object.keys(remaining).length === 0) return false;
    const journal = { id: randomUUID(), remaining, coveredPending: this.pending.length, coveredUnstored };
    if (!this.journalFile.write(journal, this.store.epoch)) {
      this.metrics.journalWriteFailures += 1;
      return false;
    }
    this.journal = journal;
    this.journalWrittenAt = Date.now();
    return true;
  }

  private nextDelayMs(): number {
    const jitter = (this.random() * 2 - 1) * this.config.jitterFraction * this.config.sampleIntervalMs;
    return Math.max(1, this.config.sampleIntervalMs + jitter);
  }
}
