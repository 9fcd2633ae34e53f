import { Backoff, resolvesWithin, sleep } from '../shared/backoff';
import { monotonicMs } from '../shared/monotonic';
import { NO_DEFERRAL, type UpdateDeferral } from '../shared/deployment-hooks';
import { checkAck, encodeEnvelopeJson, encodeStoredEnvelope, isGzip, parseJson, type Envelope } from '../shared/envelope';
import { countInto } from '../shared/heartbeat-metrics';
import { errorMessage, type Logger } from '../shared/logger';
import type { PendingRecord, StreamStore } from '../shared/store';
import { commandTopic, dataTopic } from '../shared/topics';
import { BackfillHandler } from './backfill';
import { LossReporter } from './loss-reporter';
import { BackpressureError, TransportError, type Transport } from './transport';

/**
 * Reads unsent records in sequence order, packs them into envelopes, publishes them with QoS 1,
 * marks them sent, and resends what the cloud has not acknowledged within resendAfterMs. Records
 * leave the store only when a cloud ack watermark covers them.
 */
export interface PublisherConfig {
  /**
   * Upper bound on an envelope's bytes. AWS IoT Core and the nucleus (mqtt.maxMessageSizeInBytes)
   * both cap a payload at 128 KiB; the default leaves room below that.
   */
  maxEnvelopeBytes: number;
  maxRecordsPerEnvelope: number;
  /** Pause when there is nothing to send. */
  idleIntervalMs: number;
  /**
   * A partly filled envelope waits until its oldest record is this old, so that a slow stream
   * sends one envelope of many records instead of many of one (docs/SCALING.md). 0 sends at once.
   * Full envelopes, resends and backfilled records never wait.
   */
  minEnvelopeIntervalMs?: number;
  /** A sent record not acknowledged after this long is sent again. */
  resendAfterMs: number;
  /**
   * gzip (the default): an envelope whose JSON is larger than compressAboveBytes goes out
   * compressed, and envelopes are packed up to maxUncompressedEnvelopeBytes of JSON as long as the
   * compressed payload fits maxEnvelopeBytes. none: plain JSON, packed to maxEnvelopeBytes.
   */
  compression?: 'gzip' | 'none';
  compressAboveBytes?: number;
  maxUncompressedEnvelopeBytes?: number;
  backpressureBaseMs: number;
  backpressureMaxMs: number;
  /** Largest backfill request served, in records (docs/CONTRACTS.md allows the cloud 10,000). */
  maxBackfillRecords: number;
  /** How often an epoch report is repeated while the store names a replaced epoch. */
  reportRepeatMs: number;
}

export interface PublisherMetrics {
  envelopesSent: number;
  /** Every record publish, first sends and resends alike. */
  recordsSent: number;
  /** Records queued for another send: ack timeout or a restart (backfill counts separately). */
  recordsResent: number;
  bytesSent: number;
  backpressureEvents: number;
  publishFailures: number;
  oversizedRecords: number;
  acksApplied: number;
  acksIgnored: number;
  recordsAcked: number;
  invalidAcks: Record<string, number>;
  lastPublishAt: string | null;
  lastAckAt: string | null;
  /** Failed attempts to subscribe to the ack and backfill topics; retried in the background. */
  commandSubscribeFailures: number;
  /** Recorded envelopes that could not be resent with their first range (docs/SCALING.md). */
  envelopesRepacked: number;
  /** Envelopes sent gzip-compressed (compression: gzip, JSON above compressAboveBytes). */
  envelopesCompressed: number;
}

/** Acks usually follow a publish within a second or two; each deferral asks for that much. */
const UPDATE_DEFER_STEP_MS = 2000;
/** How long publishing waits at start for the command subscriptions before it goes ahead without them. */
const SUBSCRIBE_HEAD_START_MS = 1000;
/** Bytes an envelope adds around its records (ids, checksum, range), measured with margin. */
const ENVELOPE_OVERHEAD_BYTES = 1024;
/** Bytes a record adds around its data: {"seq":..,"time":..,"mono":..,"data":} */
const RECORD_OVERHEAD_BYTES = 80;
export const DEFAULT_COMPRESS_ABOVE_BYTES = 4096;
export const DEFAULT_MAX_UNCOMPRESSED_ENVELOPE_BYTES = 2 * 1024 * 1024;

