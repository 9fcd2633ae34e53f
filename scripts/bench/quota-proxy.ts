import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { IOT_CORE_PACING } from '../../components/shared/rate-limiter';

/**
 * A loopback TCP proxy between a device's MQTT connection and the broker that stands in for two
 * things the bench needs and mosquitto cannot do:
 *
 * - an outage: down() resets every connection and refuses new ones until up();
 * - AWS IoT Core's per-connection quotas, paced the way the nucleus paces its own connection:
 *   client-to-broker PUBLISH packets are delayed (never dropped) so that a connection sends at most
 *   `publishesPerSec` publishes and `bytesPerSec` bytes of PUBLISH packets per second
 *   (AWS IoT Core quotas, "Publish requests per second per connection" 100 and "Throughput per
 *   connection" 512 KiB/s).
 *
 * It frames MQTT packets from their fixed header only (MQTT 3.1.1 2.2 / MQTT 5.0 2.1), so it works
 * for both protocol levels and forwards every byte unchanged. Packets of one connection leave in
 * the order they came, so a PINGREQ behind a paced PUBLISH waits too, as it would in the nucleus's
 * single outgoing queue.
 */
export const IOT_CORE_PUBLISHES_PER_SEC = IOT_CORE_PACING.publishesPerSec;
export const IOT_CORE_BYTES_PER_SEC = IOT_CORE_PACING.bytesPerSec;

export interface QuotaProxyStats {
  connections: number;
  publishes: number;
  /** Whole PUBLISH packets, the figure the pacing applies to. */
  publishPacketBytes: number;
  /** Application payload of PUBLISH packets whose topic starts with payloadTopicPrefix. */
  payloadBytes: number;
  payloadPublishes: number;
  /** performance.now() of the first payload publish forwarded since the last resetFirstPayload(). */
  firstPayloadAt: number | null;
}

export interface QuotaProxyOptions {
  targetPort: number;
  targetHost?: string;
  /** Only publishes to topics with this prefix count as payload (data envelopes, not health or status). */
  payloadTopicPrefix?: string;
}

interface Pacing {
  publishesPerSec: number;
  bytesPerSec: number;
}

/** Stop reading from the client while this much waits for the pacer: TCP back-pressure does the rest. */
const QUEUE_HIGH_WATER = 1024 * 1024;
const PUBLISH = 3;
const CONNECT = 1;

class TokenBucket {
  private tokens: number;
  private last = performance.now();

  constructor(private readonly perSec: number) {
    // Empty at the start: over any span from the connection on, no more than perSec x seconds goes
    // out, so a measured utilization can never exceed 100% by riding an initial burst.
    this.tokens = 0;
  }

  /** Ms until `cost` tokens are there. A burst after an idle spell is at most one second's worth. */
  wait(cost: number): number {
    const now = performance.now();
    this.tokens = Math.min(this.perSec, this.tokens + ((now - this.last) / 1000) * this.perSec);
    this.last = now;
    // A packet bigger than a second's worth would never fit; it goes once the bucket is full.
    const needed = Math.min(cost, this.perSec);
    return this.tokens >= needed ? 0 : Math.ceil(((needed - this.tokens) / this.perSec) * 1000);
  }

  /** Spends after wait() said 0; the balance may go negative for an oversized packet, which delays the next. */
  charge(cost: number): void {
    this.tokens -= cost;
  }
}

class Link {
  private inbound: Buffer = Buffer.alloc(0);
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private protocolLevel = 4;
  private readonly publishes: TokenBucket | undefined;
  private readonly bytes: TokenBucket | undefined;

  constructor(
    readonly client: Socket,
    readonly upstream: Socket,
    pacing: Pacing | undefined,
    private readonly stats: QuotaProxyStats,
    private readonly payloadTopicPrefix: string,
  ) {
    this.publishes = pacing ? new TokenBucket(pacing.publishesPerSec) : undefined;
    this.bytes = pacing ? new TokenBucket(pacing.bytesPerSec) : undefined;
    client.on('data', (chunk: Buffer) => this.onClientData(chunk));
    upstream.on('data', (chunk: Buffer) => {
      if (!client.write(chunk)) upstream.pause();
    });
    client.on('drain', () => upstream.resume());
    upstream.on('drain', () => this.pump());
  }

  destroy(): void {
    if (this.timer) clearTimeout(this.timer);
    this.client.destroy();
    this.upstream.destroy();
  }

  private onClientData(chunk: Buffer): void {
    this.inbound = this.inbound.length === 0 ? chunk : Buffer.concat([this.inbound, chunk]);
    for (;;) {
      const size = packetSize(this.inbound);
      if (size === undefined || this.inbound.length < size) break;
      const packet = this.inbound.subarray(0, size);
      this.inbound = this.inbound.subarray(size);
      this.queue.push(packet);
      this.queuedBytes += packet.length;
    }
    if (this.queuedBytes > QUEUE_HIGH_WATER) this.client.pause();
    this.pump();
  }

