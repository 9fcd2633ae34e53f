import { randomUUID } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import { Backoff, resolvesWithin, sleep } from '../components/shared/backoff';
import {
  EPOCH_REPLACED,
  MAX_BACKFILL_RECORDS,
  checkEnvelope,
  checkEpochReport,
  checkLoss,
  parseEnvelopePayload,
  parseJson,
  type BackfillRequest,
  type Envelope,
  type WireRecord,
} from '../components/shared/envelope';
import { createLogger, errorMessage, type Logger } from '../components/shared/logger';
import { APP, EPOCH_STREAM, HEALTH_STREAM, LOSS_STREAM, STATUS_STREAM, parseDataTopic } from '../components/shared/topics';
import { DeviceStatusBook } from './device-status';
import type { ArchiveBackend } from './archive';
import { createIngestClient } from './connection';
import { endMqttClient } from '../components/shared/mqtt-end';
import { EPOCHS_PREFIX, epochKey, gapKey, HEALTH_PREFIX, healthKey, MAX_KEY_SEQ, quarantineKey, recordKey, rejectedKey, STATUS_KEY } from './keys';
import { checkRecord, RECORD_KINDS, STREAM_QUARANTINE, type DomainLimits } from '../components/shared/records';
import healthSchema from '../components/shared/schemas/health.v1.schema.json';
import { compileValidator } from '../components/shared/validation';
import { Ledger, MAX_GAPS, type SeqRange } from './ledger';
import { alertId, AlertManager, CLOUD_DEVICE, fireArchiveError, type AlertSink, type AlertStats } from './alerts';
import { ArchiveFileSink, LogSink, readActiveAlerts } from './alert-sinks';
import { FLEET_STATUS_FILTER, fleetStatusKey, mergeComponentStates, parseFleetStatusTopic, validateFleetStatus, type KnownComponentState, type StoredFleetStatus } from './fleet-status';
import { HealthMonitor } from './health-monitor';
import { ackFor, publishAck, publishBackfill, expirePermanentGapAlerts, firePermanentGap, GapTracker } from './gap-tracker';

/** AWS IoT Core rejects payloads above 128 KB (AWS IoT Core quotas, "Message payload size"). */
export const MAX_PAYLOAD_BYTES = 128 * 1024;
export const DEFAULT_ACK_WINDOW_MS = 200;
export const DEFAULT_STATUS_INTERVAL_MS = 1000;
export { HEALTH_STREAM };
/** A gap must stay open this long before the cloud asks for it: envelopes can arrive out of order. */
export const DEFAULT_GAP_GRACE_MS = 10_000;
export const DEFAULT_GAP_CHECK_INTERVAL_MS = 1_000;
/** First wait before asking again for the same gap; doubles up to MAX_BACKFILL_RETRY_MS. */
export const DEFAULT_BACKFILL_RETRY_MS = 30_000;
export const MAX_BACKFILL_RETRY_MS = 5 * 60_000;
/**
 * The cloud cannot know each car's rated speed; it holds records to the fastest car the fleet may
 * have (10 m/s is a fast high-rise car) and leaves the exact check to the device, which knows.
 */
export const FLEET_DOMAIN_LIMITS: DomainLimits = { ratedSpeedMps: 10, maxFutureMs: 5 * 60_000 };
/** A device clock this far from the receive time is flagged: NTP keeps healthy devices within a second. */
export const DEFAULT_MAX_CLOCK_SKEW_MS = 30_000;
/** A rejected oversized message keeps only its head: the reason says why, the rest is noise. */
export const REJECTED_PAYLOAD_HEAD_BYTES = 4096;
/** A permanent gap cannot be undone; its alert stays on the active list this long so a person sees it, then clears itself. */
export const DEFAULT_PERMANENT_GAP_HOLD_MS = 60 * 60_000;
export const DEFAULT_ALERT_CHECK_INTERVAL_MS = 1_000;

/**
 * Who keeps the per-stream accounting. `inline` (one ingest): this process holds the ledger, trims
 * resent records against it, acks, asks for backfill and computes epoch losses. `checker` (any
 * number of instances on a shared subscription): the ingest only validates and archives, each
 * envelope whole under the key of its range, and the integrity checker (cloud/checker.ts) does the
 * rest from what the archive holds (docs/SCALING.md).
 */
export type IntegrityMode = 'inline' | 'checker';

export interface CloudIngestOptions {
  archive: ArchiveBackend;
  /** Default inline. */
  integrity?: IntegrityMode;
  /** Subscribe as one member of this shared-subscription group ($share/<group>/...). */
  shareGroup?: string;
  /** Where this instance's counters go; default _status/ingest.json (instances of a group need one each). */
  statusKey?: string;
  /** A client to drive. The ingest attaches its listeners at once and never ends this client. */
  client?: MqttClient;
  /** Used when no client is given: the ingest connects (clean: false) and ends the client on stop(). */
  brokerUrl?: string;
  clientId?: string;
  app?: string;
  logger?: Logger;
  /** Acks for one (device, stream, epoch) within this window become one ack; 0 acks every envelope. */
  ackWindowMs?: number;
  /** How often _status/ingest.json is rewritten; 0 writes it only on stop(). */
  statusIntervalMs?: number;
  maxPayloadBytes?: number;
  /** Attempts per archive write before the envelope is given up (and the device resends). */
  archiveAttempts?: number;
  archiveRetryBaseMs?: number;
  /** Bound on waiting for acks to be PUBACKed during stop(), for when the broker is gone. */
  stopTimeoutMs?: number;
  gapGraceMs?: number;
  gapCheckIntervalMs?: number;
  backfillRetryMs?: number;
  maxBackfillRecords?: number;
  /** Limits for the record checks (records.ts); the default holds every car of the fleet. */
  domainLimits?: DomainLimits;
  /** |receive time - envelope sentAt| above this flags the device's clock as skewed. */
  maxClockSkewMs?: number;
  /** Where alert events go; default a log sink (this logger) and the archive file sink (_alerts/). */
  alertSinks?: AlertSink[];
  /** The devices' health publish interval (HealthReporter publishIntervalMs). */
  healthIntervalMs?: number;
  /** A device with no health for this many intervals is stale. */
  staleAfterIntervals?: number;
  /** A backlog that has not decreased for longer than this fires backlog-growing. */
  backlogGrowingMs?: number;
  /** How long a gap-permanent alert stays firing after the last permanent gap of its stream was recorded. */
  permanentGapHoldMs?: number;
  /** How often stale devices and expired permanent-gap alerts are checked; 0: only by checkAlerts(). */
  alertCheckIntervalMs?: number;
  now?: () => Date;
}

