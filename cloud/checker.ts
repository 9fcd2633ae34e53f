import type { MqttClient } from 'mqtt';
import { sleep } from '../components/shared/backoff';
import { checkEpochReport, EPOCH_REPLACED, MAX_BACKFILL_RECORDS, type BackfillRequest, type EpochReport } from '../components/shared/envelope';
import { createLogger, errorMessage, type Logger } from '../components/shared/logger';
import { APP } from '../components/shared/topics';
import type { ArchiveBackend } from './archive';
import { AlertManager, alertId, CLOUD_DEVICE, fireArchiveError, type AlertSink, type AlertStats } from './alerts';
import { ArchiveFileSink, LogSink, readActiveAlerts } from './alert-sinks';
import { ackFor, publishAck, publishBackfill, countSeqs, expirePermanentGapAlerts, firePermanentGap, GapTracker } from './gap-tracker';
import { CHECKER_STATUS_KEY, EPOCHS_PREFIX, gapKey, parseGapKey } from './keys';
import { Ledger, type SeqRange } from './ledger';
import { countInto } from '../components/shared/heartbeat-metrics';

/**
 * The integrity checker: a process of its own that reads what the archive holds and, from that
 * alone, computes per-stream watermarks and gaps, sends acks and backfill requests, and turns
 * epoch reports into permanent gaps. The archive is its whole state, so it can stop, crash or
 * run on a schedule without any ingest instance noticing, and no ingest failure can mislead it:
 * it acks only what is stored. See docs/SCALING.md.
 */
export interface IntegrityCheckerOptions {
  archive: ArchiveBackend;
  /** Publishes acks and backfill requests; the checker never ends it. */
  client: MqttClient;
  app?: string;
  logger?: Logger;
  /** Pause between passes. */
  intervalMs?: number;
  /** An ack whose content did not change is sent again after this long (a device may have missed it). */
  ackRepeatMs?: number;
  gapGraceMs?: number;
  backfillRetryMs?: number;
  maxBackfillRetryMs?: number;
  maxBackfillRecords?: number;
  permanentGapHoldMs?: number;
  /** Default: the log and the archive's _alerts/ (the checker is the one writer of the alert view). */
  alertSinks?: AlertSink[];
  now?: () => Date;
}

export const DEFAULT_CHECK_INTERVAL_MS = 5_000;
export const DEFAULT_ACK_REPEAT_MS = 60_000;

export interface CheckerStats {
  passes: number;
  passErrors: number;
  lastPassAt: string | null;
  lastPassMs: number | null;
  streams: number;
  /** Seqs archived across every stream, as the last pass counted them. */
  recordsArchived: number;
  /** Seqs neither archived nor declared gone, below each stream's highest. */
  openGapRecords: number;
  /** Seqs never archived that devices declared gone, by reason. */
  permanentGapRecords: Record<string, number>;
  /** Seqs of replaced epochs that never arrived, recorded as gaps/ by this checker. */
  epochLoss: number;
  /** Epoch reports whose old file was unreadable: losses of unknown size. */
  epochLossUnknown: number;
  acksSent: number;
  ackErrors: number;
  backfillRequests: number;
  archiveErrors: number;
}