  private pump(): void {
    if (this.timer) return;
    while (this.queue.length > 0) {
      if (this.upstream.writableNeedDrain) return;
      const packet = this.queue[0];
      const type = packet[0] >> 4;
      if (type === PUBLISH && this.publishes && this.bytes) {
        // Both quotas are checked before either is charged, so a wait never spends tokens.
        const wait = Math.max(this.publishes.wait(1), this.bytes.wait(packet.length));
        if (wait > 0) {
          this.timer = setTimeout(() => {
            this.timer = undefined;
            this.pump();
          }, wait);
          return;
        }
        this.publishes.charge(1);
        this.bytes.charge(packet.length);
      }
      this.queue.shift();
      this.queuedBytes -= packet.length;
      if (type === CONNECT) this.protocolLevel = connectProtocolLevel(packet) ?? this.protocolLevel;
      if (type === PUBLISH) this.count(packet);
      this.upstream.write(packet);
    }
    if (this.client.isPaused() && this.queuedBytes < QUEUE_HIGH_WATER / 4) this.client.resume();
  }

  private count(packet: Buffer): void {
    this.stats.publishes += 1;
    this.stats.publishPacketBytes += packet.length;
    const parsed = publishParts(packet, this.protocolLevel);
    if (parsed && parsed.topic.startsWith(this.payloadTopicPrefix)) {
      this.stats.firstPayloadAt ??= performance.now();
      this.stats.payloadBytes += parsed.payloadBytes;
      this.stats.payloadPublishes += 1;
    }
  }
}

export class QuotaProxy {
  readonly stats: QuotaProxyStats = { connections: 0, publishes: 0, publishPacketBytes: 0, payloadBytes: 0, payloadPublishes: 0, firstPayloadAt: null };
  private readonly links = new Set<Link>();
  private pacing: Pacing | undefined;
  private reachable = true;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly options: QuotaProxyOptions,
  ) {}

  static async start(options: QuotaProxyOptions): Promise<QuotaProxy> {
    let proxy: QuotaProxy | undefined;
    const server = createServer((client) => proxy!.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    proxy = new QuotaProxy(server, (server.address() as { port: number }).port, options);
    return proxy;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  /** Paces connections made from now on, and the ones open now from their next connection. */
  setPacing(pacing: Pacing | undefined): void {
    this.pacing = pacing;
  }

  /** The broker becomes unreachable: every connection is reset, new ones are refused. */
  down(): void {
    this.reachable = false;
    for (const link of this.links) link.destroy();
    this.links.clear();
  }

  up(): void {
    this.reachable = true;
  }

  /** Starts a new window for stats.firstPayloadAt. */
  resetFirstPayload(): void {
    this.stats.firstPayloadAt = null;
  }

  /** Resets the open connections (clients reconnect), so a new pacing applies at once. */
  resetConnections(): void {
    for (const link of this.links) link.destroy();
    this.links.clear();
  }

  async close(): Promise<void> {
    this.down();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    if (!this.reachable) {
      client.destroy();
      return;
    }
    client.setNoDelay(true);
    const upstream = createConnection({ port: this.options.targetPort, host: this.options.targetHost ?? '127.0.0.1' });
    upstream.setNoDelay(true);
    this.stats.connections += 1;
    const link = new Link(client, upstream, this.pacing, this.stats, this.options.payloadTopicPrefix ?? '');
    this.links.add(link);
    const close = (): void => {
      if (!this.links.delete(link)) return;
      link.destroy();
    };
    for (const socket of [client, upstream]) {
      socket.on('error', close);
      socket.on('close', close);
    }
  }
}

/** Bytes of the first packet in `buffer`, or undefined while its fixed header is incomplete. */
export function packetSize(buffer: Buffer): number | undefined {
  let multiplier = 1;
  let remaining = 0;
  for (let i = 1; i <= 4; i += 1) {
    if (i >= buffer.length) return undefined;
    const byte = buffer[i];
    remaining += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) return 1 + i + remaining;
    multiplier *= 128;
  }
  throw new Error('malformed MQTT remaining length (more than 4 bytes)');
}

function varint(buffer: Buffer, offset: number): { value: number; bytes: number } {
  let value = 0;
  let multiplier = 1;
  for (let i = 0; i < 4; i += 1) {
    const byte = buffer[offset + i];
    value += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) return { value, bytes: i + 1 };
    multiplier *= 128;
  }
  return { value, bytes: 4 };
}

function connectProtocolLevel(packet: Buffer): number | undefined {
  const header = varint(packet, 1);
  const start = 1 + header.bytes;
  const nameLength = packet.readUInt16BE(start);
  return packet[start + 2 + nameLength];
}

/** Topic and payload size of a PUBLISH packet (MQTT 5 adds a properties block after the packet id). */
export function publishParts(packet: Buffer, protocolLevel: number): { topic: string; payloadBytes: number } | undefined {
  try {
    const header = varint(packet, 1);
    let offset = 1 + header.bytes;
    const topicLength = packet.readUInt16BE(offset);
    const topic = packet.toString('utf8', offset + 2, offset + 2 + topicLength);
    offset += 2 + topicLength;
    const qos = (packet[0] >> 1) & 3;
    if (qos > 0) offset += 2;
    if (protocolLevel >= 5) {
      const properties = varint(packet, offset);
      offset += properties.bytes + properties.value;
    }
    return { topic, payloadBytes: packet.length - offset };
  } catch {
    return undefined;
  }
}