export class Publisher {
  readonly metrics: PublisherMetrics = {
    envelopesSent: 0,
    recordsSent: 0,
    recordsResent: 0,
    bytesSent: 0,
    backpressureEvents: 0,
    publishFailures: 0,
    oversizedRecords: 0,
    acksApplied: 0,
    acksIgnored: 0,
    recordsAcked: 0,
    invalidAcks: {},
    lastPublishAt: null,
    lastAckAt: null,
    commandSubscribeFailures: 0,
    envelopesRepacked: 0,
    envelopesCompressed: 0,
  };
  private readonly abort = new AbortController();
  private loop?: Promise<void>;
  private commandSubscriptions: Promise<void> = Promise.resolve();
  private backoff: Backoff;
  private ackChain: Promise<void> = Promise.resolve();
  private publishing = false;
  readonly losses: LossReporter;
  readonly backfill: BackfillHandler;

  constructor(
    private readonly store: StreamStore,
    private readonly transport: Transport,
    private readonly thingName: string,
    private config: PublisherConfig,
    private readonly logger: Logger,
  ) {
    this.backoff = Publisher.backoffFor(config);
    this.losses = new LossReporter(store, transport, thingName, logger, config.reportRepeatMs);
    this.backfill = new BackfillHandler(store, this.losses, thingName, config.maxBackfillRecords, logger);
  }

  private static backoffFor(config: PublisherConfig): Backoff {
    if (config.backpressureMaxMs < config.backpressureBaseMs) {
      throw new RangeError(`invalid configuration: backpressureMaxMs (${config.backpressureMaxMs}) must be >= backpressureBaseMs (${config.backpressureBaseMs})`);
    }
    return new Backoff(config.backpressureBaseMs, config.backpressureMaxMs);
  }

  /** New limits and pacing apply from the next envelope. */
  reconfigure(config: PublisherConfig): void {
    this.backoff = Publisher.backoffFor(config);
    this.config = config;
    this.backfill.maxRecords = config.maxBackfillRecords;
    this.losses.repeatMs = config.reportRepeatMs;
  }

  /**
   * An update now would cut off what is in flight: a publish under way, or records sent and not
   * yet acknowledged. They would be resent after the restart (harmless, deduped), but waiting a
   * little lets the acks land first.
   */
  async inFlight(): Promise<number> {
    const stats = await this.store.stats();
    return (this.publishing ? 1 : 0) + stats.streams.reduce((sum, s) => sum + s.backlogRecords - s.unsentRecords, 0);
  }

  /** While anything is in flight, an update waits 2 s at a time (DeploymentHooks bounds the total). */
  async updateDeferral(): Promise<UpdateDeferral> {
    const inFlight = await this.inFlight();
    return inFlight > 0 ? { ms: UPDATE_DEFER_STEP_MS, reason: `${inFlight} records in flight, waiting for the cloud's acks` } : NO_DEFERRAL;
  }

  /**
   * Publishes at once and subscribes to the cloud's commands alongside. A subscription can take
   * long to fail (the broker does not answer while the link is down, and the nucleus waits 10 s
   * for each SUBACK), and publishing must not wait for it: data goes out, records stay until
   * acked, an ack missed meanwhile is made good by a later one (the cloud answers every envelope,
   * resends included, with the stream's watermark), and a failed subscription is retried with
   * backoff. Waiting for both SUBACKs first held a publisher restarted during an outage idle for
   * 20 s, so its backlog never reached the spooler.
   */
  async start(): Promise<void> {
    const unacked = await this.store.markAllUnsent();
    this.metrics.recordsResent += unacked;
    if (unacked > 0) this.logger.info('resending records sent before this start and not yet acknowledged', { records: unacked });
    this.commandSubscriptions = Promise.all([
      this.keepSubscribing(commandTopic(this.thingName, 'ack'), (payload) => this.onAck(payload)),
      this.keepSubscribing(commandTopic(this.thingName, 'backfill'), (payload) => this.onBackfill(payload)),
    ]).then(() => undefined);
    // A short head start, so that online the subscriptions are in place before the first
    // envelope's ack can come back; offline it costs at most this.
    await resolvesWithin(this.commandSubscriptions, SUBSCRIBE_HEAD_START_MS);
    this.loop = this.run();
  }

