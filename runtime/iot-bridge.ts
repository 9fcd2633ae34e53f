import mqtt, { type MqttClient } from 'mqtt';
import { readBrokerTls, type BrokerTlsFiles } from '../components/shared/broker-tls';
import type { Logger } from '../components/shared/logger';
import { errorMessage } from '../components/shared/logger';
import { endMqttClient } from '../components/shared/mqtt-end';
import { IOT_CORE_PACING, PublishPacer } from '../components/shared/rate-limiter';
import { PublishRefusedError, Spooler, type SpooledMessage } from './spooler';
import { topicMatches } from '../components/shared/topic-filter';

/**
 * The runtime's connection to "AWS IoT Core": a real MQTT broker (embedded aedes by default, or
 * any broker URL). It plays the nucleus's MQTT client: one connection with the thing name as
 * client id and a persistent session, a spooler in front of it, at most maxInFlightPublishes
 * QoS 1 publishes awaiting PUBACK (nucleus mqtt.maxInFlightPublishes, default 5), and
 * subscriptions shared by every component that asked for the same filter.
 */
export interface IotBridgeOptions {
  brokerUrl: string;
  clientId: string;
  spoolerMaxBytes?: number;
  maxInFlightPublishes?: number;
  /** Nucleus mqtt.maxMessageSizeInBytes, default 128 KiB (IoT Core's payload limit). */
  maxMessageSizeInBytes?: number;
  /** Nucleus mqtt.spooler.keepQos0WhenOffline, default false: QoS 0 is refused offline and dropped on disconnect. */
  keepQos0WhenOffline?: boolean;
  /** Client certificate, key and CA for an mqtts:// broker (the nucleus's own connection is mutual TLS). */
  tls?: BrokerTlsFiles;
  /**
   * Publishes per second and payload bytes per second on this connection: the nucleus paces to
   * IoT Core's per-connection limits, 100 and 512 KiB (AwsIotMqtt5Client); `false` does not pace.
   */
  pacing?: { publishesPerSec: number; bytesPerSec: number } | false;
  logger: Logger;
}

export const DEFAULT_MAX_IN_FLIGHT_PUBLISHES = 5;
/** How long stop waits for a graceful DISCONNECT (in-flight PUBACKs first) before it closes the socket. */
const STOP_TIMEOUT_MS = 5000;
export const DEFAULT_MAX_MESSAGE_SIZE_BYTES = 128 * 1024;

export type IotMessageListener = (topic: string, payload: Buffer, retain: boolean) => void;

export class IotBridge {
  readonly spooler: Spooler;
  readonly counters = { published: 0, publishFailures: 0, received: 0, connects: 0, disconnects: 0, pacedWaits: 0 };
  private readonly pace?: PublishPacer;
  private pacedDrain?: NodeJS.Timeout;
  private client?: MqttClient;
  private readonly inFlight = new Set<number>();
  private readonly listeners = new Map<number, { filter: string; listener: IotMessageListener }>();
  private readonly filterRefs = new Map<string, number>();
  /** Per filter, the broker's answer to the last SUBSCRIBE sent for it. */
  private readonly subacks = new Map<string, Promise<void>>();
  private nextListenerId = 1;
  private readonly maxInFlight: number;
  readonly maxMessageSize: number;

