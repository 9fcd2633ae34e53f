// The chaos-test fault proxy, against a real local echo server and real client sockets.
// Durations are only checked from below (a slow machine may take longer, never shorter), and every
// wait has a generous timeout, so these tests do not flake on a loaded 2-core box.
import { describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createConnection, createServer } from 'node:net';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { FaultProxy } from '../chaos/fault-proxy';

const WAIT_MS = 20_000;

async function waitFor(what: string, probe: () => boolean, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

interface Echo {
  port: number;
  accepted(): number;
  open(): number;
  close(): Promise<void>;
}

/** A TCP echo server; when a client half-closes, it echoes what is left and half-closes too. */
async function startEcho(): Promise<Echo> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return {
    port: address.port,
    accepted: () => accepted,
    open: () => sockets.size,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

class Client {
  readonly chunks: Buffer[] = [];
  bytes = 0;
  connected = false;
  ended = false;
  closed = false;
  error: Error | undefined;

  constructor(readonly socket: Socket) {
    socket.on('connect', () => (this.connected = true));
    socket.on('data', (data: Buffer) => {
      this.chunks.push(data);
      this.bytes += data.length;
    });
    socket.on('end', () => (this.ended = true));
    socket.on('error', (err) => (this.error = err));
    socket.on('close', () => (this.closed = true));
  }

  received(): Buffer {
    return Buffer.concat(this.chunks);
  }

  /** Send and wait until at least `until` bytes have been received in total. */
  async roundTrip(data: string | Buffer, until: number): Promise<void> {
    this.socket.write(data);
    await waitFor(`${until} bytes back`, () => this.bytes >= until || this.closed);
    assert.equal(this.closed, false, 'connection closed during a round trip');
  }
}

/** Open a client socket without waiting for anything. */
function openClient(port: number): Client {
  return new Client(createConnection({ host: '127.0.0.1', port }));
}

/** Open a client socket and wait until it is connected. */
async function connectClient(port: number): Promise<Client> {
  const client = openClient(port);
  await waitFor('client to connect', () => client.connected || client.closed);
  assert.equal(client.closed, false, `client could not connect: ${client.error?.message}`);
  return client;
}

async function setup(t: TestContext): Promise<{ echo: Echo; proxy: FaultProxy; clients: Client[]; connect(): Promise<Client> }> {
  const echo = await startEcho();
  const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: echo.port, listenPort: 0 });
  const clients: Client[] = [];
  t.after(async () => {
    for (const client of clients) client.socket.destroy();
    await proxy.close();
    await echo.close();
  });
  return {
    echo,
    proxy,
    clients,
    connect: async () => {
      const client = await connectClient(proxy.port);
      clients.push(client);
      return client;
    },
  };
}

/** Write a payload in pieces, half-close, and resolve with everything echoed back once the far end half-closes. */
async function echoAll(client: Client, payload: Buffer, pieceSize = 64 * 1024): Promise<Buffer> {
  for (let offset = 0; offset < payload.length; offset += pieceSize) {
    client.socket.write(payload.subarray(offset, offset + pieceSize));
  }
  client.socket.end();
  await waitFor('the echo to end', () => client.ended || client.closed, 60_000);
  assert.equal(client.error, undefined, `client error: ${client.error?.message}`);
  return client.received();
}

