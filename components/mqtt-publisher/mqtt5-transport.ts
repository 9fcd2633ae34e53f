/**
 * Transport over a direct MQTT 5 connection with the SDK's own client (aws-crt Mqtt5Client), for
 * devices without Greengrass and for tests. Mutual TLS to AWS IoT Core or any MQTT 5 broker;
 * plain TCP only for loopback tests (mqtt:// URLs).
 *
 * - Persistent session: sessionBehavior RejoinAlways with a session expiry (default 1 h), so the
 *   broker keeps subscriptions and queued QoS 1 messages (acks, backfill requests) across a
 *   reconnect AND a restart of the process; subscriptions are sent again only when the broker says
 *   the session is gone (CONNACK sessionPresent false).
 * - Reconnects: failed connection attempts follow the SDK's decorrelated jitter,
 *   next = min(max, random(min, 3 x previous)). After a lost connection the transport pauses
 *   itself (pauseAfterDisconnect): at least minReconnectDelayMs (1 s by default, so a server
 *   disconnect is never answered at once) plus full jitter that doubles per disconnect; both reset
 *   only after minConnectedTimeToResetReconnectDelayMs connected.
 * - Last will on a status topic with a will delay: a crash or a lost link announces itself, a
 *   blip shorter than the delay does not (MQTT 5.0, 3.1.3.2.2: a reconnect within the delay
 *   cancels the will). With `announce`, every successful connection publishes an "online"
 *   status (QoS 1, retained) on the same topic, so the retained value is the current state and a
 *   will's "offline" is replaced by the next "online"; close() publishes a "stopped" status before
 *   its DISCONNECT, because a normal DISCONNECT discards the will (MQTT 5.0, 3.1.2.5).
 * - Session taken over (DISCONNECT 0x8E: another client connected with this client id): logged as
 *   an error and counted; the transport stops and tries again only after a cool-down that doubles
 *   with each takeover, so two devices sharing an id do not kick each other off in a loop.
 * - Back-pressure like the IPC transport: when too many publishes wait for a PUBACK or a
 *   connection (maxQueuedPublishes), or the broker answers QuotaExceeded, publish() rejects with
 *   BackpressureError; the publisher waits and nothing is lost (records stay in the store).
 * - close(): a normal DISCONNECT, then every publish still waiting rejects with TransportError
 *   (the SDK settles none of them once closed), and any later call rejects: nothing is ever
 *   reported published without a PUBACK.
 */
import { readFileSync } from 'node:fs';
import { io, mqtt5 } from 'aws-crt';
import { sleep } from '../shared/backoff';
import { errorMessage, type Logger } from '../shared/logger';
import { IOT_CORE_PACING, PublishPacer } from '../shared/rate-limiter';
import { topicMatches } from '../shared/topic-filter';
import { BackpressureError, TransportError, type Transport } from './transport';

export interface Mqtt5TransportOptions {
  /** mqtts://host:8883 (TLS) or mqtt://host:1883 (loopback tests only). */
  brokerUrl: string;
  clientId: string;
  /** Client certificate and key (PEM files) for mutual TLS. */
  certPath?: string;
  keyPath?: string;
  /** CA bundle (PEM) that signed the broker's certificate; the system trust store when absent. */
  caPath?: string;
  /** AWS IoT Core accepts 30..1200 s. */
  keepAliveSec?: number;
  sessionExpirySec?: number;
  minReconnectDelayMs?: number;
  maxReconnectDelayMs?: number;
  minConnectedTimeToResetReconnectDelayMs?: number;
  /** Published by the broker when the connection is lost without a DISCONNECT, after delaySec (QoS 1). */
  will?: { topic: string; payload: string; delaySec: number; retain?: boolean };
  /** Status published (QoS 1, retained) after every successful connection, and before close()'s DISCONNECT. */
  announce?: { topic: string; online: () => string; stopped: () => string };
  /** Publishes waiting for a PUBACK or a connection beyond which publish() is back-pressure. */
  maxQueuedPublishes?: number;
  /** A publish without a PUBACK after this long fails (the publisher resends later). */
  ackTimeoutSec?: number;
  /** First wait after a session takeover; doubles with each takeover up to 10 min. */
  takeoverCooldownMs?: number;
  /**
   * Pace of publishes on this connection, as the nucleus paces its own (AWS IoT Core allows 100
   * publishes/s and 512 KiB/s per connection and throttles beyond); 0 does not pace.
   */
  maxPublishesPerSec?: number;
  maxPublishBytesPerSec?: number;
  logger: Logger;
}

