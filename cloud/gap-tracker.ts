import { randomUUID } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import { ACK_SCHEMA, BACKFILL_SCHEMA, checkAck, checkBackfill, MAX_BACKFILL_RANGES, type AckCommand, type BackfillRequest } from '../components/shared/envelope';
import { errorMessage, type Logger } from '../components/shared/logger';
import { commandTopic } from '../components/shared/topics';
import { alertId, type AlertManager } from './alerts';
import { MAX_GAPS, type SeqRange, type StreamId, type StreamLedger } from './ledger';

/**
 * The accounting both the inline ingest and the integrity checker do with a ledger: which gaps
 * have stayed open past their grace time, which backfill requests to send for them and when to
 * ask again, and the gap alerts. It only decides; the caller publishes.
 */
export interface GapTrackerOptions {
  alerts: AlertManager;
  gapGraceMs: number;
  backfillRetryMs: number;
  /** Ceiling on the doubling wait before the same gaps are asked for again. */
  maxBackfillRetryMs: number;
  maxBackfillRecords: number;
}

interface Tracking {
  firstSeen: Map<number, number>;
  requested: Set<number>;
  lastRequestAt: number;
  attempts: number;
}

interface Overdue {
  device: string;
  stream: string;
  epoch: string;
  ranges: SeqRange[];
  openSinceMs: number;
}

export class GapTracker {
  private readonly tracking = new Map<string, Tracking>();

  constructor(private readonly options: GapTrackerOptions) {}

  /**
   * Gaps never asked for are requested as soon as they pass the grace time; asking again for the
   * same gaps waits, doubling. Streams of closed epochs (the device replaced its store) are
   * skipped: nothing of them can come back.
   */
  check(entries: Array<StreamId & { ledger: StreamLedger }>, isClosed: (device: string, epoch: string) => boolean, nowMs: number): BackfillRequest[] {
    const requests: BackfillRequest[] = [];
    const openStreams = new Set<string>();
    const overdue = new Map<string, Overdue>();
    for (const entry of entries) {
      const key = `${entry.device}\u0000${entry.stream}\u0000${entry.epoch}`;
      const gaps = isClosed(entry.device, entry.epoch) ? [] : entry.ledger.gaps(MAX_GAPS);
      if (gaps.length === 0) {
        this.tracking.delete(key);
        continue;
      }
      const streamAlert = alertId('gap-open', entry.device, entry.stream);
      openStreams.add(streamAlert);
      let tracking = this.tracking.get(key);
      if (!tracking) {
        tracking = { firstSeen: new Map(), requested: new Set(), lastRequestAt: 0, attempts: 0 };
        this.tracking.set(key, tracking);
      }
      const open = new Set(gaps.map(([from]) => from));
      for (const from of [...tracking.firstSeen.keys()]) if (!open.has(from)) tracking.firstSeen.delete(from);
      for (const from of open) if (!tracking.firstSeen.has(from)) tracking.firstSeen.set(from, nowMs);
      for (const from of [...tracking.requested]) if (!open.has(from)) tracking.requested.delete(from);
      const seen = tracking.firstSeen;
      const due = gaps.filter(([from]) => nowMs - seen.get(from)! >= this.options.gapGraceMs);
      if (due.length > 0 && !overdue.has(streamAlert)) {
        overdue.set(streamAlert, { device: entry.device, stream: entry.stream, epoch: entry.epoch, ranges: due, openSinceMs: Math.min(...due.map(([from]) => seen.get(from)!)) });
      }
      const fresh = due.some(([from]) => !tracking!.requested.has(from));
      const wait = Math.min(this.options.maxBackfillRetryMs, this.options.backfillRetryMs * 2 ** Math.max(0, tracking.attempts - 1));
      if (due.length === 0 || (!fresh && nowMs - tracking.lastRequestAt < wait)) continue;
      const ranges = boundRanges(due, MAX_BACKFILL_RANGES, this.options.maxBackfillRecords);
      tracking.lastRequestAt = nowMs;
      tracking.attempts = fresh ? 1 : tracking.attempts + 1;
      for (const [from] of ranges) tracking.requested.add(from);
      requests.push({ schema: BACKFILL_SCHEMA, requestId: randomUUID(), device: entry.device, stream: entry.stream, epoch: entry.epoch, ranges, issuedAt: new Date(nowMs).toISOString() });
    }
    this.updateGapAlerts(overdue, openStreams, nowMs);
    return requests;
  }

  /**
   * gap-open fires when a stream has a gap open past the grace time (when backfill starts being
   * asked for) and clears only when the stream has no open gap at all, so a fresh gap inside its
   * grace time does not make the alert flap.
   */
  private updateGapAlerts(overdue: Map<string, Overdue>, openStreams: Set<string>, nowMs: number): void {
    const { alerts } = this.options;
    for (const gap of overdue.values()) {
      const records = countSeqs(gap.ranges);
      alerts.fire({
        kind: 'gap-open',
        device: gap.device,
        stream: gap.stream,
        message: `${gap.device} stream ${gap.stream} has ${records} record(s) missing for ${Math.round((nowMs - gap.openSinceMs) / 1000)} s (first seqs ${gap.ranges[0][0]}-${gap.ranges[0][1]}); backfill is requested: check that the device answers it (MqttPublisher log) and its link.`,
        details: { epoch: gap.epoch, ranges: gap.ranges.slice(0, 10), records, openSince: new Date(gap.openSinceMs).toISOString(), gapGraceMs: this.options.gapGraceMs },
      });
    }
    for (const active of alerts.activeOfKind('gap-open')) {
      if (!openStreams.has(active.alertId)) {
        alerts.clear(active.alertId, `Every gap of ${active.device} stream ${active.stream ?? '?'} is closed (backfilled or declared permanent).`);
      }
    }
  }
}

