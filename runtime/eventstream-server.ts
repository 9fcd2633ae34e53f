import { createServer, type Server, type Socket } from 'node:net';
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import { EventStreamCodec, type MessageHeaders } from '@smithy/eventstream-codec';
import { fromUtf8, toUtf8 } from '@smithy/util-utf8';
import type { Logger } from '../components/shared/logger';

/**
 * The server side of eventstream RPC, the protocol the Greengrass IPC clients speak over a Unix
 * socket. aws-crt ships only the client side, so this file frames the socket itself and uses
 * @smithy/eventstream-codec to encode and CRC-check single frames.
 *
 * Protocol facts used here (from the aws-crt eventstream binding and the IPC client in
 * aws-iot-device-sdk-v2, dist/eventstream_rpc.js):
 * - every frame carries int32 headers :message-type, :message-flags and :stream-id;
 * - the first frame is CONNECT on stream 0 with header :version "0.1.0" and a JSON payload
 *   {"authToken": "<SVCUID>"}; the server answers CONNECT_ACK with flag 1 (accepted) or 0;
 * - a client opens stream n (> 0) with an application message carrying the "operation" header;
 *   replies on that stream carry "service-model-type" naming the response or error shape;
 * - flag 2 (TERMINATE_STREAM) ends a stream; a streaming subscribe response must not carry it.
 */
export enum MessageType {
  ApplicationMessage = 0,
  ApplicationError = 1,
  Ping = 2,
  PingResponse = 3,
  Connect = 4,
  ConnectAck = 5,
  ProtocolError = 6,
  InternalError = 7,
}

export const FLAG_CONNECTION_ACCEPTED = 1;
export const FLAG_TERMINATE_STREAM = 2;
export const PROTOCOL_VERSION = '0.1.0';

/** The prelude is total length (4), headers length (4) and prelude CRC (4). */
const PRELUDE_BYTES = 12;
/** aws-c-event-stream refuses frames above 16 MiB; so do we, before buffering them. */
const MAX_FRAME_BYTES = 16 * 1024 * 1024;

export interface Frame {
  type: MessageType;
  flags: number;
  streamId: number;
  headers: Record<string, string | number | boolean>;
  payload: Buffer;
}

export interface OutgoingFrame {
  type: MessageType;
  flags?: number;
  streamId: number;
  headers?: Record<string, string>;
  payload?: Buffer | string;
}

/** What the RPC layer sees of one connection. */
export interface RpcConnection {
  readonly id: number;
  /** Identity established at CONNECT (the component whose token was presented). */
  readonly principal: string;
  send(frame: OutgoingFrame): void;
  close(reason: string): void;
  readonly closed: boolean;
}

export interface RpcHandlers {
  /** Returns the principal for a token, or undefined to refuse the connection. */
  authenticate(token: string | undefined): string | undefined;
  /** First frame of a new stream. */
  onStreamOpen(connection: RpcConnection, streamId: number, operation: string, frame: Frame): void;
  /** A later frame on an open stream (e.g. the client's TERMINATE_STREAM). */
  onStreamFrame(connection: RpcConnection, streamId: number, frame: Frame): void;
  onConnectionClosed(connection: RpcConnection): void;
}

export interface ServerCounters {
  connectionsAccepted: number;
  connectionsRejected: number;
  protocolErrors: number;
}

const codec = new EventStreamCodec(toUtf8, fromUtf8);

export function encodeFrame(frame: OutgoingFrame): Buffer {
  const headers: MessageHeaders = {
    ':message-type': { type: 'integer', value: frame.type },
    ':message-flags': { type: 'integer', value: frame.flags ?? 0 },
    ':stream-id': { type: 'integer', value: frame.streamId },
  };
  for (const [name, value] of Object.entries(frame.headers ?? {})) headers[name] = { type: 'string', value };
  const payload = typeof frame.payload === 'string' ? Buffer.from(frame.payload) : (frame.payload ?? Buffer.alloc(0));
  return Buffer.from(codec.encode({ headers, body: payload }));
}