export const MQTT5_DEFAULTS = {
  keepAliveSec: 60,
  sessionExpirySec: 3600,
  minReconnectDelayMs: 1000,
  maxReconnectDelayMs: 120_000,
  minConnectedTimeToResetReconnectDelayMs: 30_000,
  maxQueuedPublishes: 100,
  ackTimeoutSec: 60,
  takeoverCooldownMs: 60_000,
  maxPublishesPerSec: IOT_CORE_PACING.publishesPerSec,
  maxPublishBytesPerSec: IOT_CORE_PACING.bytesPerSec,
} as const;

const MAX_TAKEOVER_COOLDOWN_MS = 10 * 60_000;
/** How long close() waits for the PUBACK of its "stopped" status before it disconnects anyway. */
const STATUS_ON_CLOSE_TIMEOUT_MS = 2_000;
/** MQTT 5 DISCONNECT reason "Session taken over" (MQTT 5.0, 3.14.2.1). */
const SESSION_TAKEN_OVER = 0x8e;

export interface Mqtt5Counters {
  attemptingConnect: number;
  connectionSuccess: number;
  connectionFailure: number;
  disconnections: number;
  sessionsResumed: number;
  sessionTakeovers: number;
  resubscribes: number;
  publishBackpressure: number;
  publishFailures: number;
  messagesReceived: number;
  statusPublished: number;
  statusPublishFailures: number;
  /** Publishes that waited for the connection's pace (maxPublishesPerSec, maxPublishBytesPerSec). */
  pacedWaits: number;
}

export function parseBrokerUrl(url: string): { tls: boolean; host: string; port: number } {
  const parsed = new URL(url);
  if (parsed.protocol !== 'mqtts:' && parsed.protocol !== 'mqtt:') throw new RangeError(`broker URL must be mqtts://host:port or mqtt://host:port, got "${url}"`);
  const tls = parsed.protocol === 'mqtts:';
  const port = parsed.port ? Number(parsed.port) : tls ? 8883 : 1883;
  return { tls, host: parsed.hostname, port };
}

export class Mqtt5Transport implements Transport {
  readonly name = 'mqtt5';
  readonly counters: Mqtt5Counters = {
    attemptingConnect: 0,
    connectionSuccess: 0,
    connectionFailure: 0,
    disconnections: 0,
    sessionsResumed: 0,
    sessionTakeovers: 0,
    resubscribes: 0,
    publishBackpressure: 0,
    publishFailures: 0,
    messagesReceived: 0,
    statusPublished: 0,
    statusPublishFailures: 0,
    pacedWaits: 0,
  };
  private readonly pace: PublishPacer;
  /** Aborted by close(), so that a publish waiting for the pace does not hold the shutdown. */
  private readonly closing = new AbortController();
  private readonly client: mqtt5.Mqtt5Client;
  private readonly subscriptions = new Map<string, (topic: string, payload: Buffer) => void>();
  private readonly options: Mqtt5TransportOptions & typeof MQTT5_DEFAULTS;
  private connected = false;
  private closed = false;
  /** Between start() and the client's 'stopped' event; a stopped client never emits 'stopped' again. */
  private running = false;
  /**
   * Publishes not yet settled, each with a way to reject it. Counted here rather than with the
   * client's incompleteOperationCount, which also counts subscribes; and the SDK neither settles
   * queued operations when the client is stopped and closed, nor allows a call after close().
   */
  private readonly pendingPublishes = new Set<(error: TransportError) => void>();
  /** The pause before the next start() after a takeover or a lost connection. */
  private takeoverTimer?: NodeJS.Timeout;
  private nextTakeoverCooldownMs: number;
  /** Called with nothing at the next connection, or with the reason there will be none. */
  private connectedWaiters: Array<(error?: TransportError) => void> = [];

  constructor(options: Mqtt5TransportOptions) {
    this.options = { ...MQTT5_DEFAULTS, ...stripUndefined(options) } as Mqtt5TransportOptions & typeof MQTT5_DEFAULTS;
    this.nextTakeoverCooldownMs = this.options.takeoverCooldownMs;
    this.pace = new PublishPacer({ publishesPerSec: this.options.maxPublishesPerSec, bytesPerSec: this.options.maxPublishBytesPerSec });
    this.client = new mqtt5.Mqtt5Client(this.clientConfig());
    this.attachLifecycle();
  }