export class IntegrityChecker {
  private readonly archive: ArchiveBackend;
  private readonly client: MqttClient;
  private readonly app: string;
  private readonly logger: Logger;
  private readonly intervalMs: number;
  private readonly ackRepeatMs: number;
  private readonly permanentGapHoldMs: number;
  private readonly now: () => Date;
  private readonly alerts: AlertManager;
  private readonly gaps: GapTracker;
  private readonly maxBackfillRecords: number;
  /** What was last acked per stream, and when, so an unchanged ack is not sent every pass. */
  private readonly lastAck = new Map<string, { body: string; atMs: number }>();
  /** gaps/ keys already seen; a new one is a new permanent loss and fires its alert. */
  private knownGapKeys: Set<string> | undefined;
  /** Every gaps/ object's reason, by key: gap objects never change, so each body is read once. */
  private readonly gapReasons = new Map<string, string>();
  /** Stored epoch reports by key, read once each (undefined: unreadable, warned about once). */
  private readonly epochReports = new Map<string, EpochReport | undefined>();
  private readonly unknownLossReported = new Set<string>();
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  private readonly counters: CheckerStats = {
    passes: 0,
    passErrors: 0,
    lastPassAt: null,
    lastPassMs: null,
    streams: 0,
    recordsArchived: 0,
    openGapRecords: 0,
    permanentGapRecords: {},
    epochLoss: 0,
    epochLossUnknown: 0,
    acksSent: 0,
    ackErrors: 0,
    backfillRequests: 0,
    archiveErrors: 0,
  };

  constructor(options: IntegrityCheckerOptions) {
    this.archive = options.archive;
    this.client = options.client;
    this.app = options.app ?? APP;
    this.logger = options.logger ?? createLogger('IntegrityChecker', { app: this.app });
    this.intervalMs = atLeast('intervalMs', options.intervalMs ?? DEFAULT_CHECK_INTERVAL_MS, 1);
    this.ackRepeatMs = atLeast('ackRepeatMs', options.ackRepeatMs ?? DEFAULT_ACK_REPEAT_MS, 0);
    this.permanentGapHoldMs = atLeast('permanentGapHoldMs', options.permanentGapHoldMs ?? 60 * 60_000, 0);
    this.maxBackfillRecords = Math.min(MAX_BACKFILL_RECORDS, Math.max(1, options.maxBackfillRecords ?? MAX_BACKFILL_RECORDS));
    this.now = options.now ?? (() => new Date());
    this.alerts = new AlertManager({ sinks: options.alertSinks ?? [new LogSink(this.logger), new ArchiveFileSink(this.archive, this.now)], logger: this.logger, now: this.now });
    this.gaps = new GapTracker({
      alerts: this.alerts,
      gapGraceMs: atLeast('gapGraceMs', options.gapGraceMs ?? 10_000, 0),
      backfillRetryMs: atLeast('backfillRetryMs', options.backfillRetryMs ?? 30_000, 0),
      maxBackfillRetryMs: atLeast('maxBackfillRetryMs', options.maxBackfillRetryMs ?? 5 * 60_000, 0),
      maxBackfillRecords: this.maxBackfillRecords,
    });
  }

  /** Restores the alert view, then runs a pass every intervalMs until stop(). */
  async start(): Promise<void> {
    try {
      this.alerts.restore(await readActiveAlerts(this.archive));
    } catch (error) {
      this.logger.warn('active alerts unreadable; starting with none', { error: errorMessage(error) });
    }
    this.loop = this.run();
  }

  /** Finishes the pass under way, flushes alerts and writes the status once more. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
    await this.alerts.flush();
    await this.writeStatus();
  }

  stats(): CheckerStats & AlertStats {
    return { ...this.counters, permanentGapRecords: { ...this.counters.permanentGapRecords }, ...this.alerts.stats() };
  }

  private async run(): Promise<void> {
    while (!this.abort.signal.aborted) {
      await this.checkOnce().catch((error) => {
        // A listing that failed (S3 unreachable) only delays the next acks: nothing is lost by waiting.
        this.counters.passErrors += 1;
        this.logger.error('integrity pass failed; the next pass starts over', { error: errorMessage(error) });
      });
      await sleep(this.intervalMs, this.abort.signal);
    }
  }

  /** One pass over the whole archive. */
  async checkOnce(): Promise<void> {
    const started = Date.now();
    const ledger = await Ledger.rebuild(this.archive, (key) => this.logger.warn('ignored archive key outside the record layout', { key }), this.gapReasons);
    const closed = await this.closeReplacedEpochs(ledger);
    this.notePermanentGaps();
    const nowMs = this.now().getTime();
    let archived = 0;
    let open = 0;
    const gone: Record<string, number> = {};
    for (const entry of ledger.entries()) {
      archived += entry.ledger.count;
      if (closed.has(`${entry.device}\u0000${entry.epoch}`)) continue;
      open += entry.ledger.missingCount();
      for (const [reason, n] of Object.entries(entry.ledger.goneByReason())) countInto(gone, reason, n);
      await this.sendAckIfDue(entry.device, entry.stream, entry.epoch, entry.ledger, nowMs);
    }
    for (const request of this.gaps.check(ledger.entries(), (device, epoch) => closed.has(`${device}\u0000${epoch}`), nowMs)) await this.sendBackfill(request);
    expirePermanentGapAlerts(this.alerts, this.permanentGapHoldMs, nowMs);
    Object.assign(this.counters, {
      passes: this.counters.passes + 1,
      lastPassAt: new Date(nowMs).toISOString(),
      lastPassMs: Date.now() - started,
      streams: ledger.entries().length,
      recordsArchived: archived,
      openGapRecords: open,
      permanentGapRecords: gone,
    });
    await this.writeStatus();
  }

