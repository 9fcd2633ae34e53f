/**
 * Real drivers. A driver is a SignalSource whose samples come from hardware, asynchronously:
 * it buffers what the device sends and read() hands over everything received since the last call
 * (the real elapsed time is not needed: the device sets the pace). BufferedDriver does the
 * buffering, ordering and rejection bookkeeping; a driver only calls deliver() and reject().
 *
 * The example driver, LineProtocolDriver, reads a serial-style ASCII line protocol from any Node
 * Readable (a serial device, a FIFO, stdin, a socket):
 *
 *   $S,<t>,<positionM>,<velocityMps>,<doorOpening>,<obstructed>,<currentA>,<temperatureC>,<vibrationMmS>*HH
 *
 * - one sample per line, ended by LF (a CR before it is ignored);
 * - t: integer ms since 1970 (with clock 'host' it may be empty and is replaced by the host clock
 *   at receipt); numbers in plain decimal; obstructed 1/0 (or true/false); an empty field is a
 *   dropout (null);
 * - HH: two hex digits, the XOR of every character between '$' and '*' (NMEA style).
 * A line that breaks any rule is rejected with its number and the reason; the stream goes on.
 */
import { createReadStream, statSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { errorMessage, type Logger } from '../shared/logger';
import { rejectedText, sampleFromCells, type RejectedInput, type SignalBatch, type SignalSample, type SignalSource } from './signals';

/** Samples held between two reads at most; beyond it the oldest are dropped and counted. */
export const MAX_BUFFERED_SAMPLES = 100_000;
/** Longest accepted line; longer input is rejected up to the next newline. */
export const MAX_LINE_LENGTH = 512;

/** The base of a real driver: a bounded buffer of samples and rejected inputs between reads. */
export abstract class BufferedDriver implements SignalSource {
  private samples: SignalSample[] = [];
  private rejected: RejectedInput[] = [];
  private lastT = -Infinity;
  protected counters = { driverSamples: 0, driverRejected: 0, driverOverflow: 0 };

  constructor(
    readonly origin: string,
    private readonly maxBuffered = MAX_BUFFERED_SAMPLES,
  ) {}

  read(_realElapsedMs: number): SignalBatch {
    const batch = { samples: this.samples, rejected: this.rejected };
    this.samples = [];
    this.rejected = [];
    return batch;
  }

  metrics(): Record<string, number | string | boolean> {
    return { ...this.counters };
  }

  /** Hands over one sample; one not after the previous sample is rejected instead. */
  protected deliver(sample: SignalSample, line: number, text: string): void {
    if (!(sample.t > this.lastT)) {
      this.reject(line, text, `t ${sample.t} is not after the previous sample's ${this.lastT}`);
      return;
    }
    this.lastT = sample.t;
    this.counters.driverSamples += 1;
    if (this.samples.length >= this.maxBuffered) {
      this.samples.shift();
      this.counters.driverOverflow += 1;
    }
    this.samples.push(sample);
  }

  protected reject(line: number, text: string, reason: string): void {
    this.counters.driverRejected += 1;
    if (this.rejected.length >= this.maxBuffered) this.rejected.shift();
    this.rejected.push({ line, text: rejectedText(text), reason, origin: this.origin });
  }

  protected get lastSampleT(): number {
    return this.lastT;
  }
}

/** XOR of the character codes of text, as two upper-case hex digits. */
export function lineChecksum(text: string): string {
  let sum = 0;
  for (let i = 0; i < text.length; i += 1) sum ^= text.charCodeAt(i) & 0xff;
  return sum.toString(16).toUpperCase().padStart(2, '0');
}

/** Formats a sample as one protocol line (without the newline): for tests, recorders and device simulators. */
export function formatLine(sample: SignalSample): string {
  const cell = (v: number | boolean | null) => (v === null ? '' : typeof v === 'boolean' ? (v ? '1' : '0') : String(v));
  const body = ['S', sample.t, sample.positionM, sample.velocityMps, sample.doorOpening, sample.obstructed, sample.currentA, sample.temperatureC, sample.vibrationMmS]
    .map((v) => (typeof v === 'string' ? v : cell(v)))
    .join(',');
  return `$${body}*${lineChecksum(body)}`;
}

export type LineClock = 'device' | 'host';

export interface LineDriverOptions {
  /** 'device' (default): t from the line. 'host': the host's wall clock at receipt. */
  clock?: LineClock;
  origin?: string;
  now?: () => number;
}

export class LineProtocolDriver extends BufferedDriver {
  private partial = '';
  private discarding = false;
  private lineNumber = 0;
  private decoder = new StringDecoder('utf8');
  private readonly clock: LineClock;
  private readonly now: () => number;

  constructor(options: LineDriverOptions = {}) {
    super(options.origin ?? '(line)');
    this.clock = options.clock ?? 'device';
    this.now = options.now ?? Date.now;
  }

  /** Feeds received bytes; complete lines are parsed, a partial line waits for the rest. */
  write(chunk: Buffer | string): void {
    let text = this.partial + (typeof chunk === 'string' ? chunk : this.decoder.write(chunk));
    let newline = text.indexOf('\n');
    while (newline >= 0) {
      const line = text.slice(0, newline);
      text = text.slice(newline + 1);
      if (this.discarding) {
        this.discarding = false;
        this.lineNumber += 1;
        this.reject(this.lineNumber, line.slice(0, 80), `line longer than ${MAX_LINE_LENGTH} characters`);
      } else this.handleLine(line);
      newline = text.indexOf('\n');
    }
    if (text.length > MAX_LINE_LENGTH) {
      // No newline in sight: drop what we have and the rest of this line when it comes.
      if (!this.discarding) this.discarding = true;
      text = '';
    }
    this.partial = text;
  }

  /** The stream ended: a last line without a newline is still parsed (its checksum guards against truncation). */
  end(): void {
    const rest = this.partial + this.decoder.end();
    this.partial = '';
    if (this.discarding) {
      this.discarding = false;
      this.lineNumber += 1;
      this.reject(this.lineNumber, rest.slice(0, 80), `line longer than ${MAX_LINE_LENGTH} characters`);
    } else if (rest.length > 0) this.handleLine(rest);
  }

  /** Reads a stream until it ends; resolves then (or rejects on a stream error). */
  attach(stream: Readable): Promise<void> {
    return new Promise((resolve, reject) => {
      stream.on('data', (chunk: Buffer | string) => this.write(chunk));
      stream.once('end', () => {
        this.end();
        resolve();
      });
      stream.once('error', (error) => {
        this.end();
        reject(error);
      });
    });
  }

  private handleLine(raw: string): void {
    this.lineNumber += 1;
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') return;
    const reason = this.parse(line);
    if (reason !== undefined) this.reject(this.lineNumber, line, reason);
  }

  /** Parses and delivers one line; returns the reason when it is rejected. */
  private parse(line: string): string | undefined {
    if (!line.startsWith('$')) return 'does not start with "$"';
    const star = line.lastIndexOf('*');
    if (star < 0) return 'no "*HH" checksum';
    const body = line.slice(1, star);
    const given = line.slice(star + 1);
    if (!/^[0-9A-Fa-f]{2}$/.test(given)) return `checksum "${given.slice(0, 10)}" is not two hex digits`;
    const expected = lineChecksum(body);
    if (given.toUpperCase() !== expected) return `bad checksum ${given.toUpperCase()}, computed ${expected}`;
    const fields = body.split(',');
    if (fields[0] !== 'S') return `unknown sentence "${fields[0].slice(0, 10)}" (expected S)`;
    const cells = fields.slice(1);
    if (this.clock === 'host' && cells.length === 8) cells[0] = String(Math.max(Math.floor(this.now()), this.lastSampleT + 1));
    const parsed = sampleFromCells(cells);
    if (!parsed.ok) return parsed.reason;
    this.deliver(parsed.sample, this.lineNumber, line);
    return undefined;
  }
}

export interface LineDeviceHandle {
  close(): void;
}

/**
 * Reads a device, FIFO or regular file at `path` ('-': stdin) into the driver. When the stream
 * ends or fails (the writer of a FIFO went away, a USB serial adapter was unplugged) it is opened
 * again after 1 s, doubling to 30 s while it keeps failing; stdin and a regular file that ended
 * are not reopened (a failed open of a missing path is retried: the device may appear).
 */
export function openLineDevice(path: string, driver: LineProtocolDriver, logger: Logger): LineDeviceHandle {
  let closed = false;
  let current: Readable | undefined;
  let timer: NodeJS.Timeout | undefined;
  let delayMs = 1000;
  const open = (): void => {
    if (closed) return;
    const stream: Readable = path === '-' ? process.stdin : createReadStream(path);
    current = stream;
    let receivedAny = false;
    stream.once('data', () => {
      receivedAny = true;
    });
    driver.attach(stream).then(
      () => {
        if (closed) return;
        if (path === '-' || isRegularFile(path)) {
          // Reading a regular file again would only repeat its samples.
          logger.warn('line source: input ended; no more samples', { path });
          return;
        }
        logger.warn('line source: stream ended; reopening', { path, delayMs });
        retry(receivedAny);
      },
      (error: unknown) => {
        if (closed) return;
        logger.warn('line source: read failed; reopening', { path, error: errorMessage(error), delayMs });
        retry(receivedAny);
      },
    );
  };
  const retry = (receivedAny: boolean): void => {
    const wait = receivedAny ? 1000 : delayMs;
    delayMs = receivedAny ? 1000 : Math.min(30_000, delayMs * 2);
    timer = setTimeout(open, wait);
  };
  open();
  return {
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      if (current && current !== process.stdin) current.destroy();
    },
  };
}

function isRegularFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
