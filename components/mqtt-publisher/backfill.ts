import { checkBackfill, parseJson, type LossReason } from '../shared/envelope';
import type { Logger } from '../shared/logger';
import type { StreamStore } from '../shared/store';
import type { LossReporter } from './loss-reporter';
import { countInto } from '../shared/heartbeat-metrics';

export interface BackfillMetrics {
  backfillRequests: number;
  backfillRejected: Record<string, number>;
  recordsRequeuedByBackfill: number;
}

/**
 * Serves the cloud's backfill requests (docs/CONTRACTS.md, "Backfill"). A request is checked
 * before the store is touched: schema, disjoint ranges, at most maxRecords records, this device,
 * this epoch. Retained records are marked unsent and go out in ordinary envelopes; for the rest
 * the cloud gets a loss report saying why they are gone.
 */
export class BackfillHandler {
  readonly metrics: BackfillMetrics = { backfillRequests: 0, backfillRejected: {}, recordsRequeuedByBackfill: 0 };

  constructor(
    private readonly store: StreamStore,
    private readonly losses: LossReporter,
    private readonly thingName: string,
    public maxRecords: number,
    private readonly logger: Logger,
  ) {}

  async handle(payload: Buffer): Promise<void> {
    const parsed = parseJson(payload);
    const checked = parsed.ok ? checkBackfill(parsed.value, this.maxRecords) : parsed;
    if (!checked.ok) return this.reject(checked.reason, payload);
    const request = checked.value;
    if (request.device !== this.thingName) return this.reject(`mis-addressed: request is for device "${request.device}", this is "${this.thingName}"`, payload);
    if (request.epoch !== this.store.epoch) {
      const replaced = request.epoch === this.store.previousEpoch;
      return this.reject(
        replaced ? `epoch: ${request.epoch} was replaced by ${this.store.epoch}; its loss is in the epoch report` : `epoch: ${request.epoch} is not this store's epoch ${this.store.epoch}`,
        payload,
      );
    }
    this.metrics.backfillRequests += 1;
    const gone = new Map<LossReason, Array<[number, number]>>();
    let requeued = 0;
    for (const [from, to] of request.ranges) {
      const result = await this.store.requeueRange(request.stream, request.epoch, from, to);
      requeued += result.requeued;
      for (const missing of result.missing) gone.set(missing.reason, [...(gone.get(missing.reason) ?? []), [missing.from, missing.to]]);
    }
    this.metrics.recordsRequeuedByBackfill += requeued;
    this.logger.info('backfill request served', { requestId: request.requestId, stream: request.stream, ranges: request.ranges, requeued, gone: Object.fromEntries(gone) });
    for (const [reason, ranges] of gone) await this.losses.report(request.stream, request.epoch, ranges, reason, request.requestId);
  }

  private reject(reason: string, payload: Buffer): void {
    const kind = reason.split(':')[0];
    countInto(this.metrics.backfillRejected, kind);
    this.logger.warn('backfill request rejected', { reason, bytes: payload.length });
  }
}