  /**
   * A stored epoch report closes the old epoch: whatever of it is neither archived nor already
   * declared gone, up to what the device had sampled, will never arrive and becomes a gaps/
   * object with the reason epoch-replaced. Returns the closed (device, epoch) pairs.
   */
  private async closeReplacedEpochs(ledger: Ledger): Promise<Set<string>> {
    const closed = new Set<string>();
    const keys = await this.archive.list(EPOCHS_PREFIX);
    for (const known of this.epochReports.keys()) if (!keys.includes(known)) this.epochReports.delete(known);
    for (const key of keys) {
      if (!this.epochReports.has(key)) this.epochReports.set(key, await this.readEpochReport(key));
      const report = this.epochReports.get(key);
      if (!report?.previousEpoch) continue;
      closed.add(`${report.device}\u0000${report.previousEpoch}`);
      if (report.previousStreams === null) {
        if (this.unknownLossReported.has(key)) continue;
        this.unknownLossReported.add(key);
        this.counters.epochLossUnknown += 1;
        this.alerts.fire({
          kind: 'gap-permanent',
          device: report.device,
          message: `${report.device} replaced its store (new epoch ${report.epoch}) and could not read the old one: an unknown number of records is lost; read the device's StreamBuffer log.`,
          details: { epoch: report.epoch, previousEpoch: report.previousEpoch, reason: EPOCH_REPLACED, records: null, source: 'epoch-report' },
        });
        continue;
      }
      for (const previous of report.previousStreams) {
        const stream = ledger.stream(report.device, previous.stream, report.previousEpoch);
        const missing = stream.uncovered(previous.appended);
        if (missing.length === 0) continue;
        const written = await this.writeGaps(report, previous.stream, missing);
        for (const [from, to] of written) stream.markGone(from, to, EPOCH_REPLACED);
        if (written.length === 0) continue;
        this.counters.epochLoss += countSeqs(written);
        firePermanentGap(this.alerts, { device: report.device, stream: previous.stream, epoch: report.previousEpoch, ranges: written, reason: EPOCH_REPLACED, source: 'epoch-report' }, this.permanentGapHoldMs);
        this.logger.error('epoch replaced; records of the old epoch that never arrived are lost', { device: report.device, stream: previous.stream, previousEpoch: report.previousEpoch, lost: countSeqs(written) });
      }
    }
    return closed;
  }

  private async readEpochReport(key: string): Promise<EpochReport | undefined> {
    try {
      const checked = checkEpochReport(JSON.parse((await this.archive.get(key))?.toString('utf8') ?? 'null'));
      if (checked.ok) return checked.value;
      this.logger.warn('stored epoch report breaks its contract; ignored', { key, reason: checked.reason });
    } catch (error) {
      this.logger.warn('unreadable epoch report in the archive', { key, error: errorMessage(error) });
    }
    return undefined;
  }