  /** Starts connecting; the client keeps reconnecting on its own until close(). */
  start(): void {
    if (this.closed) throw new TransportError(`MQTT 5 transport to ${this.options.brokerUrl} is closed and cannot be started again`, 'other');
    this.running = true;
    this.client.start();
  }

  /** Resolves at the next successful connection (or at once when connected); rejects after timeoutMs or at close(). */
  waitConnected(timeoutMs: number): Promise<void> {
    if (this.connected) return Promise.resolve();
    if (this.closed) return Promise.reject(new TransportError(`MQTT 5 transport to ${this.options.brokerUrl} is closed`, 'connection'));
    return new Promise((resolve, reject) => {
      const waiter = (error?: TransportError) => {
        clearTimeout(timer);
        if (error) reject(error);
        else resolve();
      };
      const timer = setTimeout(() => {
        this.connectedWaiters = this.connectedWaiters.filter((w) => w !== waiter);
        reject(new TransportError(`not connected to ${this.options.brokerUrl} after ${timeoutMs} ms`, 'connection'));
      }, timeoutMs);
      this.connectedWaiters.push(waiter);
    });
  }

  get isConnected(): boolean {
    return this.connected;
  }

  async publish(topic: string, payload: Buffer, options: { qos: 0 | 1; retain?: boolean }): Promise<void> {
    if (this.closed) throw new TransportError(`MQTT 5 transport to ${this.options.brokerUrl} is closed; publish to ${topic} not sent`, 'connection');
    const queued = this.pendingPublishes.size;
    if (queued >= this.options.maxQueuedPublishes) {
      this.counters.publishBackpressure += 1;
      throw new BackpressureError(`${queued} publishes already wait for a PUBACK or a connection (maxQueuedPublishes ${this.options.maxQueuedPublishes})`);
    }
    await this.waitForPace(payload.length);
    if (this.closed) throw new TransportError(`MQTT 5 transport to ${this.options.brokerUrl} closed while ${topic} waited for its pace; not sent`, 'connection');
    let result: mqtt5.PublishCompletionResult;
    try {
      result = await new Promise<mqtt5.PublishCompletionResult>((resolve, reject) => {
        const abandon = (error: TransportError) => reject(error);
        this.pendingPublishes.add(abandon);
        this.client
          .publish({ topicName: topic, payload, qos: options.qos === 1 ? mqtt5.QoS.AtLeastOnce : mqtt5.QoS.AtMostOnce, retain: options.retain ?? false })
          .then(resolve, reject)
          .finally(() => this.pendingPublishes.delete(abandon));
      });
    } catch (error) {
      this.counters.publishFailures += 1;
      if (error instanceof TransportError) throw error;
      throw new TransportError(`MQTT 5 publish to ${topic} failed: ${errorMessage(error)}`, 'connection');
    }
    const reason = result?.reasonCode;
    if (reason === undefined || mqtt5.isSuccessfulPubackReasonCode(reason)) return;
    if (reason === mqtt5.PubackReasonCode.QuotaExceeded) {
      this.counters.publishBackpressure += 1;
      throw new BackpressureError(`broker refused the publish to ${topic}: quota exceeded`);
    }
    this.counters.publishFailures += 1;
    const kind = reason === mqtt5.PubackReasonCode.NotAuthorized ? 'unauthorized' : 'other';
    throw new TransportError(`broker refused the publish to ${topic}: PUBACK reason ${reason}${result?.reasonString ? ` (${result.reasonString})` : ''}`, kind);
  }

  /**
   * Waits until the connection's pace allows one more publish of this size, then takes it: IoT Core
   * throttles a connection beyond 100 publishes/s or 512 KiB/s, and the nucleus paces its own
   * connection to stay under; so does this one (one second of unused budget is kept for bursts).
   */
  private async waitForPace(bytes: number): Promise<void> {
    for (let waitMs = this.pace.waitMs(); waitMs > 0; waitMs = this.pace.waitMs()) {
      this.counters.pacedWaits += 1;
      await sleep(Math.ceil(waitMs), this.closing.signal);
      if (this.closed) return;
    }
    this.pace.take(bytes);
  }