describe('FaultProxy: transparent forwarding', () => {
  test('start reports its port and an mqtt:// url on loopback', async (t) => {
    const { proxy } = await setup(t);
    assert.ok(proxy.port > 0);
    assert.equal(proxy.url, `mqtt://127.0.0.1:${proxy.port}`);
  });

  test('a large random payload passes through unchanged both ways, half-close is forwarded, and stats count it', async (t) => {
    const { proxy, connect } = await setup(t);
    const payload = randomBytes(4 * 1024 * 1024 + 17);
    const client = await connect();
    const back = await echoAll(client, payload);
    assert.equal(back.length, payload.length);
    assert.equal(sha256(back), sha256(payload));
    const stats = proxy.stats();
    assert.equal(stats.connections, 1);
    assert.equal(stats.bytesUp, payload.length);
    assert.equal(stats.bytesDown, payload.length);
    assert.equal(stats.resets, 0);
    assert.equal(stats.blackholedBytes, 0);
    await waitFor('the connection to be gone', () => proxy.stats().activeConnections === 0);
  });

  test('concurrent connections are kept apart', async (t) => {
    const { proxy, connect } = await setup(t);
    const clients = await Promise.all([connect(), connect(), connect()]);
    // A client's connect and the proxy's accept are separate events, possibly in separate turns.
    await waitFor('the proxy to hold three connections', () => proxy.stats().activeConnections === 3);
    const payloads = clients.map(() => randomBytes(512 * 1024));
    const backs = await Promise.all(clients.map((client, i) => echoAll(client, payloads[i]!, 4096)));
    backs.forEach((back, i) => assert.equal(sha256(back), sha256(payloads[i]!), `connection ${i}`));
    assert.equal(proxy.stats().connections, 3);
    assert.equal(proxy.stats().bytesUp, 3 * 512 * 1024);
  });

  test('a client is closed without data when the target is down', async (t) => {
    // A port that was free a moment ago and has nothing listening on it now.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', () => resolve()));
    const deadPort = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: deadPort });
    t.after(() => proxy.close());
    const client = openClient(proxy.port);
    t.after(() => client.socket.destroy());
    client.socket.write('CONNECT');
    await waitFor('the client to be closed', () => client.closed);
    assert.equal(client.bytes, 0);
    await waitFor('no active connection', () => proxy.stats().activeConnections === 0);
    assert.equal(proxy.stats().bytesDown, 0);
  });
});

describe('FaultProxy: blackhole', () => {
  test('stops delivery without closing, then kills only the tainted connection on recovery', async (t) => {
    const { echo, proxy, connect } = await setup(t);
    const tainted = await connect();
    const idle = await connect();
    await tainted.roundTrip('ping', 4);
    await idle.roundTrip('ping', 4);

    proxy.blackhole(true);
    // New connections are still accepted while the link is dead.
    const during = await connect();
    tainted.socket.write('lost');
    await waitFor('the proxy to discard the bytes', () => proxy.stats().blackholedBytes >= 4);
    await sleep(300);
    assert.equal(tainted.bytes, 4, 'nothing must come back through a blackhole');
    assert.equal(tainted.closed, false, 'a blackhole closes nothing');
    assert.equal(idle.closed, false);
    assert.equal(during.closed, false);
    assert.equal(proxy.stats().blackholedBytes, 4);
    assert.equal(proxy.stats().resets, 0);

    proxy.blackhole(false);
    await waitFor('the tainted connection to be closed', () => tainted.closed);
    assert.equal(tainted.bytes, 4, 'the discarded bytes must never arrive');
    assert.equal(proxy.stats().resets, 1);

    // Connections that lost nothing carry on.
    await idle.roundTrip('still here', 4 + 10);
    assert.equal(idle.received().toString(), 'pingstill here');
    await during.roundTrip('late', 4);
    assert.equal(during.received().toString(), 'late');
    // And one opened after recovery works.
    const after = await connect();
    await after.roundTrip('fresh', 5);
    assert.equal(after.received().toString(), 'fresh');
    assert.equal(idle.closed || during.closed || after.closed, false);
    assert.equal(echo.accepted(), 4);
    assert.equal(proxy.stats().connections, 4);
  });

  test('a close during the blackhole is not passed on until recovery', async (t) => {
    const { echo, proxy, connect } = await setup(t);
    const client = await connect();
    await client.roundTrip('ping', 4);
    proxy.blackhole(true);
    client.socket.destroy();
    await waitFor('the client side to close', () => client.closed);
    await sleep(300);
    assert.equal(echo.open(), 1, 'the broker side must not hear about a close over a dead link');
    proxy.blackhole(false);
    await waitFor('the broker side to be closed', () => echo.open() === 0);
    await waitFor('no active connection', () => proxy.stats().activeConnections === 0);
  });
});