/** Decodes one complete frame; throws (with the codec's reason) on a bad CRC or bad headers. */
export function decodeFrame(bytes: Buffer): Frame {
  const message = codec.decode(bytes);
  const headers: Record<string, string | number | boolean> = {};
  for (const [name, header] of Object.entries(message.headers)) {
    if (typeof header.value === 'string' || typeof header.value === 'number' || typeof header.value === 'boolean') {
      headers[name] = header.value;
    }
  }
  const type = headers[':message-type'];
  const streamId = headers[':stream-id'];
  if (typeof type !== 'number' || typeof streamId !== 'number') {
    throw new Error('frame lacks the int32 headers :message-type and :stream-id');
  }
  const flags = typeof headers[':message-flags'] === 'number' ? (headers[':message-flags'] as number) : 0;
  return { type, flags, streamId, headers, payload: Buffer.from(message.body) };
}

/** Splits a byte stream into frames using the total-length field of each prelude. */
export class FrameSplitter {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const frames: Buffer[] = [];
    while (this.pending.length >= PRELUDE_BYTES) {
      const total = this.pending.readUInt32BE(0);
      if (total < PRELUDE_BYTES + 4 || total > MAX_FRAME_BYTES) {
        throw new Error(`frame length ${total} is outside ${PRELUDE_BYTES + 4}..${MAX_FRAME_BYTES}`);
      }
      if (this.pending.length < total) break;
      frames.push(this.pending.subarray(0, total));
      this.pending = this.pending.subarray(total);
    }
    return frames;
  }
}

class Connection implements RpcConnection {
  principal = '';
  closed = false;
  private readonly splitter = new FrameSplitter();
  private readonly openStreams = new Set<number>();

  constructor(
    readonly id: number,
    private readonly socket: Socket,
    private readonly handlers: RpcHandlers,
    private readonly counters: ServerCounters,
    private readonly logger: Logger,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.logger.debug('ipc socket error', { connection: id, error: error.message }));
    socket.on('close', () => this.onClose());
  }

  send(frame: OutgoingFrame): void {
    if (this.closed) return;
    if (frame.flags !== undefined && (frame.flags & FLAG_TERMINATE_STREAM) !== 0) this.openStreams.delete(frame.streamId);
    this.socket.write(encodeFrame(frame));
  }

  close(reason: string): void {
    if (this.closed) return;
    this.logger.info('ipc connection closed by runtime', { connection: this.id, principal: this.principal, reason });
    this.socket.end();
    this.onClose();
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    this.handlers.onConnectionClosed(this);
  }

  private onData(chunk: Buffer): void {
    let frames: Buffer[];
    try {
      frames = this.splitter.push(chunk);
    } catch (error) {
      return this.protocolError(`unframeable data: ${(error as Error).message}`);
    }
    for (const bytes of frames) {
      if (this.closed) return;
      let frame: Frame;
      try {
        frame = decodeFrame(bytes);
      } catch (error) {
        return this.protocolError(`bad frame: ${(error as Error).message}`);
      }
      try {
        this.onFrame(frame);
      } catch (error) {
        // A bug in one handler must not take the runtime down with every other component's IPC.
        this.logger.error('ipc frame handling failed', { connection: this.id, error: (error as Error).stack });
        this.send({ type: MessageType.InternalError, streamId: 0, headers: { ':content-type': 'text/plain' }, payload: 'internal error' });
        this.close('internal error');
      }
    }
  }

  private onFrame(frame: Frame): void {
    if (!this.principal) {
      if (frame.type !== MessageType.Connect) return this.protocolError(`expected CONNECT first, got message type ${frame.type}`);
      return this.onConnect(frame);
    }
    switch (frame.type) {
      case MessageType.Ping:
        return this.send({ type: MessageType.PingResponse, streamId: 0 });
      case MessageType.PingResponse:
        return;
      case MessageType.Connect:
        return this.protocolError('CONNECT received twice');
      case MessageType.ApplicationMessage:
      case MessageType.ApplicationError:
        return this.onStreamMessage(frame);
      default:
        return this.protocolError(`unexpected message type ${frame.type} from a client`);
    }
  }

  private onConnect(frame: Frame): void {
    const version = frame.headers[':version'];
    if (version !== PROTOCOL_VERSION) {
      return this.refuse(`protocol version "${String(version)}" is not ${PROTOCOL_VERSION}`);
    }
    let token: string | undefined;
    try {
      const body = frame.payload.length > 0 ? JSON.parse(frame.payload.toString('utf8')) : {};
      token = typeof body.authToken === 'string' ? body.authToken : undefined;
    } catch {
      return this.refuse('CONNECT payload is not JSON');
    }
    const principal = this.handlers.authenticate(token);
    if (!principal) return this.refuse(token ? 'unknown auth token' : 'no auth token');
    this.principal = principal;
    this.counters.connectionsAccepted += 1;
    this.send({ type: MessageType.ConnectAck, flags: FLAG_CONNECTION_ACCEPTED, streamId: 0 });
    this.logger.info('ipc client connected', { connection: this.id, principal });
  }

  private refuse(reason: string): void {
    this.counters.connectionsRejected += 1;
    this.logger.warn('ipc connection refused', { connection: this.id, reason });
    this.send({ type: MessageType.ConnectAck, flags: 0, streamId: 0 });
    this.close(reason);
  }

  private onStreamMessage(frame: Frame): void {
    if (frame.streamId <= 0) return this.protocolError(`application message on stream ${frame.streamId}`);
    if (this.openStreams.has(frame.streamId)) {
      if ((frame.flags & FLAG_TERMINATE_STREAM) !== 0) this.openStreams.delete(frame.streamId);
      return this.handlers.onStreamFrame(this, frame.streamId, frame);
    }
    const operation = frame.headers.operation;
    if (typeof operation !== 'string') {
      // A late frame on a stream the server already ended (e.g. the client's terminate after our
      // final response) is normal; anything else without an operation is a client bug.
      if ((frame.flags & FLAG_TERMINATE_STREAM) !== 0) return;
      return this.protocolError(`stream ${frame.streamId} opened without an "operation" header`);
    }
    this.openStreams.add(frame.streamId);
    this.handlers.onStreamOpen(this, frame.streamId, operation, frame);
  }

  private protocolError(reason: string): void {
    this.counters.protocolErrors += 1;
    this.logger.warn('ipc protocol error; closing the connection', { connection: this.id, principal: this.principal || undefined, reason });
    this.send({ type: MessageType.ProtocolError, streamId: 0, headers: { ':content-type': 'text/plain' }, payload: reason });
    this.close(reason);
  }
}

