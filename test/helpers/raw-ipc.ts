import { connect, type Socket } from 'node:net';
import { decodeFrame, encodeFrame, FrameSplitter, MessageType, PROTOCOL_VERSION, type Frame, type OutgoingFrame } from '../../runtime/eventstream-server';

/**
 * A raw eventstream peer for protocol-level tests: it lets a test send frames no SDK client would
 * (bad CRCs, unknown operations) and read the exact headers the runtime answers with.
 */
export class RawIpcPeer {
  readonly frames: Frame[] = [];
  closed = false;
  private readonly splitter = new FrameSplitter();
  private waiters: Array<() => void> = [];

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const bytes of this.splitter.push(chunk)) this.frames.push(decodeFrame(bytes));
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  static open(socketPath: string): Promise<RawIpcPeer> {
    return new Promise((resolve, reject) => {
      const socket = connect(socketPath, () => resolve(new RawIpcPeer(socket)));
      socket.once('error', reject);
    });
  }

  send(frame: OutgoingFrame, headers: Record<string, string> = {}): void {
    this.socket.write(encodeFrame({ ...frame, headers: { ...frame.headers, ...headers } }));
  }

  sendBytes(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  connect(token: string): void {
    this.send({ type: MessageType.Connect, streamId: 0, headers: { ':version': PROTOCOL_VERSION }, payload: JSON.stringify({ authToken: token }) });
  }

  async next(timeoutMs = 5000): Promise<Frame | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length === 0 && !this.closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.frames.shift();
  }

  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.closed;
  }

  close(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