describe('FaultProxy: resetAll', () => {
  test('destroys every current connection and the proxy keeps accepting', async (t) => {
    const { echo, proxy, connect } = await setup(t);
    const a = await connect();
    const b = await connect();
    await a.roundTrip('a', 1);
    await b.roundTrip('b', 1);
    assert.equal(proxy.resetAll(), 2);
    await waitFor('both clients to see the close', () => a.closed && b.closed);
    await waitFor('the broker side to close', () => echo.open() === 0);
    await waitFor('no active connection', () => proxy.stats().activeConnections === 0);
    assert.equal(proxy.stats().resets, 2);
    assert.equal(proxy.resetAll(), 0);

    const c = await connect();
    await c.roundTrip('c', 1);
    assert.equal(c.received().toString(), 'c');
    assert.equal(proxy.stats().activeConnections, 1);
  });
});

describe('FaultProxy: latency', () => {
  test('delays each direction by at least the set time and keeps the bytes in order', async (t) => {
    const { proxy, connect } = await setup(t);
    const latency = 300;
    proxy.setLatency(latency);
    const client = await connect();
    const started = performance.now();
    await client.roundTrip('x', 1);
    const elapsed = performance.now() - started;
    // Up and down are each delayed, so the round trip takes at least twice the latency.
    assert.ok(elapsed >= 2 * latency - 1, `round trip took ${elapsed.toFixed(1)} ms, expected >= ${2 * latency}`);

    // Many pieces, more than the back-pressure threshold: all arrive, in order.
    proxy.setLatency(20);
    const payload = randomBytes(3 * 1024 * 1024);
    const back = (await echoAll(client, payload, 1000)).subarray(1);
    assert.equal(back.length, payload.length);
    assert.equal(sha256(back), sha256(payload));
  });
});

describe('FaultProxy: bandwidth', () => {
  test('200 KiB at 100 KiB/s takes at least 1.5 s and arrives intact', async (t) => {
    const { proxy, connect } = await setup(t);
    proxy.setBandwidth(100 * 1024);
    const client = await connect();
    const payload = randomBytes(200 * 1024);
    const started = performance.now();
    const back = await echoAll(client, payload, 8 * 1024);
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 1500, `200 KiB took ${elapsed.toFixed(0)} ms at 100 KiB/s`);
    assert.equal(back.length, payload.length);
    assert.equal(sha256(back), sha256(payload));
    assert.equal(proxy.stats().bytesUp, payload.length);
    assert.equal(proxy.stats().bytesDown, payload.length);
  });
});

describe('FaultProxy: refuseNew', () => {
  test('new connections are closed without data while existing ones keep working', async (t) => {
    const { echo, proxy, connect, clients } = await setup(t);
    const existing = await connect();
    await existing.roundTrip('one', 3);

    proxy.refuseNew(true);
    const refused = openClient(proxy.port);
    clients.push(refused);
    refused.socket.write('hello?');
    await waitFor('the refused client to be closed', () => refused.closed);
    assert.equal(refused.bytes, 0);
    assert.equal(echo.accepted(), 1, 'a refused connection must never reach the target');
    await existing.roundTrip('two', 6);
    assert.equal(existing.received().toString(), 'onetwo');

    proxy.refuseNew(false);
    const later = await connect();
    await later.roundTrip('three', 5);
    assert.equal(later.received().toString(), 'three');
    assert.equal(echo.accepted(), 2);
    assert.equal(proxy.stats().connections, 2);
  });
});

describe('FaultProxy: close', () => {
  test('closes every connection and stops listening', async (t) => {
    const { echo, proxy, connect } = await setup(t);
    proxy.setLatency(10_000);
    const client = await connect();
    client.socket.write('held back by latency');
    await proxy.close();
    await waitFor('the client to be closed', () => client.closed);
    await waitFor('the broker side to be closed', () => echo.open() === 0);
    assert.equal(client.bytes, 0);
    await waitFor('no active connection', () => proxy.stats().activeConnections === 0);
    const late = openClient(proxy.port);
    await waitFor('a late connect to fail', () => late.closed);
    assert.equal(late.connected, false);
    await proxy.close(); // idempotent
  });
});