  constructor(private readonly options: IotBridgeOptions) {
    this.spooler = new Spooler(options.spoolerMaxBytes);
    this.maxInFlight = options.maxInFlightPublishes ?? DEFAULT_MAX_IN_FLIGHT_PUBLISHES;
    this.maxMessageSize = options.maxMessageSizeInBytes ?? DEFAULT_MAX_MESSAGE_SIZE_BYTES;
    const pacing = options.pacing ?? IOT_CORE_PACING;
    if (pacing) this.pace = new PublishPacer(pacing);
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  start(): void {
    const client = mqtt.connect(this.options.brokerUrl, {
      clientId: this.options.clientId,
      clean: false,
      keepalive: 30,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      resubscribe: true,
      ...readBrokerTls(this.options.brokerUrl, this.options.tls),
    });
    this.client = client;
    client.on('connect', () => {
      this.counters.connects += 1;
      this.options.logger.info('connected to the IoT broker', { broker: this.options.brokerUrl, clientId: this.options.clientId });
      for (const filter of this.filterRefs.keys()) this.subscribeOnBroker(filter);
      this.drain();
    });
    client.on('close', () => {
      if (this.counters.connects > this.counters.disconnects) {
        this.counters.disconnects += 1;
        if (!this.options.keepQos0WhenOffline) this.spooler.dropQos0();
        this.options.logger.warn('IoT broker connection lost; spooling until it is back', { spooledBytes: this.spooler.sizeBytes });
      }
    });
    client.on('error', (error) => this.options.logger.warn('IoT broker connection error', { error: error.message }));
    client.on('message', (topic, payload, packet) => {
      this.counters.received += 1;
      for (const { filter, listener } of this.listeners.values()) {
        if (topicMatches(filter, topic)) listener(topic, payload, packet.retain);
      }
    });
  }

  /** Spools a publish; throws PublishRefusedError (the IPC layer turns it into ServiceError). */
  publish(topic: string, payload: Buffer, qos: 0 | 1, retain: boolean): void {
    // With mqtt.spooler.keepQos0WhenOffline false (the default) the nucleus refuses QoS 0 while offline.
    if (qos === 0 && !this.connected && !this.options.keepQos0WhenOffline) throw new PublishRefusedError('QoS 0 publish refused: not connected to AWS IoT Core');
    this.spooler.add(topic, payload, qos, retain);
    this.drain();
  }

  subscribe(filter: string, listener: IotMessageListener): () => void {
    const id = this.nextListenerId++;
    this.listeners.set(id, { filter, listener });
    const refs = this.filterRefs.get(filter) ?? 0;
    this.filterRefs.set(filter, refs + 1);
    if (refs === 0) this.subscribeOnBroker(filter);
    return () => {
      if (!this.listeners.delete(id)) return;
      const left = (this.filterRefs.get(filter) ?? 1) - 1;
      if (left > 0) return void this.filterRefs.set(filter, left);
      this.filterRefs.delete(filter);
      this.subacks.delete(filter);
      if (this.connected) this.client?.unsubscribe(filter);
    };
  }

  async stop(): Promise<void> {
    clearTimeout(this.pacedDrain);
    const client = this.client;
    if (!client) return;
    const inFlight = this.inFlight.size;
    if ((await endMqttClient(client, STOP_TIMEOUT_MS)) === 'forced') {
      this.options.logger.warn('IoT broker connection did not close in time (no PUBACK for what was in flight); closed its socket', { timeoutMs: STOP_TIMEOUT_MS, inFlight });
    }
  }

  /**
   * Resolves once the broker has acknowledged the filter's subscription, as the nucleus answers
   * SubscribeToIoTCore only after its MQTT subscribe completed (MqttProxyIPCAgent, MqttClient.subscribe);
   * a message sent right after the answer then reaches the subscriber. Offline, it resolves at once:
   * the filter is subscribed on the next connect.
   */
  whenSubscribed(filter: string): Promise<void> {
    return this.subacks.get(filter) ?? Promise.resolve();
  }

  private subscribeOnBroker(filter: string): void {
    if (!this.connected) return; // subscribed on (re)connect
    const suback = new Promise<void>((resolve, reject) => {
      this.client!.subscribe(filter, { qos: 1 }, (error, granted) => {
        const refused = error ?? (granted?.some((g) => g.qos === 128) ? new Error('the broker refused the subscription (SUBACK 0x80)') : undefined);
        if (!refused) return resolve();
        this.options.logger.error('broker refused a subscription', { filter, error: refused.message });
        reject(refused);
      });
    });
    suback.catch(() => undefined); // a refusal is logged; callers that wait see it through whenSubscribed
    this.subacks.set(filter, suback);
  }

  private drain(): void {
    while (this.connected && this.inFlight.size < this.maxInFlight) {
      if (this.pacedDrain) return;
      const message = this.spooler.next(this.inFlight);
      if (!message) return;
      const waitMs = this.pace?.waitMs() ?? 0;
      if (waitMs > 0) {
        // Messages wait in the spooler, as on a nucleus, while the pace holds them.
        this.counters.pacedWaits += 1;
        this.pacedDrain = setTimeout(() => {
          this.pacedDrain = undefined;
          this.drain();
        }, Math.ceil(waitMs));
        return;
      }
      this.pace?.take(message.payload.length);
      this.send(message);
    }
  }

  private send(message: SpooledMessage): void {
    this.inFlight.add(message.id);
    // MQTT.js keeps an unacknowledged QoS 1 publish in its outgoing store and resends it after a
    // reconnect, so the callback below fires once the broker really has the message.
    this.client!.publish(message.topic, message.payload, { qos: message.qos, retain: message.retain }, (error) => {
      this.inFlight.delete(message.id);
      if (error) {
        this.counters.publishFailures += 1;
        this.options.logger.warn('publish to the IoT broker failed; it stays spooled', { topic: message.topic, error: errorMessage(error) });
      } else {
        this.counters.published += 1;
        this.spooler.remove(message.id);
      }
      setImmediate(() => this.drain());
    });
  }
}