/**
 * Publishes one backfill request after checking it against its contract. False when it was
 * refused or not sent; the caller's next gap check asks again.
 */
export async function publishBackfill(client: MqttClient, app: string, request: BackfillRequest, maxRecords: number, logger: Logger): Promise<boolean> {
  const checked = checkBackfill(request, maxRecords);
  if (!checked.ok) {
    logger.error('refusing to send a backfill request that breaks the contract', { device: request.device, reason: checked.reason });
    return false;
  }
  try {
    await client.publishAsync(commandTopic(request.device, 'backfill', app), JSON.stringify(request), { qos: 1 });
    logger.info('backfill requested', { device: request.device, stream: request.stream, epoch: request.epoch, ranges: request.ranges, requestId: request.requestId });
    return true;
  } catch (error) {
    logger.warn('backfill request not sent; the next gap check asks again', { device: request.device, error: errorMessage(error) });
    return false;
  }
}

/**
 * Publishes one ack after checking it against its contract: 'sent', 'refused' (a contract breach:
 * a bug, logged as an error) or 'failed' (the broker did not take it; the caller sends it again).
 */
export async function publishAck(client: MqttClient, app: string, device: string, ack: AckCommand, logger: Logger): Promise<'sent' | 'refused' | 'failed'> {
  const checked = checkAck(ack);
  if (!checked.ok) {
    logger.error('refusing to send an ack that breaks the ack contract', { device, stream: ack.stream, epoch: ack.epoch, reason: checked.reason });
    return 'refused';
  }
  try {
    await client.publishAsync(commandTopic(device, 'ack', app), JSON.stringify(ack), { qos: 1 });
    return 'sent';
  } catch (error) {
    logger.warn('ack publish failed; sent again later (the device deletes late, never wrongly)', { device, stream: ack.stream, epoch: ack.epoch, error: errorMessage(error) });
    return 'failed';
  }
}

/** The ack for one stream as its ledger stands: the watermark and the first open gaps. */
export function ackFor(stream: string, epoch: string, ledger: StreamLedger, now: Date): AckCommand {
  return { schema: ACK_SCHEMA, stream, epoch, watermark: ledger.watermark(), gaps: ledger.gaps(MAX_GAPS), issuedAt: now.toISOString() };
}

/**
 * Permanent gaps are an event: nothing can bring the records back. The alert stays firing for
 * holdMs after the last gap recorded on the stream (expirePermanentGapAlerts), so it is seen, then clears.
 */
export function firePermanentGap(
  alerts: AlertManager,
  gap: { device: string; stream: string; epoch: string; ranges: SeqRange[]; reason: string; source: 'loss-report' | 'epoch-report' },
  holdMs: number,
): void {
  const { device, stream, epoch, ranges, reason, source } = gap;
  const first = ranges[0];
  const records = countSeqs(ranges);
  alerts.fire({
    kind: 'gap-permanent',
    device,
    stream,
    message: `${device} declared ${records} record(s) of stream ${stream} permanently lost (${reason}, seqs ${first[0]}-${first[1]}${ranges.length > 1 ? ` and ${ranges.length - 1} more range(s)` : ''}): read the reason under gaps/ and the device's StreamBuffer log.`,
    details: { epoch, reason, source, records, ranges: ranges.slice(0, 10), holdMs },
  });
}

/** Clears gap-permanent alerts whose stream has had no new permanent gap for holdMs. */
export function expirePermanentGapAlerts(alerts: AlertManager, holdMs: number, nowMs: number): void {
  for (const active of alerts.activeOfKind('gap-permanent')) {
    const touchedAt = alerts.touchedAt(active.alertId) ?? nowMs;
    if (nowMs - touchedAt < holdMs) continue;
    alerts.clear(
      active.alertId,
      `No new permanent gap on ${active.device}${active.stream ? ` stream ${active.stream}` : ''} for ${Math.round(holdMs / 1000)} s; the loss stays recorded under gaps/ and in _alerts/history/.`,
    );
  }
}

export function countSeqs(ranges: SeqRange[]): number {
  return ranges.reduce((sum, [from, to]) => sum + to - from + 1, 0);
}

/** At most maxRanges ranges and maxRecords seqs, lowest first; the last range may be cut short. */
export function boundRanges(ranges: SeqRange[], maxRanges: number, maxRecords: number): SeqRange[] {
  const out: SeqRange[] = [];
  let budget = maxRecords;
  for (const [from, to] of ranges) {
    if (out.length >= maxRanges || budget <= 0) break;
    const end = Math.min(to, from + budget - 1);
    out.push([from, end]);
    budget -= end - from + 1;
  }
  return out;
}