export interface IngestStats {
  received: number;
  /** Envelopes that passed every check, including those whose records were all duplicates. */
  accepted: number;
  recordsArchived: number;
  duplicatesDropped: number;
  /** Rejected messages by reason category: the reason's text before its first ':'. */
  rejected: Record<string, number>;
  acksSent: number;
  objectsWritten: number;
  healthStored: number;
  archiveErrors: number;
  ackErrors: number;
  /** Messages received and not yet fully handled. */
  inFlight: number;
  lossReports: number;
  epochReports: number;
  /** Seqs of replaced epochs that never arrived, as stated by epoch reports. */
  epochLoss: number;
  /** Epoch reports whose old file was unreadable: a loss of unknown size. */
  epochLossUnknown: number;
  backfillRequests: number;
  /** Archived records that broke their data contract, per stream; each is in quarantine/ with its reason. */
  invalidRecords: Record<string, number>;
  /** Records devices quarantined themselves (stream quarantine), archived like any other. */
  deviceQuarantined: number;
  /** Envelopes whose sentAt was further than maxClockSkewMs from the receive time. */
  clockSkewFlags: number;
  /** Devices whose last envelope showed a skewed clock. */
  devicesSkewed: string[];
  /** Fleet status messages (Greengrass nucleus, component states) stored under fleet-status/. */
  fleetStatusStored: number;
  /** Device status messages (online, and the publisher's last will): see cloud/device-status.ts. */
  deviceStatus: DeviceStatusBook['counters'];
}

export type IngestStatsWithAlerts = IngestStats & AlertStats;

/** Only the fields the ingest reads; the schema checks the rest. */
const validateHealth = compileValidator<{ device: string; time: string; components: Record<string, { metrics?: unknown }> }>(healthSchema);

type Outcome = { ok: true } | { ok: false; reason: string };

/**
 * The cloud side of the delivery proof: validates envelopes, archives each record exactly once
 * per (device, stream, epoch, seq), and tells each device its watermark and gaps. See
 * cloud/README.md for the contract.
 */
export class CloudIngest {
  private readonly archive: ArchiveBackend;
  private readonly inline: boolean;
  private readonly shareGroup: string | undefined;
  private readonly statusKey: string;
  private readonly client: MqttClient;
  private readonly ownsClient: boolean;
  private readonly app: string;
  private readonly logger: Logger;
  private readonly ackWindowMs: number;
  private readonly statusIntervalMs: number;
  private readonly maxPayloadBytes: number;
  private readonly archiveAttempts: number;
  private readonly archiveRetryBaseMs: number;
  private readonly stopTimeoutMs: number;
  private readonly now: () => Date;

  private ledger: Ledger | undefined;
  private markReady!: () => void;
  /** Messages can arrive (queued QoS 1 from a persistent session) before the ledger is rebuilt. */
  private readonly ready = new Promise<void>((resolve) => (this.markReady = resolve));
  private markSubscribed!: () => void;
  private readonly subscribed = new Promise<void>((resolve) => (this.markSubscribed = resolve));
  private started = false;
  private stopping = false;
  private readonly startedAt: Date;

  /** Tail of each (thing, stream)'s processing chain: one message at a time, in arrival order. */
  private readonly chains = new Map<string, Promise<void>>();
  private readonly pendingAcks = new Map<string, { device: string; stream: string; epoch: string; timer: NodeJS.Timeout }>();
  private readonly ackPublishes = new Set<Promise<void>>();
  private statusTimer: NodeJS.Timeout | undefined;
  private statusWrite: Promise<void> | undefined;
  private statusFailing = false;

  private readonly gapGraceMs: number;
  private readonly gapCheckIntervalMs: number;
  private readonly backfillRetryMs: number;
  private readonly maxBackfillRecords: number;
  private gapTimer: NodeJS.Timeout | undefined;
  /** Per (device, stream, epoch): when each open gap was first seen, and the last backfill request. */
  private readonly gaps: GapTracker;
  /** Epochs a device has declared replaced: nothing more will come, so no backfill is asked. */
  private readonly closedEpochs = new Set<string>();

  private readonly domainLimits: DomainLimits;
  private readonly maxClockSkewMs: number;
  private readonly invalidByStream = new Map<string, number>();
  private readonly skewedDevices = new Set<string>();

  readonly alerts: AlertManager;
  private readonly healthMonitor: HealthMonitor;
  readonly deviceStatus: DeviceStatusBook;
  private readonly permanentGapHoldMs: number;
  private readonly alertCheckIntervalMs: number;
  private alertTimer: NodeJS.Timeout | undefined;
  /** Per device: every component's last known state, so a PARTIAL message can be merged. */
  private readonly componentStates = new Map<string, Record<string, KnownComponentState>>();

  private readonly counters: Omit<IngestStats, 'inFlight' | 'rejected' | 'invalidRecords' | 'devicesSkewed' | 'deviceStatus'> = {
    fleetStatusStored: 0,
    deviceQuarantined: 0,
    clockSkewFlags: 0,
    lossReports: 0,
    epochReports: 0,
    epochLoss: 0,
    epochLossUnknown: 0,
    backfillRequests: 0,
    received: 0,
    accepted: 0,
    recordsArchived: 0,
    duplicatesDropped: 0,
    acksSent: 0,
    objectsWritten: 0,
    healthStored: 0,
    archiveErrors: 0,
    ackErrors: 0,
  };
  private readonly rejectedByReason = new Map<string, number>();
  private inFlight = 0;

  private readonly onMessage = (topic: string, payload: Buffer): void => this.receive(topic, payload);
  private readonly onConnect = (): void => {
    this.subscribe().then(this.markSubscribed, (error) =>
      this.logger.error('subscribe failed; will retry on next connect', { filter: this.filter, error: errorMessage(error) }),
    );
  };

