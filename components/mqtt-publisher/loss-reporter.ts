import { EPOCH_SCHEMA, LOSS_SCHEMA, type EpochReport, type LossReason, type LossReport } from '../shared/envelope';
import type { Logger } from '../shared/logger';
import type { StreamStore } from '../shared/store';
import { epochTopic, lossTopic } from '../shared/topics';
import type { Transport } from './transport';

/** The loss schema allows at most this many ranges in one report. */
const MAX_RANGES_PER_REPORT = 1000;

export interface LossMetrics {
  lossReportsSent: number;
  recordsReportedLost: Record<string, number>;
  epochReported: boolean;
}

/**
 * Tells the cloud about every record that will never arrive, so a drop is never mistaken for a
 * loss: retention drops (from the store's drop log) and a replaced epoch (from the store's record
 * of the file it quarantined). A report is marked sent in the store only after the transport
 * accepted it, so a crash in between sends it again; the cloud records a gap idempotently.
 *
 * Accepted is not delivered (the nucleus spooler, the broker or the cloud can still lose it). A
 * lost drop report heals itself: the cloud sees the gap and asks, and the answer comes from the
 * drop log. A lost epoch report would leave the old epoch's loss unstated, so it is repeated at
 * every start and every repeatMs; the cloud handles a repeat as a no-op.
 */
export class LossReporter {
  readonly metrics: LossMetrics = { lossReportsSent: 0, recordsReportedLost: {}, epochReported: false };

  private epochReportSentAt = -Infinity;

  constructor(
    private readonly store: StreamStore,
    private readonly transport: Transport,
    private readonly thingName: string,
    private readonly logger: Logger,
    public repeatMs: number,
  ) {}

  /** Sends whatever is unreported; throws on back-pressure like any publish. */
  async reportPending(): Promise<void> {
    await this.reportEpoch();
    await this.reportDrops();
  }

  /** One loss report for ranges the cloud asked for and the device no longer has. */
  async report(stream: string, epoch: string, ranges: Array<[number, number]>, reason: LossReason, requestId?: string): Promise<void> {
    for (let i = 0; i < ranges.length; i += MAX_RANGES_PER_REPORT) {
      const chunk = ranges.slice(i, i + MAX_RANGES_PER_REPORT);
      const report: LossReport = { schema: LOSS_SCHEMA, device: this.thingName, stream, epoch, ranges: chunk, reason, reportedAt: new Date().toISOString() };
      if (requestId) report.requestId = requestId;
      await this.transport.publish(lossTopic(this.thingName), Buffer.from(JSON.stringify(report)), { qos: 1 });
      this.metrics.lossReportsSent += 1;
      const count = chunk.reduce((sum, [from, to]) => sum + to - from + 1, 0);
      this.metrics.recordsReportedLost[reason] = (this.metrics.recordsReportedLost[reason] ?? 0) + count;
    }
  }

  private async reportEpoch(): Promise<void> {
    const previous = await this.store.previousEpochInfo();
    if (!previous) return;
    if (Date.now() - this.epochReportSentAt < this.repeatMs) return;
    const report: EpochReport = {
      schema: EPOCH_SCHEMA,
      device: this.thingName,
      epoch: this.store.epoch,
      previousEpoch: previous.epoch,
      previousStreams: previous.streams,
      reportedAt: new Date().toISOString(),
    };
    await this.transport.publish(epochTopic(this.thingName), Buffer.from(JSON.stringify(report)), { qos: 1 });
    const first = previous.reportedAt === null;
    if (first) await this.store.markPreviousEpochReported(Date.now());
    this.epochReportSentAt = Date.now();
    this.metrics.epochReported = true;
    this.logger.log(first ? 'warn' : 'info', first ? 'reported the replaced epoch to the cloud' : 'repeated the epoch report', {
      epoch: report.epoch,
      previousEpoch: report.previousEpoch,
      previousStreams: report.previousStreams,
    });
  }

  private async reportDrops(): Promise<void> {
    for (;;) {
      const drops = await this.store.unreportedDrops(500);
      if (drops.length === 0) return;
      const groups = new Map<string, { stream: string; epoch: string; reason: LossReason; ranges: Array<[number, number]>; ids: number[] }>();
      for (const drop of drops) {
        const key = `${drop.stream}\u0000${drop.epoch}\u0000${drop.reason}`;
        const group = groups.get(key) ?? { stream: drop.stream, epoch: drop.epoch, reason: drop.reason as LossReason, ranges: [], ids: [] };
        group.ranges.push([drop.seqFrom, drop.seqTo]);
        group.ids.push(drop.id);
        groups.set(key, group);
      }
      for (const group of groups.values()) {
        await this.report(group.stream, group.epoch, mergeRanges(group.ranges), group.reason);
        await this.store.markDropsReported(group.ids, Date.now());
      }
    }
  }
}

/** Sorted, with overlapping or adjacent ranges merged (the loss schema wants disjoint ranges). */
export function mergeRanges(ranges: Array<[number, number]>): Array<[number, number]> {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const out: Array<[number, number]> = [];
  for (const [from, to] of sorted) {
    const last = out[out.length - 1];
    if (last && from <= last[1] + 1) last[1] = Math.max(last[1], to);
    else out.push([from, to]);
  }
  return out;
}