export class EventStreamRpcServer {
  readonly counters: ServerCounters = { connectionsAccepted: 0, connectionsRejected: 0, protocolErrors: 0 };
  private server?: Server;
  private nextConnectionId = 1;
  private readonly connections = new Set<Connection>();

  constructor(
    private readonly socketPath: string,
    private readonly handlers: RpcHandlers,
    private readonly logger: Logger,
  ) {
    // sockaddr_un.sun_path is 108 bytes on Linux, including the terminating NUL.
    if (Buffer.byteLength(socketPath) > 107) {
      throw new RangeError(`IPC socket path is ${Buffer.byteLength(socketPath)} bytes; Unix sockets allow at most 107: ${socketPath}`);
    }
  }

  async listen(): Promise<void> {
    if (existsSync(this.socketPath)) unlinkSync(this.socketPath);
    this.server = createServer((socket) => {
      const connection = new Connection(this.nextConnectionId++, socket, this.wrapHandlers(), this.counters, this.logger);
      this.connections.add(connection);
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.socketPath, () => resolve());
    });
    // Only the runtime's user (and its components) may reach the socket, as with the nucleus.
    chmodSync(this.socketPath, 0o600);
  }

  async close(): Promise<void> {
    for (const connection of this.connections) connection.close('runtime stopping');
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    if (existsSync(this.socketPath)) unlinkSync(this.socketPath);
  }

  private wrapHandlers(): RpcHandlers {
    const handlers = this.handlers;
    return {
      authenticate: (token) => handlers.authenticate(token),
      onStreamOpen: (connection, streamId, operation, frame) => handlers.onStreamOpen(connection, streamId, operation, frame),
      onStreamFrame: (connection, streamId, frame) => handlers.onStreamFrame(connection, streamId, frame),
      onConnectionClosed: (connection) => {
        this.connections.delete(connection as Connection);
        this.handlers.onConnectionClosed(connection);
      },
    };
  }
}