  constructor(options: CloudIngestOptions) {
    this.archive = options.archive;
    this.inline = (options.integrity ?? 'inline') === 'inline';
    if (options.shareGroup !== undefined && !/^[^/+#]+$/.test(options.shareGroup)) {
      throw new RangeError(`shareGroup must be one topic level without / + #, got "${options.shareGroup}"`);
    }
    if (options.shareGroup !== undefined && this.inline) {
      // Each instance would hold part of the ledger and ack from it: watermarks would go backwards.
      throw new RangeError('a shared subscription needs integrity: "checker" (the ledger cannot be split between instances)');
    }
    this.shareGroup = options.shareGroup;
    this.statusKey = options.statusKey ?? STATUS_KEY;
    this.app = options.app ?? APP;
    this.logger = options.logger ?? createLogger('CloudIngest', { app: this.app });
    this.ackWindowMs = nonNegative('ackWindowMs', options.ackWindowMs ?? DEFAULT_ACK_WINDOW_MS);
    this.statusIntervalMs = nonNegative('statusIntervalMs', options.statusIntervalMs ?? DEFAULT_STATUS_INTERVAL_MS);
    this.maxPayloadBytes = nonNegative('maxPayloadBytes', options.maxPayloadBytes ?? MAX_PAYLOAD_BYTES);
    this.archiveAttempts = Math.max(1, Math.floor(options.archiveAttempts ?? 3));
    this.archiveRetryBaseMs = Math.max(1, options.archiveRetryBaseMs ?? 100);
    this.stopTimeoutMs = nonNegative('stopTimeoutMs', options.stopTimeoutMs ?? 5000);
    this.now = options.now ?? (() => new Date());
    this.gapGraceMs = nonNegative('gapGraceMs', options.gapGraceMs ?? DEFAULT_GAP_GRACE_MS);
    this.gapCheckIntervalMs = nonNegative('gapCheckIntervalMs', options.gapCheckIntervalMs ?? DEFAULT_GAP_CHECK_INTERVAL_MS);
    this.backfillRetryMs = nonNegative('backfillRetryMs', options.backfillRetryMs ?? DEFAULT_BACKFILL_RETRY_MS);
    this.maxBackfillRecords = Math.min(MAX_BACKFILL_RECORDS, Math.max(1, options.maxBackfillRecords ?? MAX_BACKFILL_RECORDS));
    this.domainLimits = options.domainLimits ?? FLEET_DOMAIN_LIMITS;
    this.maxClockSkewMs = nonNegative('maxClockSkewMs', options.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS);
    this.startedAt = this.now();
    // Instances of a group would overwrite each other's alert files; their alerts go to the log, and
    // the checker owns the alert view.
    const defaultSinks = this.inline ? [new LogSink(this.logger), new ArchiveFileSink(this.archive, this.now)] : [new LogSink(this.logger)];
    this.alerts = new AlertManager({ sinks: options.alertSinks ?? defaultSinks, logger: this.logger, now: this.now });
    this.healthMonitor = new HealthMonitor({
      alerts: this.alerts,
      healthIntervalMs: options.healthIntervalMs,
      staleAfterIntervals: options.staleAfterIntervals,
      backlogGrowingMs: options.backlogGrowingMs,
    });
    this.deviceStatus = new DeviceStatusBook({
      archive: this.archive,
      logger: this.logger,
      withRetries: (call) => this.withRetries(call),
      archiveIsShared: this.shareGroup !== undefined,
    });
    this.permanentGapHoldMs = nonNegative('permanentGapHoldMs', options.permanentGapHoldMs ?? DEFAULT_PERMANENT_GAP_HOLD_MS);
    this.gaps = new GapTracker({
      alerts: this.alerts,
      gapGraceMs: this.gapGraceMs,
      backfillRetryMs: this.backfillRetryMs,
      maxBackfillRetryMs: MAX_BACKFILL_RETRY_MS,
      maxBackfillRecords: this.maxBackfillRecords,
    });
    this.alertCheckIntervalMs = nonNegative('alertCheckIntervalMs', options.alertCheckIntervalMs ?? DEFAULT_ALERT_CHECK_INTERVAL_MS);
    if (options.client) {
      this.client = options.client;
      this.ownsClient = false;
    } else if (options.brokerUrl) {
      this.client = createIngestClient(options.brokerUrl, options.clientId ?? `${this.app}-cloud-ingest`, this.logger);
      this.ownsClient = true;
    } else {
      throw new TypeError('CloudIngest needs a client or a brokerUrl');
    }
    // Attached now, in the tick the client was built in, so no message of a resumed session is
    // PUBACKed by MQTT.js before a listener has seen it.
    this.client.on('message', this.onMessage);
  }

  /** The subscription filter: every data topic of this app. */
  get filter(): string {
    return `dt/${this.app}/+/+`;
  }

  /** Every filter the ingest subscribes to: the app's data topics and the nucleus's fleet status. */
  get filters(): string[] {
    const filters = [this.filter, FLEET_STATUS_FILTER];
    return this.shareGroup === undefined ? filters : filters.map((filter) => `$share/${this.shareGroup}/${filter}`);
  }

  /** Rebuilds the ledger from the archive, then resolves once subscribed (waiting for the broker if need be). */
  async start(): Promise<void> {
    if (this.started) throw new Error('CloudIngest already started');
    this.started = true;
    if (this.inline) {
      const ignored: string[] = [];
      this.ledger = await Ledger.rebuild(this.archive, (key) => ignored.push(key));
      if (ignored.length > 0) this.logger.warn('ignored archive keys outside the record layout', { count: ignored.length, first: ignored.slice(0, 5) });
      await this.rebuildClosedEpochs();
      this.logger.info('ledger rebuilt', { streams: this.ledger.entries().length, closedEpochs: this.closedEpochs.size });
      await this.restoreAlerts();
    }
    this.markReady();
    if (this.inline && this.gapCheckIntervalMs > 0) {
      this.gapTimer = setInterval(() => this.checkGaps(), this.gapCheckIntervalMs);
      this.gapTimer.unref();
    }
    if (this.statusIntervalMs > 0) {
      this.statusTimer = setInterval(() => void this.writeStatus(), this.statusIntervalMs);
      this.statusTimer.unref();
    }
    if (this.inline && this.alertCheckIntervalMs > 0) {
      this.alertTimer = setInterval(() => this.checkAlerts(), this.alertCheckIntervalMs);
      this.alertTimer.unref();
    }
    this.client.on('connect', this.onConnect);
    if (this.client.connected) this.onConnect();
    await this.subscribed;
    this.logger.info('ingest subscribed', { filters: this.filters });
  }

  /**
   * Finishes every message already received, sends the acks still pending, writes the status one
   * last time and, if the ingest built the client, ends it. The subscription is kept: with a
   * persistent session the broker queues what arrives while the ingest is down.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (!this.started) {
      // Nothing was processed (chains wait for a ledger that will never be built), so there is nothing to finish.
      this.client.off('message', this.onMessage);
      if (this.ownsClient) await endMqttClient(this.client, this.stopTimeoutMs);
      return;
    }
    if (this.statusTimer) clearInterval(this.statusTimer);
    if (this.gapTimer) clearInterval(this.gapTimer);
    if (this.alertTimer) clearInterval(this.alertTimer);
    await this.idle();
    this.client.off('message', this.onMessage);
    this.client.off('connect', this.onConnect);
    for (const [key, pending] of this.pendingAcks) {
      clearTimeout(pending.timer);
      this.pendingAcks.delete(key);
      this.trackAck(this.sendAck(pending.device, pending.stream, pending.epoch));
    }
    const acks = Promise.allSettled([...this.ackPublishes]);
    const flushed = await resolvesWithin(acks, this.stopTimeoutMs);
    if (!flushed) this.logger.warn('stop: acks not confirmed by the broker in time; devices will resend', { timeoutMs: this.stopTimeoutMs });
    // A sink that hangs (a webhook that never answers) must not hold the shutdown.
    const alertsDelivered = await resolvesWithin(this.alerts.flush(), this.stopTimeoutMs);
    if (!alertsDelivered) this.logger.warn('stop: alert sinks still delivering; stopping anyway', { timeoutMs: this.stopTimeoutMs });
    await this.writeStatus();
    if (this.ownsClient) await endMqttClient(this.client, this.stopTimeoutMs);
    this.logger.info('ingest stopped', { stats: this.stats() });
  }

  /** Resolves when every message received so far (and any received meanwhile) has been handled. */
  async idle(): Promise<void> {
    while (this.chains.size > 0) await Promise.all([...this.chains.values()]);
  }

  stats(): IngestStatsWithAlerts {
    return {
      ...this.counters,
      ...this.alerts.stats(),
      rejected: Object.fromEntries(this.rejectedByReason),
      invalidRecords: Object.fromEntries(this.invalidByStream),
      devicesSkewed: [...this.skewedDevices].sort(),
      deviceStatus: { ...this.deviceStatus.counters },
      inFlight: this.inFlight,
    };
  }

  /** Watermark and gaps as the next ack would report them; undefined for a stream never archived. */
  ackState(device: string, stream: string, epoch: string): { watermark: number; gaps: Array<[number, number]> } | undefined {
    const ledger = this.ledger?.peek(device, stream, epoch);
    return ledger && { watermark: ledger.watermark(), gaps: ledger.gaps(MAX_GAPS) };
  }

  /** Writes the counters to _status/ingest.json atomically; overlapping calls share one write. */
  writeStatus(): Promise<void> {
    if (this.statusWrite) return this.statusWrite;
    const body = JSON.stringify(
      { ...this.stats(), app: this.app, connected: this.client.connected, startedAt: this.startedAt.toISOString(), updatedAt: this.now().toISOString() },
      null,
      2,
    );
    this.statusWrite = this.archive
      .put(this.statusKey, body)
      .then(
        () => {
          if (this.statusFailing) this.logger.info('status file writable again');
          this.statusFailing = false;
        },
        (error) => {
          if (!this.statusFailing) this.logger.warn('status file write failed', { key: this.statusKey, error: errorMessage(error) });
          this.statusFailing = true;
        },
      )
      .finally(() => (this.statusWrite = undefined));
    return this.statusWrite;
  }

  private async subscribe(): Promise<void> {
    const granted = await this.client.subscribeAsync(this.filters, { qos: 1 });
    // MQTT 3.1.1 section 3.9.3: return code 0x80 in SUBACK means the subscription was refused.
    const refused = granted.find((g) => g.qos === 128);
    if (refused) throw new Error(`broker refused subscription to ${refused.topic}`);
  }

  private receive(topic: string, payload: Buffer): void {
    this.counters.received += 1;
    const receivedAt = this.now();
    const parsed = parseDataTopic(topic);
    const fleetThing = parseFleetStatusTopic(topic);
    // Same (thing, stream) → same chain; a thing's fleet status has a chain of its own. Anything unparsable gets its own chain key.
    const chainKey = parsed ? `${parsed.thing}\u0000${parsed.stream}` : fleetThing !== undefined ? `${fleetThing}\u0000$fleet-status` : `\u0000${topic}`;
    this.inFlight += 1;
    const previous = this.chains.get(chainKey) ?? this.ready;
    const next: Promise<void> = previous
      .then(() => this.handle(topic, payload, receivedAt))
      .catch((error: unknown) => {
        this.logger.error('unexpected error handling message', { topic, error: errorMessage(error) });
      })
      .finally(() => {
        this.inFlight -= 1;
        if (this.chains.get(chainKey) === next) this.chains.delete(chainKey);
      });
    this.chains.set(chainKey, next);
  }

  private async handle(topic: string, payload: Buffer, receivedAt: Date): Promise<void> {
    const fleetThing = parseFleetStatusTopic(topic);
    if (fleetThing !== undefined) {
      if (payload.length > this.maxPayloadBytes) {
        return this.reject(topic, payload, receivedAt, `oversized: ${payload.length} bytes, limit ${this.maxPayloadBytes} (AWS IoT Core payload limit)`);
      }
      return this.storeFleetStatus(topic, fleetThing, payload, receivedAt);
    }
    const parsed = parseDataTopic(topic);
    if (!parsed || parsed.app !== this.app) {
      return this.reject(topic, payload, receivedAt, `topic: "${topic}" is not dt/${this.app}/<thing>/<stream>`);
    }
    if (payload.length > this.maxPayloadBytes) {
      return this.reject(topic, payload, receivedAt, `oversized: ${payload.length} bytes, limit ${this.maxPayloadBytes} (AWS IoT Core payload limit)`);
    }
    if (parsed.stream === HEALTH_STREAM) return this.storeHealth(topic, parsed.thing, payload, receivedAt);
    if (parsed.stream === LOSS_STREAM) return this.recordLoss(topic, parsed.thing, payload, receivedAt);
    if (parsed.stream === EPOCH_STREAM) return this.recordEpoch(topic, parsed.thing, payload, receivedAt);
    if (parsed.stream === STATUS_STREAM) return this.storeDeviceStatus(topic, parsed.thing, payload, receivedAt);

    const json = parseEnvelopePayload(payload);
    if (!json.ok) return this.reject(topic, payload, receivedAt, json.reason);
    const checked = checkEnvelope(json.value);
    if (!checked.ok) return this.reject(topic, payload, receivedAt, checked.reason);
    const envelope = checked.value;
    if (envelope.device !== parsed.thing || envelope.stream !== parsed.stream) {
      return this.reject(
        topic,
        payload,
        receivedAt,
        `mis-addressed: topic names thing "${parsed.thing}" stream "${parsed.stream}", envelope says device "${envelope.device}" stream "${envelope.stream}"`,
      );
    }
    if (envelope.seqTo > MAX_KEY_SEQ) {
      return this.reject(topic, payload, receivedAt, `range: seqTo ${envelope.seqTo} exceeds ${MAX_KEY_SEQ}, the archive key layout's limit`);
    }
    const expectedId = `${envelope.device}/${envelope.stream}/${envelope.epoch}/${envelope.seqFrom}-${envelope.seqTo}`;
    if (envelope.envelopeId !== expectedId) {
      // Provenance only: the records passed every check, so refusing them would just make the device resend forever.
      this.logger.warn('envelopeId does not follow the contract', { topic, envelopeId: envelope.envelopeId, expected: expectedId });
    }
    this.counters.accepted += 1;
    this.checkClock(envelope, receivedAt);
    const outcome = await this.archiveEnvelope(envelope);
    if (outcome.ok && this.inline) this.scheduleAck(envelope.device, envelope.stream, envelope.epoch);
  }

  /**
   * Inline, the records the ledger already holds are trimmed and each remaining run becomes an
   * object. For the checker, the envelope is stored whole under the key of its range: the device
   * resends an envelope with the range it first had, so a resend lands on the same key, whichever
   * instance receives it. Either way an object's bytes depend only on the records, so a rewrite
   * of the same key writes the same bytes.
   */
  private async archiveEnvelope(envelope: Envelope): Promise<Outcome> {
    const ledger = this.ledger?.stream(envelope.device, envelope.stream, envelope.epoch);
    const runs = ledger ? ledger.missingFrom(envelope.records) : [envelope.records];
    const fresh = runs.reduce((sum, run) => sum + run.length, 0);
    this.counters.duplicatesDropped += envelope.count - fresh;
    for (const run of runs) {
      const seqFrom = run[0].seq;
      const seqTo = run[run.length - 1].seq;
      const key = recordKey(envelope.device, envelope.stream, envelope.epoch, seqFrom, seqTo);
      const invalid = this.invalidRecords(envelope, run);
      const body = recordRunBody(envelope, run, invalid);
      try {
        // The quarantine object first: a crash between the two puts leaves no run archived without it.
        if (invalid.length > 0) {
          const quarantine = quarantineBody(envelope, run, invalid);
          await this.withRetries(() => this.archive.put(quarantineKey(envelope.device, envelope.stream, envelope.epoch, seqFrom, seqTo), quarantine));
        }
        await this.withRetries(() => this.archive.put(key, body));
      } catch (error) {
        this.noteArchiveError('archive write failed; envelope not acked, the device will resend', {
          key,
          envelopeId: envelope.envelopeId,
          attempts: this.archiveAttempts,
          error: errorMessage(error),
        });
        return { ok: false, reason: 'archive' };
      }
      // Only after the put: a crash in between leaves an object the ledger rebuild will find.
      ledger?.add(seqFrom, seqTo);
      this.logger.debug('records archived', { correlationId: envelope.envelopeId, device: envelope.device, stream: envelope.stream, epoch: envelope.epoch, seqFrom, seqTo, key });
      this.counters.recordsArchived += run.length;
      this.counters.objectsWritten += 1;
      if (envelope.stream === STREAM_QUARANTINE) this.counters.deviceQuarantined += run.length - invalid.length;
      if (invalid.length > 0) {
        this.invalidByStream.set(envelope.stream, (this.invalidByStream.get(envelope.stream) ?? 0) + invalid.length);
        this.logger.warn('records broke their data contract; archived and quarantined', {
          device: envelope.device,
          stream: envelope.stream,
          epoch: envelope.epoch,
          invalid: invalid.length,
          first: invalid[0],
        });
      }
    }
    return { ok: true };
  }

  /**
   * Records that break their stream's data contract. They are still archived, since the device
   * sent them and the sequence accounting must not see a hole, but each is named with its reason
   * in the run object and in quarantine/. Times are judged against the device's own clock
   * (sentAt), so a skewed device clock is flagged once (checkClock), not as bad data.
   */
  private invalidRecords(envelope: Envelope, run: WireRecord[]): Array<{ seq: number; reason: string }> {
    const expected = RECORD_KINDS.get(envelope.stream)?.dataSchema;
    if (envelope.dataSchema !== undefined && envelope.dataSchema !== expected) {
      const reason = `dataSchema ${envelope.dataSchema} is not a contract this ingest knows for stream ${envelope.stream} (it knows ${expected ?? 'none'})`;
      return run.map((record) => ({ seq: record.seq, reason }));
    }
    const deviceNow = Date.parse(envelope.sentAt);
    const invalid: Array<{ seq: number; reason: string }> = [];
    for (const record of run) {
      const checked = checkRecord(envelope.stream, record.data, this.domainLimits, deviceNow);
      if (!checked.ok) invalid.push({ seq: record.seq, reason: checked.reason });
    }
    return invalid;
  }

  /** Device time against receive time: a device whose clock is off is flagged when it goes off and when it comes back. */
  private checkClock(envelope: Envelope, receivedAt: Date): void {
    const skewMs = Date.parse(envelope.sentAt) - receivedAt.getTime();
    const skewed = Math.abs(skewMs) > this.maxClockSkewMs;
    if (skewed) this.counters.clockSkewFlags += 1;
    if (skewed && !this.skewedDevices.has(envelope.device)) {
      this.skewedDevices.add(envelope.device);
      this.logger.warn('device clock skew', { device: envelope.device, skewMs, maxClockSkewMs: this.maxClockSkewMs, envelopeId: envelope.envelopeId });
    } else if (!skewed && this.skewedDevices.delete(envelope.device)) {
      this.logger.info('device clock back within bounds', { device: envelope.device, skewMs });
    }
    if (skewed) {
      this.alerts.fire({
        kind: 'clock-skew',
        device: envelope.device,
        message: `The clock of ${envelope.device} is ${Math.round(skewMs / 1000)} s off the cloud's (limit ${this.maxClockSkewMs / 1000} s): check NTP on the device.`,
        details: { skewMs, maxClockSkewMs: this.maxClockSkewMs, envelopeId: envelope.envelopeId },
      });
    } else {
      // Not only when skewedDevices had it: an alert restored after a restart must clear too.
      this.alerts.clear(alertId('clock-skew', envelope.device), `The clock of ${envelope.device} is back within ${this.maxClockSkewMs / 1000} s of the cloud's.`, { skewMs });
    }
  }

  private async storeDeviceStatus(topic: string, device: string, payload: Buffer, receivedAt: Date): Promise<void> {
    const outcome = await this.deviceStatus.accept(device, payload, receivedAt);
    if (!outcome.ok) return this.reject(topic, payload, receivedAt, outcome.reason);
  }

  private async storeHealth(topic: string, device: string, payload: Buffer, receivedAt: Date): Promise<void> {
    const json = parseJson(payload);
    if (!json.ok) return this.reject(topic, payload, receivedAt, `health: ${json.reason}`);
    const checked = validateHealth(json.value);
    if (!checked.ok) return this.reject(topic, payload, receivedAt, `health: ${checked.reason}`);
    if (checked.value.device !== device) {
      return this.reject(topic, payload, receivedAt, `mis-addressed: topic names thing "${device}", health says "${checked.value.device}"`);
    }
    // The device is alive whether or not the write below succeeds. An instance of a group sees
    // only some of a device's health messages, so it would call live devices stale.
    if (this.inline) this.healthMonitor.onHealth(device, checked.value, receivedAt.getTime());
    const body = JSON.stringify({ device, receivedAt: receivedAt.toISOString(), health: checked.value });
    try {
      await this.withRetries(() => this.archive.put(healthKey(device), body));
      this.counters.healthStored += 1;
    } catch (error) {
      this.noteArchiveError('health write failed', { topic, error: errorMessage(error) });
    }
  }

  /**
   * The nucleus's fleet status: stored as the device's latest (PARTIAL messages merged into what
   * was known), and each BROKEN component fires an alert that clears once a later message shows it
   * in another state (or a COMPLETE message no longer lists it).
   */
  private async storeFleetStatus(topic: string, device: string, payload: Buffer, receivedAt: Date): Promise<void> {
    const json = parseJson(payload);
    if (!json.ok) return this.reject(topic, payload, receivedAt, `fleet-status: ${json.reason}`);
    const checked = validateFleetStatus(json.value);
    if (!checked.ok) return this.reject(topic, payload, receivedAt, `fleet-status: ${checked.reason}`);
    const message = checked.value;
    if (message.thing !== device) {
      return this.reject(topic, payload, receivedAt, `mis-addressed: topic names thing "${device}", fleet status says "${message.thing}"`);
    }
    const previous = this.componentStates.get(device) ?? (await this.storedComponentStates(device));
    const components = mergeComponentStates(previous, message);
    this.componentStates.set(device, components);
    for (const [component, state] of Object.entries(components)) {
      const id = alertId('component-broken', device, component);
      if (state.status === 'BROKEN') {
        const reported = message.components.find((c) => c.componentName === component);
        this.alerts.fire({
          kind: 'component-broken',
          device,
          component,
          message: `${component} ${state.version} is BROKEN on ${device}: the nucleus gave up restarting it; read its log on the device, then fix and redeploy.`,
          details: { version: state.version, reportedAt: state.reportedAt, overallDeviceStatus: message.overallDeviceStatus, statusDetails: reported?.componentStatusDetails ?? reported?.statusDetails ?? null },
        });
      } else {
        this.alerts.clear(id, `${component} on ${device} is ${state.status} again.`, { status: state.status, version: state.version });
      }
    }
    for (const active of this.alerts.activeOfKind('component-broken')) {
      if (active.device === device && active.component !== undefined && !(active.component in components)) {
        this.alerts.clear(active.alertId, `${active.component} is no longer deployed on ${device}.`, { status: 'removed' });
      }
    }
    const stored: StoredFleetStatus = { device, receivedAt: receivedAt.toISOString(), message, components };
    try {
      await this.withRetries(() => this.archive.put(fleetStatusKey(device), JSON.stringify(stored)));
      this.counters.fleetStatusStored += 1;
    } catch (error) {
      this.noteArchiveError('fleet status write failed', { topic, error: errorMessage(error) });
    }
  }

  /** After a restart, the component states a PARTIAL message is merged into come from the archive. */
  private async storedComponentStates(device: string): Promise<Record<string, KnownComponentState>> {
    try {
      const body = await this.archive.get(fleetStatusKey(device));
      if (!body) return {};
      return (JSON.parse(body.toString('utf8')) as Partial<StoredFleetStatus>).components ?? {};
    } catch (error) {
      this.logger.warn('stored fleet status unreadable; starting from this message alone', { device, key: fleetStatusKey(device), error: errorMessage(error) });
      return {};
    }
  }

  /** A device's statement that ranges will never arrive: recorded as permanent gaps with the reason. */
  private async recordLoss(topic: string, device: string, payload: Buffer, receivedAt: Date): Promise<void> {
    const loss = await this.deviceReport(topic, device, payload, receivedAt, 'loss', checkLoss);
    if (!loss) return;
    this.counters.lossReports += 1;
    const body = { reason: loss.reason, source: 'loss-report', requestId: loss.requestId, reportedAt: loss.reportedAt, receivedAt: receivedAt.toISOString() };
    if (await this.recordGaps(device, loss.stream, loss.epoch, loss.ranges, loss.reason, body)) {
      this.logger.warn('device reported records that will never arrive', { device, stream: loss.stream, epoch: loss.epoch, reason: loss.reason, ranges: loss.ranges.slice(0, 10) });
      firePermanentGap(this.alerts, { device, stream: loss.stream, epoch: loss.epoch, ranges: loss.ranges, reason: loss.reason, source: 'loss-report' }, this.permanentGapHoldMs);
      if (this.inline) this.scheduleAck(device, loss.stream, loss.epoch);
    }
  }

  /**
   * A device replaced its store: everything of the old epoch up to what it had sampled that is not
   * archived is lost, and that count is the epoch loss. The old epoch is closed to backfill.
   */
  private async recordEpoch(topic: string, device: string, payload: Buffer, receivedAt: Date): Promise<void> {
    const report = await this.deviceReport(topic, device, payload, receivedAt, 'epoch', checkEpochReport);
    if (!report) return;
    this.counters.epochReports += 1;
    if (!this.inline) {
      // What the old epoch lost depends on everything archived, which no instance knows: the
      // checker computes it from the stored report.
      try {
        await this.withRetries(() => this.archive.put(epochKey(device, report.epoch), JSON.stringify({ ...report, receivedAt: receivedAt.toISOString() })));
      } catch (error) {
        this.noteArchiveError('could not store epoch report; the device repeats it', { device, error: errorMessage(error) });
      }
      return;
    }
    // The device repeats its report until it is sure one arrived; only the first one counts.
    if (report.previousEpoch && this.closedEpochs.has(`${device}\u0000${report.previousEpoch}`)) {
      this.logger.debug('epoch report repeated; the old epoch is already closed', { device, previousEpoch: report.previousEpoch });
      return;
    }
    const key = report.previousEpoch ? `${device}\u0000${report.previousEpoch}` : undefined;
    let lost = 0;
    if (report.previousEpoch && report.previousStreams !== null) {
      for (const previous of report.previousStreams) {
        const ledger = this.ledger!.stream(device, previous.stream, report.previousEpoch);
        const missing = ledger.uncovered(previous.appended);
        const count = missing.reduce((sum, [from, to]) => sum + to - from + 1, 0);
        const body = { reason: EPOCH_REPLACED, source: 'epoch-report', newEpoch: report.epoch, reportedAt: report.reportedAt, receivedAt: receivedAt.toISOString() };
        // A failed write leaves the epoch open: the device's next repeat tries again.
        if (count > 0 && !(await this.recordGaps(device, previous.stream, report.previousEpoch, missing, EPOCH_REPLACED, body))) return;
        if (count > 0) firePermanentGap(this.alerts, { device, stream: previous.stream, epoch: report.previousEpoch, ranges: missing, reason: EPOCH_REPLACED, source: 'epoch-report' }, this.permanentGapHoldMs);
        lost += count;
      }
    }
    // Written last: a rebuild treats an epoch with a stored report as closed.
    try {
      await this.withRetries(() => this.archive.put(epochKey(device, report.epoch), JSON.stringify({ ...report, receivedAt: receivedAt.toISOString() })));
    } catch (error) {
      this.noteArchiveError('could not store epoch report; the device repeats it', { device, error: errorMessage(error) });
      return;
    }
    if (key) this.closedEpochs.add(key);
    if (!report.previousEpoch || report.previousStreams === null) {
      // The old file was unreadable: what it had sampled is unknown, and so is the size of the loss.
      this.counters.epochLossUnknown += 1;
      this.logger.error('epoch replaced and the old file was unreadable: a loss of unknown size', { device, epoch: report.epoch, previousEpoch: report.previousEpoch });
      this.alerts.fire({
        kind: 'gap-permanent',
        device,
        message: `${device} replaced its store (new epoch ${report.epoch}) and could not read the old one: an unknown number of records is lost; read the device's StreamBuffer log.`,
        details: { epoch: report.epoch, previousEpoch: report.previousEpoch, reason: EPOCH_REPLACED, records: null, source: 'epoch-report' },
      });
      return;
    }
    this.counters.epochLoss += lost;
    this.logger.error('epoch replaced; records of the old epoch that never arrived are lost', {
      device,
      epoch: report.epoch,
      previousEpoch: report.previousEpoch,
      lost,
      streams: report.previousStreams,
    });
  }

  /** Parses and checks a loss or epoch report; a bad or mis-addressed one is rejected (undefined). */
  private async deviceReport<T extends { device: string }>(
    topic: string,
    device: string,
    payload: Buffer,
    receivedAt: Date,
    kind: 'loss' | 'epoch',
    check: (value: unknown) => { ok: true; value: T } | { ok: false; reason: string },
  ): Promise<T | undefined> {
    const json = parseJson(payload);
    const checked = json.ok ? check(json.value) : json;
    if (!checked.ok) {
      await this.reject(topic, payload, receivedAt, `${kind}: ${checked.reason}`);
      return undefined;
    }
    if (checked.value.device !== device) {
      await this.reject(topic, payload, receivedAt, `mis-addressed: topic names thing "${device}", ${kind} report says "${checked.value.device}"`);
      return undefined;
    }
    return checked.value;
  }

  /** Persists each range as a gaps/ object, then marks it in the ledger. False if a write failed. */
  private async recordGaps(device: string, stream: string, epoch: string, ranges: SeqRange[], reason: string, body: Record<string, unknown>): Promise<boolean> {
    const ledger = this.ledger?.stream(device, stream, epoch);
    for (const [from, to] of ranges) {
      try {
        await this.withRetries(() => this.archive.put(gapKey(device, stream, epoch, from, to), JSON.stringify({ device, stream, epoch, seqFrom: from, seqTo: to, ...body })));
      } catch (error) {
        this.noteArchiveError('could not record a permanent gap', { device, stream, epoch, from, to, error: errorMessage(error) });
        return false;
      }
      ledger?.markGone(from, to, reason);
    }
    return true;
  }

  /** Counts a write given up on, logs it, and raises the cloud's own alert until a write succeeds again. */
  private noteArchiveError(what: string, fields: Record<string, unknown>): void {
    this.counters.archiveErrors += 1;
    this.logger.error(what, fields);
    fireArchiveError(this.alerts, 'The cloud ingest cannot write to its archive', what, fields.error, '; devices keep their records meanwhile');
  }

  /**
   * Brings back what the alert view knew before a restart: the alerts that were firing (so they
   * clear with an event, not silently) and the devices that had reported health (so one that never
   * comes back is called stale).
   */
  private async restoreAlerts(): Promise<void> {
    try {
      this.alerts.restore(await readActiveAlerts(this.archive));
    } catch (error) {
      this.logger.warn('active alerts unreadable; starting with none', { error: errorMessage(error) });
    }
    for (const key of await this.archive.list(HEALTH_PREFIX)) {
      try {
        const stored = JSON.parse((await this.archive.get(key))?.toString('utf8') ?? '{}') as { device?: unknown; receivedAt?: unknown };
        const at = typeof stored.receivedAt === 'string' ? Date.parse(stored.receivedAt) : NaN;
        if (typeof stored.device === 'string' && !Number.isNaN(at)) this.healthMonitor.seed(stored.device, at);
      } catch (error) {
        this.logger.warn('unreadable health object in the archive', { key, error: errorMessage(error) });
      }
    }
    // A device decommissioned by deleting its objects (docs/OPERATIONS.md) will never clear its alerts itself.
    for (const active of this.alerts.active()) {
      const forgotten =
        (active.kind === 'device-stale' && !this.healthMonitor.knows(active.device)) ||
        (active.kind === 'component-broken' && (await this.archive.get(fleetStatusKey(active.device))) === undefined);
      if (forgotten) this.alerts.clear(active.alertId, `${active.device} is no longer known to the ingest (its stored state was removed).`);
    }
  }

  /** Fires device-stale for silent devices and clears gap-permanent alerts past their hold time. */
  checkAlerts(nowMs = this.now().getTime()): void {
    if (this.stopping) return;
    this.healthMonitor.check(nowMs);
    expirePermanentGapAlerts(this.alerts, this.permanentGapHoldMs, nowMs);
  }

  private async rebuildClosedEpochs(): Promise<void> {
    for (const key of await this.archive.list(EPOCHS_PREFIX)) {
      try {
        const report = JSON.parse((await this.archive.get(key))?.toString('utf8') ?? '{}');
        if (typeof report.device === 'string' && typeof report.previousEpoch === 'string') this.closedEpochs.add(`${report.device}\u0000${report.previousEpoch}`);
      } catch (error) {
        this.logger.warn('unreadable epoch report in the archive', { key, error: errorMessage(error) });
      }
    }
  }

  /**
   * Asks devices for gaps that stayed open past the grace time, with bounded requests and a
   * doubling wait before asking again for the same stream.
   */
  checkGaps(nowMs = this.now().getTime()): void {
    if (!this.ledger || this.stopping) return;
    const requests = this.gaps.check(this.ledger.entries(), (device, epoch) => this.closedEpochs.has(`${device}\u0000${epoch}`), nowMs);
    for (const request of requests) this.trackAck(this.sendBackfill(request));
  }

  private async sendBackfill(request: BackfillRequest): Promise<void> {
    if (await publishBackfill(this.client, this.app, request, this.maxBackfillRecords, this.logger)) this.counters.backfillRequests += 1;
  }


  /** Counts, logs and keeps the message, like an IoT rule's error action; the ingest carries on. */
  private async reject(topic: string, payload: Buffer, receivedAt: Date, reason: string): Promise<void> {
    const category = reason.split(':', 1)[0];
    this.rejectedByReason.set(category, (this.rejectedByReason.get(category) ?? 0) + 1);
    this.logger.warn('message rejected', { reason, category, topic, bytes: payload.length });
    const key = rejectedKey(receivedAt, randomUUID());
    const truncated = category === 'oversized' && payload.length > REJECTED_PAYLOAD_HEAD_BYTES;
    const kept = truncated ? payload.subarray(0, REJECTED_PAYLOAD_HEAD_BYTES) : payload;
    const utf8 = isUtf8(kept);
    const body = JSON.stringify({
      reason,
      category,
      topic,
      receivedAt: receivedAt.toISOString(),
      bytes: payload.length,
      truncated,
      payloadEncoding: utf8 ? 'utf8' : 'base64',
      payload: kept.toString(utf8 ? 'utf8' : 'base64'),
    });
    try {
      await this.withRetries(() => this.archive.put(key, body));
    } catch (error) {
      this.noteArchiveError('could not store rejected message', { key, reason, topic, error: errorMessage(error) });
    }
  }

  private scheduleAck(device: string, stream: string, epoch: string): void {
    const key = `${device}\u0000${stream}\u0000${epoch}`;
    // A pending ack reads the ledger when it fires, so it already covers this envelope.
    if (this.pendingAcks.has(key)) return;
    if (this.ackWindowMs === 0 || this.stopping) {
      this.trackAck(this.sendAck(device, stream, epoch));
      return;
    }
    const timer = setTimeout(() => {
      this.pendingAcks.delete(key);
      this.trackAck(this.sendAck(device, stream, epoch));
    }, this.ackWindowMs);
    this.pendingAcks.set(key, { device, stream, epoch, timer });
  }

  private trackAck(publish: Promise<void>): void {
    this.ackPublishes.add(publish);
    void publish.finally(() => this.ackPublishes.delete(publish));
  }

  private async sendAck(device: string, stream: string, epoch: string): Promise<void> {
    const ledger = this.ledger?.peek(device, stream, epoch);
    if (!ledger) return;
    const ack = ackFor(stream, epoch, ledger, this.now());
    // A failed one costs nothing: the device's next resend triggers a fresh ack.
    if ((await publishAck(this.client, this.app, device, ack, this.logger)) === 'sent') this.counters.acksSent += 1;
    else this.counters.ackErrors += 1;
  }

  private async withRetries(operation: () => Promise<void>): Promise<void> {
    const backoff = new Backoff(this.archiveRetryBaseMs, this.archiveRetryBaseMs * 20);
    for (let attempt = 1; ; attempt += 1) {
      try {
        await operation();
        this.alerts.clear(alertId('archive-errors', CLOUD_DEVICE), 'Archive writes succeed again.');
        return;
      } catch (error) {
        if (attempt >= this.archiveAttempts) throw error;
        const delay = backoff.nextDelayMs();
        this.logger.warn('archive write failed; retrying', { attempt, delayMs: delay, error: errorMessage(error) });
        await sleep(delay);
      }
    }
  }
}

/**
 * The object stored for one contiguous run; the key names the same run. No receive time: a
 * resend must rewrite the same bytes (the store's own timestamp says when it was written).
 */
function recordRunBody(envelope: Envelope, run: WireRecord[], invalid: Array<{ seq: number; reason: string }>): string {
  return JSON.stringify({
    device: envelope.device,
    stream: envelope.stream,
    ...(envelope.dataSchema ? { dataSchema: envelope.dataSchema } : {}),
    epoch: envelope.epoch,
    seqFrom: run[0].seq,
    seqTo: run[run.length - 1].seq,
    envelopeId: envelope.envelopeId,
    ...(invalid.length > 0 ? { invalid } : {}),
    records: run,
  });
}

function quarantineBody(envelope: Envelope, run: WireRecord[], invalid: Array<{ seq: number; reason: string }>): string {
  const bySeq = new Map(run.map((record) => [record.seq, record]));
  return JSON.stringify({
    device: envelope.device,
    stream: envelope.stream,
    epoch: envelope.epoch,
    envelopeId: envelope.envelopeId,
    detectedBy: 'cloud',
    records: invalid.map(({ seq, reason }) => ({ reason, ...bySeq.get(seq)! })),
  });
}

function isUtf8(bytes: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

function nonNegative(name: string, value: number): number {
  if (!(value >= 0) || !Number.isFinite(value)) throw new RangeError(`${name} must be a finite number >= 0, got ${value}`);
  return value;
}