  async subscribe(filter: string, onMessage: (topic: string, payload: Buffer) => void): Promise<void> {
    if (this.closed) throw new TransportError(`MQTT 5 transport to ${this.options.brokerUrl} is closed; cannot subscribe to ${filter}`, 'connection');
    this.subscriptions.set(filter, onMessage);
    try {
      await this.sendSubscribe([filter]);
    } catch (error) {
      // A refused filter would otherwise be sent again, and refused again, on every new session.
      this.subscriptions.delete(filter);
      throw error;
    }
  }

  /** A normal DISCONNECT: the broker discards the will, and the session waits sessionExpirySec for us. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.closing.abort();
    if (this.takeoverTimer) clearTimeout(this.takeoverTimer);
    if (this.running && this.connected && this.options.announce) {
      // Bounded: a link that died a moment ago must not hold up the shutdown.
      await Promise.race([this.publishStatus(this.options.announce.stopped(), 'stopped'), new Promise((resolve) => setTimeout(resolve, STATUS_ON_CLOSE_TIMEOUT_MS).unref())]);
    }
    if (this.running) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 5000);
        this.client.once('stopped', () => {
          clearTimeout(timer);
          resolve();
        });
        this.client.stop({ reasonCode: mqtt5.DisconnectReasonCode.NormalDisconnection });
      });
    }
    // Not sent, or sent without a PUBACK: either way not proven delivered, so the caller keeps
    // the records and sends them again later (the cloud drops a copy that did arrive).
    for (const abandon of [...this.pendingPublishes]) {
      abandon(new TransportError(`MQTT 5 transport to ${this.options.brokerUrl} closed before the broker acknowledged the publish`, 'connection'));
    }
    this.pendingPublishes.clear();
    this.client.close();
    for (const waiter of this.connectedWaiters.splice(0)) waiter(new TransportError(`MQTT 5 transport to ${this.options.brokerUrl} closed before it connected`, 'connection'));
  }

  /** A status announcement: QoS 1 and retained, outside the queue bound of data publishes. */
  private async publishStatus(payload: string, what: string): Promise<void> {
    const announce = this.options.announce!;
    try {
      const result = await this.client.publish({ topicName: announce.topic, payload: Buffer.from(payload), qos: mqtt5.QoS.AtLeastOnce, retain: true });
      const reason = result?.reasonCode;
      if (reason !== undefined && !mqtt5.isSuccessfulPubackReasonCode(reason)) throw new Error(`PUBACK reason ${reason}${result?.reasonString ? ` (${result.reasonString})` : ''}`);
      this.counters.statusPublished += 1;
      this.options.logger.info('MQTT 5: device status published', { topic: announce.topic, status: what });
    } catch (error) {
      this.counters.statusPublishFailures += 1;
      this.options.logger.warn('MQTT 5: device status not published', { topic: announce.topic, status: what, error: errorMessage(error) });
    }
  }

  private async sendSubscribe(filters: string[]): Promise<void> {
    if (filters.length === 0) return;
    const suback = await this.client.subscribe({ subscriptions: filters.map((topicFilter) => ({ topicFilter, qos: mqtt5.QoS.AtLeastOnce })) });
    const refused = suback.reasonCodes.map((code, i) => ({ code, filter: filters[i] })).filter(({ code }) => !mqtt5.isSuccessfulSubackReasonCode(code));
    if (refused.length > 0) {
      throw new TransportError(`broker refused subscriptions: ${refused.map((r) => `${r.filter} (reason ${r.code})`).join(', ')}`, refused.some((r) => r.code === 135) ? 'unauthorized' : 'other');
    }
  }