  /**
   * Stops after the envelope in flight; nothing is marked sent that was not published. A
   * subscription still waiting for its SUBACK is not waited for: closing the transport ends it.
   */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
    await this.ackChain;
  }

  private async keepSubscribing(filter: string, onPayload: (payload: Buffer) => void): Promise<void> {
    const backoff = new Backoff(1000, 30_000);
    let failures = 0;
    while (!this.abort.signal.aborted) {
      try {
        await this.transport.subscribe(filter, (_topic, payload) => onPayload(payload));
        if (failures > 0) this.logger.info('subscribed to cloud commands', { filter, failedAttempts: failures });
        return;
      } catch (error) {
        if (this.abort.signal.aborted) return;
        failures += 1;
        this.metrics.commandSubscribeFailures += 1;
        this.logger.warn('could not subscribe to cloud commands; publishing goes on and the subscription is retried', { filter, error: errorMessage(error) });
      }
      await sleep(backoff.nextDelayMs(), this.abort.signal);
    }
  }

  /**
   * One pass over every stream; returns the number of envelopes published. Back-pressure and
   * connection errors end the pass (they concern every stream); a stream the policy does not
   * allow is logged and skipped so that it cannot hold up the others.
   */
  async publishOnce(now = Date.now()): Promise<number> {
    let published = 0;
    for (const stream of await this.store.streams()) {
      if (this.abort.signal.aborted) break;
      try {
        published += await this.publishStream(stream, now);
      } catch (error) {
        if (!(error instanceof TransportError && error.kind === 'unauthorized')) throw error;
        this.metrics.publishFailures += 1;
        this.logger.error('publish not authorized for this stream: check the recipe accessControl', { stream, error: error.message });
      }
    }
    return published;
  }

  private async publishStream(stream: string, now: number): Promise<number> {
    let published = 0;
    const limit = this.config.maxRecordsPerEnvelope * 4;
    const pending = await this.store.readPending(stream, limit, now - this.config.resendAfterMs);
    const batches = this.plan(stream, pending, pending.length >= limit);
    for (const [b, batch] of batches.entries()) {
      if (this.abort.signal.aborted) return published;
      if (b === batches.length - 1 && !batch.resend && this.shouldWaitForMore(batch.records)) return published;
      if (!(await this.publishChunk(stream, batch.records))) break;
      published += 1;
    }
    return published;
  }

  /**
   * Envelopes for one read of pending records, in seq order. A record sent before goes out again
   * in exactly the envelope it was first sent in (its key at the cloud must not change); fresh
   * records are split at seq jumps and packed. A recorded envelope cut off by the read limit waits
   * for the next read. One that lost records (evicted by retention, acked in part by an older
   * cloud) or that no longer fits maxEnvelopeBytes is repacked, counted and logged.
   */
  private plan(stream: string, pending: PendingRecord[], readWasFull: boolean): Array<{ records: PendingRecord[]; resend: boolean }> {
    const batches: Array<{ records: PendingRecord[]; resend: boolean }> = [];
    let fresh: PendingRecord[] = [];
    const flushFresh = (): void => {
      for (const run of contiguousRuns(fresh)) for (const chunk of this.pack(run)) batches.push({ records: chunk, resend: false });
      fresh = [];
    };
    for (let i = 0; i < pending.length; ) {
      const envelope = pending[i].envelope;
      if (envelope === null) {
        fresh.push(pending[i]);
        i += 1;
        continue;
      }
      flushFresh();
      let j = i;
      while (j < pending.length && pending[j].envelope?.from === envelope.from && pending[j].envelope?.to === envelope.to) j += 1;
      const group = pending.slice(i, j);
      i = j;
      const complete = group.length === envelope.to - envelope.from + 1 && group[0].seq === envelope.from;
      if (!complete && j === pending.length && readWasFull && batches.length > 0) break;
      if (complete && estimatedBytes(group) <= this.packingBudget()) {
        batches.push({ records: group, resend: true });
        continue;
      }
      this.metrics.envelopesRepacked += 1;
      this.logger.warn('a recorded envelope cannot be resent as it was; repacked, so the cloud may hold some of these records under two keys', {
        stream,
        envelope,
        present: group.length,
        reason: complete ? 'larger than the envelope limits now' : 'records of it are gone (retention or an ack)',
      });
      for (const run of contiguousRuns(group)) for (const chunk of this.pack(run)) batches.push({ records: chunk, resend: true });
    }
    flushFresh();
    return batches;
  }

  /** The newest, partly filled envelope of fresh records waits for company (minEnvelopeIntervalMs). */
  private shouldWaitForMore(chunk: PendingRecord[]): boolean {
    const minInterval = this.config.minEnvelopeIntervalMs ?? 0;
    if (minInterval <= 0 || chunk.length >= this.config.maxRecordsPerEnvelope) return false;
    if (chunk.some((record) => record.sentAt !== null)) return false;
    // Monotonic time: a wall-clock step cannot hold records back. A record from before a reboot
    // (its mono is from another boot, so its age comes out negative) never waits.
    const age = monotonicMs() - chunk[0].mono;
    return age >= 0 && age < minInterval;
  }

  /** Serves one backfill request, in turn with acks so store updates never interleave. */
  onBackfill(payload: Buffer): void {
    this.ackChain = this.ackChain.then(() =>
      this.backfill.handle(payload).catch((error) => {
        // The records already requeued still go out; the cloud asks again for the rest.
        this.logger.warn('backfill request only partly served', { error: errorMessage(error) });
      }),
    );
  }

  /** Applies one ack command; invalid ones are counted by reason and logged, never thrown. */
  onAck(payload: Buffer): void {
    this.ackChain = this.ackChain.then(async () => {
      const parsed = parseJson(payload);
      const checked = parsed.ok ? checkAck(parsed.value) : parsed;
      if (!checked.ok) {
        const kind = checked.reason.split(':')[0];
        countInto(this.metrics.invalidAcks, kind);
        this.logger.warn('invalid ack ignored', { reason: checked.reason, bytes: payload.length });
        return;
      }
      const ack = checked.value;
      try {
        const result = await this.store.applyAck(ack.stream, ack.epoch, ack.watermark);
        if (!result.applied) {
          this.metrics.acksIgnored += 1;
          this.logger.info('ack for another epoch ignored', { stream: ack.stream, ackEpoch: ack.epoch, storeEpoch: this.store.epoch });
          return;
        }
        this.metrics.acksApplied += 1;
        this.metrics.recordsAcked += result.deleted;
        this.logger.debug('ack applied', { stream: ack.stream, epoch: ack.epoch, watermark: ack.watermark, deleted: result.deleted });
        this.metrics.lastAckAt = new Date().toISOString();
      } catch (error) {
        this.logger.error('could not apply ack; the next ack will cover it', { stream: ack.stream, error: errorMessage(error) });
      }
    });
  }

  private async run(): Promise<void> {
    while (!this.abort.signal.aborted) {
      try {
        await this.reportLosses();
        const published = await this.publishOnce();
        if (published === 0) await sleep(this.config.idleIntervalMs, this.abort.signal);
      } catch (error) {
        const delay = this.backoff.nextDelayMs();
        if (error instanceof BackpressureError) {
          this.metrics.backpressureEvents += 1;
          this.logger.warn('back-pressure from the transport; pausing', { delayMs: delay, reason: error.message });
        } else {
          this.metrics.publishFailures += 1;
          this.logger.warn('publish failed; retrying', { delayMs: delay, error: errorMessage(error) });
        }
        await sleep(delay, this.abort.signal);
      }
    }
  }

  /**
   * Loss and epoch reports before data. A report the policy does not allow is logged and skipped,
   * so a recipe without the loss/epoch topics cannot stop the data; back-pressure still pauses all.
   */
  private async reportLosses(): Promise<void> {
    try {
      await this.losses.reportPending();
    } catch (error) {
      if (!(error instanceof TransportError && error.kind === 'unauthorized')) throw error;
      this.metrics.publishFailures += 1;
      this.logger.error('loss or epoch report not authorized: add dt/<app>/<thing>/loss and /epoch to the recipe accessControl', { error: error.message });
    }
  }

  /**
   * Publishes one planned envelope. Compressed, its size is only known once built: one that does
   * not fit maxEnvelopeBytes is halved until each part fits (each part then is an envelope of its own).
   */
  private async publishChunk(stream: string, chunk: PendingRecord[]): Promise<boolean> {
    this.publishing = true;
    try {
      const parts = [chunk];
      while (parts.length > 0) {
        const part = parts.shift()!;
        const built = this.build(stream, part);
        if (built.payload.length > this.config.maxEnvelopeBytes && part.length > 1) {
          const half = Math.ceil(part.length / 2);
          parts.unshift(part.slice(0, half), part.slice(half));
          if (part[0].envelope !== null) this.metrics.envelopesRepacked += 1;
          continue;
        }
        if (!(await this.publishBuilt(stream, part, built))) return false;
      }
      return true;
    } finally {
      this.publishing = false;
    }
  }

  private build(stream: string, chunk: PendingRecord[]): { envelope: Omit<Envelope, 'records'>; payload: Buffer } {
    const { header, json } = encodeStoredEnvelope(this.thingName, stream, this.store.epoch, chunk);
    const compressAbove = this.config.compression === 'none' ? null : (this.config.compressAboveBytes ?? DEFAULT_COMPRESS_ABOVE_BYTES);
    return { envelope: header, payload: encodeEnvelopeJson(json, compressAbove) };
  }

  private async publishBuilt(stream: string, chunk: PendingRecord[], { envelope, payload }: { envelope: Omit<Envelope, 'records'>; payload: Buffer }): Promise<boolean> {
    if (payload.length > this.config.maxEnvelopeBytes) {
      // Only a single record can get here (publishChunk halves larger envelopes); it can never be sent as is.
      this.metrics.oversizedRecords += 1;
      this.logger.error('record larger than maxEnvelopeBytes; stream blocked at this record', {
        stream,
        seq: chunk[0].seq,
        bytes: payload.length,
        maxEnvelopeBytes: this.config.maxEnvelopeBytes,
      });
      return false;
    }
    const sendStartedAt = new Date().toISOString();
    await this.transport.publish(dataTopic(this.thingName, stream), payload, { qos: 1 });
    await this.store.markSent(stream, envelope.seqFrom, envelope.seqTo, Date.now());
    this.backoff.reset();
    this.metrics.envelopesSent += 1;
    this.metrics.recordsSent += chunk.length;
    this.metrics.recordsResent += chunk.filter((r) => r.sentAt !== null).length;
    this.metrics.bytesSent += payload.length;
    if (isGzip(payload)) this.metrics.envelopesCompressed += 1;
    this.metrics.lastPublishAt = new Date().toISOString();
    // sendStartedAt, not the line's own time: the cloud can archive the envelope before this line is written.
    this.logger.debug('envelope published', { correlationId: envelope.envelopeId, stream, epoch: envelope.epoch, seqFrom: envelope.seqFrom, seqTo: envelope.seqTo, records: chunk.length, bytes: payload.length, sendStartedAt });
    return true;
  }

  /** How much JSON an envelope may hold: the payload limit, or with compression the uncompressed bound. */
  private packingBudget(): number {
    return this.config.compression === 'none' ? this.config.maxEnvelopeBytes : (this.config.maxUncompressedEnvelopeBytes ?? DEFAULT_MAX_UNCOMPRESSED_ENVELOPE_BYTES);
  }

  /** Splits a contiguous run into envelopes bounded by record count and estimated bytes. */
  private pack(run: PendingRecord[]): PendingRecord[][] {
    const budget = this.packingBudget() - ENVELOPE_OVERHEAD_BYTES;
    const chunks: PendingRecord[][] = [];
    let current: PendingRecord[] = [];
    let bytes = 0;
    for (const record of run) {
      const size = recordBytes(record);
      if (current.length > 0 && (current.length >= this.config.maxRecordsPerEnvelope || bytes + size > budget)) {
        chunks.push(current);
        current = [];
        bytes = 0;
      }
      current.push(record);
      bytes += size;
    }
    if (current.length > 0) chunks.push(current);
    return chunks;
  }
}

function recordBytes(record: PendingRecord): number {
  return record.bytes + RECORD_OVERHEAD_BYTES;
}

function estimatedBytes(records: PendingRecord[]): number {
  return ENVELOPE_OVERHEAD_BYTES + records.reduce((sum, record) => sum + recordBytes(record), 0);
}

/** Pending records of one stream split where the sequence jumps (records between were acked or are in flight). */
export function contiguousRuns(records: PendingRecord[]): PendingRecord[][] {
  const runs: PendingRecord[][] = [];
  for (const record of records) {
    const last = runs[runs.length - 1];
    if (last && last[last.length - 1].seq + 1 === record.seq) last.push(record);
    else runs.push([record]);
  }
  return runs;
}
