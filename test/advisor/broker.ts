// The advisor's broker: an MQTT 5 / 3.1.1 server that misbehaves on purpose.
//
// It is not a broker in the routing sense (it forwards nothing between clients). It accepts
// connections over TCP or TLS, parses packets with mqtt-packet, and lets each test case decide,
// packet by packet, how to answer: withhold the CONNACK, grant it with any sessionPresent, drop or
// delay PUBACK/SUBACK/PINGRESP, send a DISCONNECT with an MQTT 5 reason code, or push a PUBLISH to
// the device. Everything that crosses the wire, both ways, is recorded with a timestamp, so a case
// judges the device on observed packets and never on what the device says about itself.
//
// Test fixture only: it is deliberately a bad peer and must never ship in a component.
import { createServer as createTcpServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { performance } from 'node:perf_hooks';
import { generate, parser as createParser } from 'mqtt-packet';
import type { IConnectPacket, IPingreqPacket, IPublishPacket, ISubscribePacket, Packet } from 'mqtt-packet';

/** One observation: a socket opening or closing, or a packet in either direction. */
export interface BrokerEvent {
  /** Milliseconds since the broker started listening. */
  at: number;
  /** Connection number, 1-based, in accept order. */
  conn: number;
  kind: 'open' | 'close' | 'in' | 'out' | 'tcp-open' | 'tcp-close' | 'tls-error' | 'protocol-error';
  cmd?: Packet['cmd'];
  messageId?: number;
  dup?: boolean;
  qos?: number;
  topic?: string;
  /** CONNECT: Clean Start (MQTT 5) / Clean Session (3.1.1). */
  clean?: boolean;
  keepalive?: number;
  sessionExpiryInterval?: number;
  protocolVersion?: number;
  sessionPresent?: boolean;
  reasonCode?: number;
  subscriptions?: string[];
  detail?: string;
}

/**
 * How the broker answers. Each hook replaces the conforming default; a hook that does nothing
 * withholds the answer. Defaults: CONNACK success with sessionPresent false, PUBACK for QoS 1,
 * SUBACK granting the requested QoS, PINGRESP.
 */
export interface BrokerBehaviour {
  onConnect?(conn: AdvisorConnection, packet: IConnectPacket): void;
  onPublish?(conn: AdvisorConnection, packet: IPublishPacket): void;
  onSubscribe?(conn: AdvisorConnection, packet: ISubscribePacket): void;
  onPingreq?(conn: AdvisorConnection, packet: IPingreqPacket): void;
  /** Any other packet from the device (PUBACK, DISCONNECT, UNSUBSCRIBE, ...); default: ignored. */
  onOther?(conn: AdvisorConnection, packet: Packet): void;
}

export interface BrokerTls {
  cert: string;
  key: string;
}

/** MQTT 5 DISCONNECT reason codes the cases use (MQTT 5.0, 3.14.2.1). */
export const DisconnectReason = {
  ServerBusy: 0x89,
  SessionTakenOver: 0x8e,
} as const;

export class AdvisorConnection {
  protocolVersion = 5;
  clientId = '';
  private closed = false;

  constructor(
    readonly id: number,
    private readonly socket: Socket,
    private readonly broker: AdvisorBroker,
  ) {}

  get isOpen(): boolean {
    return !this.closed && !this.socket.destroyed;
  }

  send(packet: Packet): void {
    if (!this.isOpen) return;
    const bytes = generate(packet, { protocolVersion: this.protocolVersion });
    this.broker.record(this.id, 'out', packet);
    this.socket.write(bytes);
  }

  connack(sessionPresent: boolean, reasonCode = 0): void {
    // MQTT 3.1.1 carries a return code where MQTT 5 carries a reason code.
    const code = this.protocolVersion === 5 ? { reasonCode } : { returnCode: reasonCode };
    this.send({ cmd: 'connack', sessionPresent, ...code });
  }

  puback(messageId: number): void {
    this.send({ cmd: 'puback', messageId, ...(this.protocolVersion === 5 ? { reasonCode: 0 } : {}) });
  }

  suback(packet: ISubscribePacket): void {
    this.send({ cmd: 'suback', messageId: packet.messageId, granted: packet.subscriptions.map((s) => s.qos) });
  }

  pingresp(): void {
    this.send({ cmd: 'pingresp' });
  }

  publish(topic: string, payload: Buffer, messageId: number, options: { qos?: 0 | 1; dup?: boolean } = {}): void {
    this.send({ cmd: 'publish', topic, payload, qos: options.qos ?? 1, dup: options.dup ?? false, retain: false, messageId });
  }

  /** A server DISCONNECT (MQTT 5 only; a 3.1.1 server can only close) followed by closing the socket. */
  disconnect(reasonCode: number): void {
    if (this.protocolVersion === 5) this.send({ cmd: 'disconnect', reasonCode });
    this.closed = true;
    this.socket.end();
  }

  /** Close without a DISCONNECT, as a crashed broker or a lost link would. */
  drop(): void {
    this.closed = true;
    this.socket.destroy();
  }
}

type Waiter = { predicate: (event: BrokerEvent) => boolean; resolve: (event: BrokerEvent) => void };

export class AdvisorBroker {
  readonly events: BrokerEvent[] = [];
  readonly connections: AdvisorConnection[] = [];
  port = 0;
  /** TCP connections accepted, including those whose TLS handshake never completed. */
  tcpConnections = 0;
  private readonly startedAt = performance.now();
  private readonly waiters = new Set<Waiter>();
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;

  constructor(
    private behaviour: BrokerBehaviour = {},
    private readonly tls?: BrokerTls,
  ) {
    if (tls) {
      const server = createTlsServer({ cert: tls.cert, key: tls.key }, (socket) => this.accept(socket));
      // A device that refuses our certificate aborts the handshake: that is evidence, not a crash.
      server.on('tlsClientError', (error) => this.push({ at: this.now(), conn: 0, kind: 'tls-error', detail: error.message }));
      this.server = server;
    } else {
      this.server = createTcpServer((socket) => this.accept(socket));
    }
    this.server.on('error', () => undefined);
    // For TLS this fires before the handshake, so it also sees devices that refuse our certificate.
    this.server.on('connection', (raw: Socket) => {
      this.tcpConnections += 1;
      if (!tls) return;
      const attempt = this.tcpConnections;
      this.sockets.add(raw);
      this.push({ at: this.now(), conn: 0, kind: 'tcp-open', detail: `tcp ${attempt}` });
      raw.on('error', () => undefined);
      raw.once('close', () => {
        this.sockets.delete(raw);
        this.push({ at: this.now(), conn: 0, kind: 'tcp-close', detail: `tcp ${attempt}` });
      });
    });
  }

  static async start(behaviour: BrokerBehaviour = {}, tls?: BrokerTls): Promise<AdvisorBroker> {
    const broker = new AdvisorBroker(behaviour, tls);
    await new Promise<void>((resolve, reject) => {
      broker.server.once('error', reject);
      broker.server.listen(0, '127.0.0.1', () => {
        broker.server.off('error', reject);
        resolve();
      });
    });
    broker.port = (broker.server.address() as AddressInfo).port;
    return broker;
  }

  url(host = '127.0.0.1'): string {
    return `${this.tls ? 'mqtts' : 'mqtt'}://${host}:${this.port}`;
  }

  /** Switch behaviour mid-case (e.g. stop withholding CONNACK). */
  setBehaviour(behaviour: BrokerBehaviour): void {
    this.behaviour = behaviour;
  }

  now(): number {
    return Math.round((performance.now() - this.startedAt) * 10) / 10;
  }

  /** Events matching the filter, in order. */
  find(predicate: (event: BrokerEvent) => boolean): BrokerEvent[] {
    return this.events.filter(predicate);
  }

  /** The first event (already seen or future) matching the predicate; rejects with what was seen instead. */
  waitFor(what: string, predicate: (event: BrokerEvent) => boolean, timeoutMs: number, fromIndex = 0): Promise<BrokerEvent> {
    const seen = this.events.slice(fromIndex).find(predicate);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        predicate,
        resolve: (event) => {
          clearTimeout(timer);
          resolve(event);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`advisor broker: no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  /** Resolves after `ms` of wall time; cases use it to observe that something does NOT happen. */
  static sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  async close(): Promise<void> {
    for (const waiter of this.waiters) this.waiters.delete(waiter);
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  record(conn: number, kind: 'in' | 'out', packet: Packet): void {
    const event: BrokerEvent = { at: this.now(), conn, kind, cmd: packet.cmd };
    if (packet.messageId !== undefined) event.messageId = packet.messageId;
    switch (packet.cmd) {
      case 'connect':
        Object.assign(event, {
          clean: packet.clean,
          keepalive: packet.keepalive,
          protocolVersion: packet.protocolVersion,
          ...(packet.properties?.sessionExpiryInterval !== undefined ? { sessionExpiryInterval: packet.properties.sessionExpiryInterval } : {}),
        });
        break;
      case 'connack':
        Object.assign(event, { sessionPresent: packet.sessionPresent, reasonCode: packet.reasonCode ?? packet.returnCode });
        break;
      case 'publish':
        Object.assign(event, { topic: packet.topic, qos: packet.qos, dup: packet.dup });
        break;
      case 'subscribe':
        event.subscriptions = packet.subscriptions.map((s) => s.topic);
        break;
      case 'disconnect':
      case 'puback':
        if (packet.reasonCode !== undefined) event.reasonCode = packet.reasonCode;
        break;
      default:
        break;
    }
    this.push(event);
  }

  private push(event: BrokerEvent): void {
    this.events.push(event);
    for (const waiter of [...this.waiters]) {
      if (waiter.predicate(event)) {
        this.waiters.delete(waiter);
        waiter.resolve(event);
      }
    }
  }

  private accept(socket: Socket): void {
    const conn = new AdvisorConnection(this.connections.length + 1, socket, this);
    this.connections.push(conn);
    this.sockets.add(socket);
    socket.setNoDelay(true);
    this.push({ at: this.now(), conn: conn.id, kind: 'open' });
    const packetParser = createParser({ protocolVersion: 5 });
    packetParser.on('packet', (packet: Packet) => {
      if (packet.cmd === 'connect') {
        conn.protocolVersion = packet.protocolVersion ?? 4;
        conn.clientId = packet.clientId;
        // The parser decodes what follows CONNECT by the version the client announced.
        (packetParser as unknown as { settings: { protocolVersion: number } }).settings = { protocolVersion: conn.protocolVersion };
      }
      this.record(conn.id, 'in', packet);
      this.dispatch(conn, packet);
    });
    packetParser.on('error', (error: Error) => {
      this.push({ at: this.now(), conn: conn.id, kind: 'protocol-error', detail: error.message });
      socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => packetParser.parse(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.push({ at: this.now(), conn: conn.id, kind: 'close' });
    });
  }

  private dispatch(conn: AdvisorConnection, packet: Packet): void {
    const b = this.behaviour;
    switch (packet.cmd) {
      case 'connect':
        return b.onConnect ? b.onConnect(conn, packet) : conn.connack(false);
      case 'publish':
        if (b.onPublish) return b.onPublish(conn, packet);
        if (packet.qos === 1 && packet.messageId !== undefined) conn.puback(packet.messageId);
        return;
      case 'subscribe':
        return b.onSubscribe ? b.onSubscribe(conn, packet) : conn.suback(packet);
      case 'pingreq':
        return b.onPingreq ? b.onPingreq(conn, packet) : conn.pingresp();
      default:
        b.onOther?.(conn, packet);
    }
  }
}