  /** Writes one gaps/ object per range; returns the ranges written (a failure is retried next pass). */
  private async writeGaps(report: EpochReport, stream: string, ranges: SeqRange[]): Promise<SeqRange[]> {
    const written: SeqRange[] = [];
    for (const [from, to] of ranges) {
      const body = { device: report.device, stream, epoch: report.previousEpoch, seqFrom: from, seqTo: to, reason: EPOCH_REPLACED, source: 'epoch-report', newEpoch: report.epoch, reportedAt: report.reportedAt, recordedBy: 'checker' };
      try {
        await this.archive.put(gapKey(report.device, stream, report.previousEpoch!, from, to), JSON.stringify(body));
        written.push([from, to]);
        const key = gapKey(report.device, stream, report.previousEpoch!, from, to);
        this.gapReasons.set(key, EPOCH_REPLACED);
        this.knownGapKeys?.add(key);
      } catch (error) {
        this.noteArchiveError('could not record a permanent gap; the next pass tries again', { device: report.device, stream, from, to, error: errorMessage(error) });
      }
    }
    return written;
  }

  /**
   * gaps/ objects the ingest wrote from loss reports. The first pass only learns them (they were
   * alerted on when they appeared); each one seen later fires gap-permanent.
   */
  private notePermanentGaps(): void {
    if (this.knownGapKeys === undefined) {
      this.knownGapKeys = new Set(this.gapReasons.keys());
      return;
    }
    for (const [key, reason] of this.gapReasons) {
      if (this.knownGapKeys.has(key)) continue;
      this.knownGapKeys.add(key);
      const gap = parseGapKey(key);
      if (gap) firePermanentGap(this.alerts, { device: gap.device, stream: gap.stream, epoch: gap.epoch, ranges: [[gap.seqFrom, gap.seqTo]], reason, source: 'loss-report' }, this.permanentGapHoldMs);
    }
  }

  private async sendAckIfDue(device: string, stream: string, epoch: string, ledger: ReturnType<Ledger['stream']>, nowMs: number): Promise<void> {
    const key = `${device}\u0000${stream}\u0000${epoch}`;
    const ack = ackFor(stream, epoch, ledger, new Date(nowMs));
    const content = JSON.stringify([ack.watermark, ack.gaps]);
    const last = this.lastAck.get(key);
    if (last && last.body === content && nowMs - last.atMs < this.ackRepeatMs) return;
    const outcome = await publishAck(this.client, this.app, device, ack, this.logger);
    if (outcome !== 'sent') {
      // Not remembered as sent, so the next pass tries again.
      this.counters.ackErrors += 1;
      return;
    }
    this.counters.acksSent += 1;
    this.lastAck.set(key, { body: content, atMs: nowMs });
  }

  private async sendBackfill(request: BackfillRequest): Promise<void> {
    if (await publishBackfill(this.client, this.app, request, this.maxBackfillRecords, this.logger)) this.counters.backfillRequests += 1;
  }


  private noteArchiveError(what: string, fields: Record<string, unknown>): void {
    this.counters.archiveErrors += 1;
    this.logger.error(what, fields);
    fireArchiveError(this.alerts, 'The integrity checker cannot write to the archive', what, fields.error);
  }

  private async writeStatus(): Promise<void> {
    try {
      await this.archive.put(CHECKER_STATUS_KEY, JSON.stringify({ ...this.stats(), app: this.app, updatedAt: this.now().toISOString() }, null, 2));
      this.alerts.clear(alertId('archive-errors', CLOUD_DEVICE), 'Archive writes succeed again.');
    } catch (error) {
      this.logger.warn('checker status not written', { key: CHECKER_STATUS_KEY, error: errorMessage(error) });
    }
  }
}

function atLeast(name: string, value: number, min: number): number {
  if (!Number.isFinite(value) || value < min) throw new RangeError(`${name} must be a finite number >= ${min}, got ${value}`);
  return value;
}
