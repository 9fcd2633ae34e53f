// A byte-level TCP proxy that misbehaves on request, for chaos tests.
//
// It sits on loopback between a device (the local runtime's MQTT bridge, or any MQTT client) and a
// real broker, and forwards bytes unchanged in both directions until told to fault: a dead link
// (blackhole), abrupt resets, added latency, a bandwidth cap, or refusing new connections as a
// load balancer does while the broker behind it is down. It knows nothing about MQTT.
//
// Each accepted connection gets its own upstream connection and two one-way pipes (up: client to
// broker, down: broker to client). A pipe is a FIFO of chunks drained by one timer, so latency and
// the bandwidth cap never reorder or drop bytes. When a pipe holds more than HIGH_WATER bytes its
// source socket is paused (back-pressure) until the queue drains below LOW_WATER; the pipe also
// waits for 'drain' when its destination socket's own buffer is full.
//
// Test fixture only: it is deliberately a bad network peer and must never ship in a component.
import { createConnection, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

export interface FaultProxyStats {
  /** Connections accepted and proxied since start (connections refused by refuseNew are not counted). */
  connections: number;
  /** Proxied connections whose sockets are not all closed yet. */
  activeConnections: number;
  /** Bytes written to the target (client to broker). */
  bytesUp: number;
  /** Bytes written to clients (broker to client). */
  bytesDown: number;
  /** Connections the proxy destroyed abruptly: by resetAll, and tainted ones when a blackhole ends. */
  resets: number;
  /** Bytes discarded because they arrived while the blackhole was on. */
  blackholedBytes: number;
}

export interface FaultProxyOptions {
  targetHost: string;
  targetPort: number;
  /** 0 or absent: any free port. */
  listenPort?: number;
}

const HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;
/** With a bandwidth cap, bytes go out in slices worth this much time, so the rate is smooth. */
const SLICE_MS = 50;

interface Chunk {
  data: Buffer;
  arrivedAt: number;
}

type Direction = 'up' | 'down';

class Pipe {
  readonly queue: Chunk[] = [];
  queuedBytes = 0;
  timer: NodeJS.Timeout | undefined;
  /** Earliest time the bandwidth cap lets the next slice go. */
  nextAllowedAt = 0;
  sourceEnded = false;
  endForwarded = false;
  pausedForBackPressure = false;
  waitingForDrain = false;

  constructor(
    readonly direction: Direction,
    readonly source: Socket,
    readonly dest: Socket,
  ) {}

  clearTimer(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  dropQueue(): void {
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.clearTimer();
  }
}

class Link {
  readonly up: Pipe;
  readonly down: Pipe;
  /** Bytes were discarded (or a close was swallowed) during a blackhole: the stream is no longer consistent. */
  tainted = false;
  /** Torn down by the proxy; no more forwarding. */
  dead = false;
  openSockets = 2;

  constructor(
    readonly client: Socket,
    readonly upstream: Socket,
  ) {
    this.up = new Pipe('up', client, upstream);
    this.down = new Pipe('down', upstream, client);
  }
}

function abort(socket: Socket): void {
  if (socket.destroyed) return;
  try {
    // RST instead of FIN, like a crashed peer or a middlebox dropping state.
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

export class FaultProxy {
  readonly port: number;
  readonly url: string;

  private readonly links = new Set<Link>();
  /** Sockets accepted while refusing, until they are fully closed. */
  private readonly refused = new Set<Socket>();
  private blackholed = false;
  private refusing = false;
  private latencyMs = 0;
  private bytesPerSecond = 0;
  private closed = false;
  private closing: Promise<void> | undefined;
  private readonly counters: FaultProxyStats = {
    connections: 0,
    activeConnections: 0,
    bytesUp: 0,
    bytesDown: 0,
    resets: 0,
    blackholedBytes: 0,
  };

  private constructor(
    private readonly server: Server,
    private readonly options: FaultProxyOptions,
  ) {
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('fault proxy: server has no TCP address');
    this.port = address.port;
    this.url = `mqtt://127.0.0.1:${this.port}`;
    server.on('connection', (socket) => this.accept(socket));
  }

  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    // allowHalfOpen: the proxy forwards a FIN itself, after the bytes queued before it.
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      server.once('error', onError);
      server.listen(options.listenPort ?? 0, '127.0.0.1', () => {
        server.off('error', onError);
        resolve();
      });
    });
    // Errors after listening (e.g. EMFILE on accept) must not crash the test process.
    server.on('error', () => undefined);
    return new FaultProxy(server, options);
  }

  /**
   * Drop all bytes both ways without closing anything (a dead link: TCP stays up, keep-alives go
   * unanswered). New connections are accepted but nothing flows; FINs and closes are not passed on
   * either. Bytes already queued (latency, bandwidth) are held, as packets in flight would be.
   *
   * A real dead link loses packets and TCP retransmits them once the link heals. This proxy
   * terminates TCP on both sides, so it has already acknowledged what it discards; dropping bytes
   * out of the middle of a stream would corrupt the MQTT framing that follows. Therefore, when the
   * blackhole ends, every connection that had bytes discarded (or a close swallowed) is destroyed
   * abruptly, as a device would eventually see after a long outage; connections that saw no
   * discarded bytes continue and get their held bytes delivered.
   */
  blackhole(on: boolean): void {
    if (this.closed || this.blackholed === on) return;
    this.blackholed = on;
    if (on) return;
    for (const link of [...this.links]) {
      if (link.tainted) {
        this.counters.resets += 1;
        this.killLink(link, true);
      }
    }
    for (const link of this.links) this.pumpBoth(link);
  }

  /** Destroy every current connection abruptly (RST where available). Returns how many were reset. */
  resetAll(): number {
    let count = 0;
    for (const link of [...this.links]) {
      if (link.dead) continue;
      count += 1;
      this.killLink(link, true);
    }
    this.counters.resets += count;
    return count;
  }

  /** Add this many ms of one-way latency to every chunk, both directions, preserving order. 0 = off. Applies to queued bytes too. */
  setLatency(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`fault proxy: latency must be >= 0 ms, got ${ms}`);
    this.latencyMs = ms;
    for (const link of this.links) this.pumpBoth(link);
  }

  /** Cap throughput per direction per connection, bytes per second; 0 = unlimited. Order kept, nothing dropped. */
  setBandwidth(bytesPerSecond: number): void {
    if (!Number.isFinite(bytesPerSecond) || bytesPerSecond < 0) {
      throw new RangeError(`fault proxy: bandwidth must be >= 0 bytes/s, got ${bytesPerSecond}`);
    }
    this.bytesPerSecond = bytesPerSecond;
    for (const link of this.links) {
      link.up.nextAllowedAt = 0;
      link.down.nextAllowedAt = 0;
      this.pumpBoth(link);
    }
  }

  /** Refuse new connections (accept then immediately destroy) while true, as when the broker is down behind a load balancer. */
  refuseNew(on: boolean): void {
    this.refusing = on;
  }

  stats(): FaultProxyStats {
    return { ...this.counters };
  }

  /** Stop listening, destroy every connection, clear every timer. Idempotent. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    const serverClosed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const link of [...this.links]) this.killLink(link, false);
    for (const socket of this.refused) socket.destroy();
    this.refused.clear();
    this.closing = serverClosed;
    return serverClosed;
  }

  private accept(client: Socket): void {
    client.on('error', () => undefined);
    if (this.closed || this.refusing) {
      this.refused.add(client);
      client.once('close', () => this.refused.delete(client));
      client.destroy();
      return;
    }
    const upstream = createConnection({ host: this.options.targetHost, port: this.options.targetPort, allowHalfOpen: true });
    upstream.on('error', () => undefined);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const link = new Link(client, upstream);
    this.links.add(link);
    this.counters.connections += 1;
    this.counters.activeConnections += 1;

    for (const pipe of [link.up, link.down]) {
      pipe.source.on('data', (data: Buffer) => this.onData(link, pipe, data));
      pipe.source.on('end', () => this.onEnd(link, pipe));
      pipe.dest.on('drain', () => {
        if (pipe.waitingForDrain) {
          pipe.waitingForDrain = false;
          this.pump(link, pipe);
        }
      });
    }
    client.on('close', () => this.onSocketClose(link, client));
    upstream.on('close', () => this.onSocketClose(link, upstream));
    // Accepted paused so nothing is read before the handlers are in place.
    client.resume();
  }

  private onData(link: Link, pipe: Pipe, data: Buffer): void {
    if (link.dead) return;
    if (this.blackholed) {
      this.counters.blackholedBytes += data.length;
      link.tainted = true;
      return;
    }
    pipe.queue.push({ data, arrivedAt: performance.now() });
    pipe.queuedBytes += data.length;
    if (pipe.timer === undefined && !pipe.waitingForDrain) this.pump(link, pipe);
    if (pipe.queuedBytes > HIGH_WATER && !pipe.pausedForBackPressure && !pipe.source.destroyed) {
      pipe.pausedForBackPressure = true;
      pipe.source.pause();
    }
  }

  private onEnd(link: Link, pipe: Pipe): void {
    if (link.dead) return;
    pipe.sourceEnded = true;
    if (this.blackholed) {
      // A dead link does not carry the FIN; the connection cannot be resumed consistently.
      link.tainted = true;
      return;
    }
    this.pump(link, pipe);
  }

  private onSocketClose(link: Link, socket: Socket): void {
    link.openSockets -= 1;
    if (link.openSockets === 0) {
      this.forget(link);
      return;
    }
    if (link.dead) return;
    // Nothing can be delivered to the closed socket any more.
    const into = link.up.dest === socket ? link.up : link.down;
    const outOf = into === link.up ? link.down : link.up;
    into.dropQueue();
    if (this.blackholed) {
      // The far side of a dead link never hears about the close.
      link.tainted = true;
      return;
    }
    if (!outOf.sourceEnded) {
      // Closed without a FIN (error or reset): pass the abortive close on.
      link.dead = true;
      link.up.dropQueue();
      link.down.dropQueue();
      const other = socket === link.client ? link.upstream : link.client;
      other.destroy();
      return;
    }
    // It ended cleanly: finish delivering what it sent, then the FIN (pump does both).
    this.pump(link, outOf);
  }

  private pumpBoth(link: Link): void {
    this.pump(link, link.up);
    this.pump(link, link.down);
  }

  /** Deliver what the latency and the bandwidth cap allow now, then schedule the rest. Strictly FIFO. */
  private pump(link: Link, pipe: Pipe): void {
    pipe.clearTimer();
    if (link.dead || this.closed || this.blackholed || pipe.waitingForDrain) return;
    const rate = this.bytesPerSecond;
    while (pipe.queue.length > 0) {
      if (pipe.dest.destroyed) {
        // Writing to a closed peer: real TCP answers with RST, so reset the sender.
        pipe.dropQueue();
        abort(pipe.source);
        return;
      }
      if (pipe.dest.writableNeedDrain) {
        pipe.waitingForDrain = true;
        break;
      }
      const now = performance.now();
      const head = pipe.queue[0]!;
      let dueAt = head.arrivedAt + this.latencyMs;
      if (rate > 0) dueAt = Math.max(dueAt, pipe.nextAllowedAt);
      if (dueAt > now) {
        pipe.timer = setTimeout(() => {
          pipe.timer = undefined;
          this.pump(link, pipe);
        }, Math.max(1, Math.ceil(dueAt - now)));
        break;
      }
      let out: Buffer;
      if (rate > 0) {
        const slice = Math.max(1, Math.floor((rate * SLICE_MS) / 1000));
        if (head.data.length > slice) {
          out = head.data.subarray(0, slice);
          head.data = head.data.subarray(slice);
        } else {
          out = head.data;
          pipe.queue.shift();
        }
        pipe.nextAllowedAt = Math.max(pipe.nextAllowedAt, now) + (out.length * 1000) / rate;
      } else {
        out = head.data;
        pipe.queue.shift();
      }
      pipe.queuedBytes -= out.length;
      if (pipe.direction === 'up') this.counters.bytesUp += out.length;
      else this.counters.bytesDown += out.length;
      pipe.dest.write(out);
    }
    if (pipe.queue.length === 0 && pipe.sourceEnded && !pipe.endForwarded && !pipe.dest.destroyed) {
      pipe.endForwarded = true;
      pipe.dest.end();
    }
    if (pipe.pausedForBackPressure && pipe.queuedBytes <= LOW_WATER) {
      pipe.pausedForBackPressure = false;
      pipe.source.resume();
    }
  }

  /** Tear a connection down; reset = RST both sockets (a fault), else a plain destroy (shutdown). */
  private killLink(link: Link, reset: boolean): void {
    link.dead = true;
    link.up.dropQueue();
    link.down.dropQueue();
    for (const socket of [link.client, link.upstream]) {
      if (reset) abort(socket);
      else socket.destroy();
    }
  }

  private forget(link: Link): void {
    if (!this.links.delete(link)) return;
    link.dead = true;
    link.up.dropQueue();
    link.down.dropQueue();
    this.counters.activeConnections -= 1;
  }
}