  private clientConfig(): mqtt5.Mqtt5ClientConfig {
    const o = this.options;
    const { tls, host, port } = parseBrokerUrl(o.brokerUrl);
    const config: mqtt5.Mqtt5ClientConfig = {
      hostName: host,
      port,
      sessionBehavior: mqtt5.ClientSessionBehavior.RejoinAlways,
      retryJitterMode: mqtt5.RetryJitterType.Decorrelated,
      minReconnectDelayMs: o.minReconnectDelayMs,
      maxReconnectDelayMs: o.maxReconnectDelayMs,
      minConnectedTimeToResetReconnectDelayMs: o.minConnectedTimeToResetReconnectDelayMs,
      ackTimeoutSeconds: o.ackTimeoutSec,
      offlineQueueBehavior: mqtt5.ClientOperationQueueBehavior.FailQos0PublishOnDisconnect,
      connectProperties: {
        clientId: o.clientId,
        keepAliveIntervalSeconds: o.keepAliveSec,
        sessionExpiryIntervalSeconds: o.sessionExpirySec,
        ...(o.will
          ? { willDelayIntervalSeconds: o.will.delaySec, will: { topicName: o.will.topic, payload: Buffer.from(o.will.payload), qos: mqtt5.QoS.AtLeastOnce, retain: o.will.retain ?? false } }
          : {}),
      },
    };
    if (tls) {
      const tlsOptions = o.certPath && o.keyPath ? io.TlsContextOptions.create_client_with_mtls_from_path(o.certPath, o.keyPath) : new io.TlsContextOptions();
      if (o.caPath) tlsOptions.override_default_trust_store(readFileSync(o.caPath, 'utf8'));
      tlsOptions.verify_peer = true;
      config.tlsCtx = new io.ClientTlsContext(tlsOptions);
    }
    return config;
  }

  private attachLifecycle(): void {
    const log = this.options.logger;
    const url = this.options.brokerUrl;
    this.client.on('attemptingConnect', () => {
      this.counters.attemptingConnect += 1;
      log.debug('MQTT 5: connecting', { broker: url });
    });
    this.client.on('connectionSuccess', (event) => {
      this.counters.connectionSuccess += 1;
      this.connected = true;
      const resumed = event.connack.sessionPresent;
      if (resumed) this.counters.sessionsResumed += 1;
      log.info('MQTT 5: connected', { broker: url, sessionPresent: resumed, keepAliveSec: event.settings.serverKeepAlive });
      for (const waiter of this.connectedWaiters.splice(0)) waiter();
      if (this.options.announce) void this.publishStatus(this.options.announce.online(), 'online');
      // The broker kept the session (and our subscriptions) unless it says otherwise.
      if (!resumed && this.subscriptions.size > 0 && this.counters.connectionSuccess > 1) {
        this.counters.resubscribes += 1;
        this.sendSubscribe([...this.subscriptions.keys()]).catch((error) => log.error('MQTT 5: resubscribe failed', { error: errorMessage(error) }));
      }
    });
    this.client.on('connectionFailure', (event) => {
      this.counters.connectionFailure += 1;
      log.warn('MQTT 5: connection attempt failed; the client retries with jittered backoff', { broker: url, error: errorMessage(event.error) });
    });
    this.client.on('disconnection', (event) => {
      this.counters.disconnections += 1;
      this.connected = false;
      const reason = event.disconnect?.reasonCode;
      if (reason === SESSION_TAKEN_OVER) return this.onSessionTakenOver();
      if (this.closed) return;
      log.warn('MQTT 5: disconnected; the client reconnects with jittered backoff', { broker: url, reasonCode: reason, error: errorMessage(event.error) });
    });
    this.client.on('stopped', () => {
      this.running = false;
      log.info('MQTT 5: stopped', { broker: url });
    });
    this.client.on('messageReceived', (event) => {
      this.counters.messagesReceived += 1;
      const { topicName, payload } = event.message;
      const body = payload ? Buffer.from(payload as ArrayBuffer) : Buffer.alloc(0);
      for (const [filter, onMessage] of this.subscriptions) {
        if (!topicMatches(filter, topicName)) continue;
        try {
          onMessage(topicName, body);
        } catch (error) {
          // Thrown into the SDK's native callback it would end the process; one bad message must not.
          log.error('MQTT 5: message handler failed', { filter, topic: topicName, error: errorMessage(error) });
        }
      }
    });
  }

  private onSessionTakenOver(): void {
    this.counters.sessionTakeovers += 1;
    const waitMs = this.nextTakeoverCooldownMs;
    this.nextTakeoverCooldownMs = Math.min(MAX_TAKEOVER_COOLDOWN_MS, waitMs * 2);
    this.options.logger.error('MQTT 5: session taken over by another client with the same client id; pausing before reconnecting', {
      clientId: this.options.clientId,
      takeovers: this.counters.sessionTakeovers,
      pauseMs: waitMs,
    });
    this.client.stop();
    this.takeoverTimer = setTimeout(() => {
      if (this.closed) return;
      this.running = true;
      this.client.start();
    }, waitMs);
  }
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
