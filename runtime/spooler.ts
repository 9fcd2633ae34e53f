/**
 * The nucleus's default MQTT spooler (aws-greengrass-nucleus, mqttclient/spool/Spool.java;
 * nucleus configuration mqtt.spooler): in memory, bounded by maxSizeInBytes (default 2.5 MiB,
 * counted as payload bytes). When a new message does not fit, the oldest QoS 0 messages are
 * evicted first; if it still does not fit, the publish is refused and the IPC caller of
 * PublishToIoTCore gets a ServiceError. A success therefore only means "spooled".
 */
export const DEFAULT_SPOOLER_MAX_BYTES = 2.5 * 1024 * 1024;

export interface SpooledMessage {
  id: number;
  topic: string;
  payload: Buffer;
  qos: 0 | 1;
  retain: boolean;
}

/** The nucleus refused a PublishToIoTCore; the IPC caller gets a ServiceError. */
export class PublishRefusedError extends Error {}

export class SpoolFullError extends PublishRefusedError {}

export class Spooler {
  private readonly queue: SpooledMessage[] = [];
  private bytes = 0;
  private nextId = 1;
  readonly counters = { spooled: 0, rejected: 0, evictedQos0: 0 };

  constructor(readonly maxBytes: number = DEFAULT_SPOOLER_MAX_BYTES) {
    if (!(maxBytes > 0)) throw new RangeError(`spooler maxSizeInBytes must be > 0, got ${maxBytes}`);
  }

  get sizeBytes(): number {
    return this.bytes;
  }

  get length(): number {
    return this.queue.length;
  }

  add(topic: string, payload: Buffer, qos: 0 | 1, retain: boolean): SpooledMessage {
    const size = payload.length;
    if (size > this.maxBytes) {
      this.counters.rejected += 1;
      throw new SpoolFullError(`message of ${size} bytes exceeds the spooler size of ${this.maxBytes} bytes`);
    }
    while (this.bytes + size > this.maxBytes) {
      const index = this.queue.findIndex((m) => m.qos === 0);
      if (index < 0) break;
      const [evicted] = this.queue.splice(index, 1);
      this.bytes -= evicted.payload.length;
      this.counters.evictedQos0 += 1;
    }
    if (this.bytes + size > this.maxBytes) {
      this.counters.rejected += 1;
      throw new SpoolFullError(`spooler is full (${this.bytes} of ${this.maxBytes} bytes used); message of ${size} bytes refused`);
    }
    const message: SpooledMessage = { id: this.nextId++, topic, payload, qos, retain };
    this.queue.push(message);
    this.bytes += size;
    this.counters.spooled += 1;
    return message;
  }

  /** The oldest message not yet handed out, without removing it. */
  next(skip: ReadonlySet<number>): SpooledMessage | undefined {
    return this.queue.find((m) => !skip.has(m.id));
  }

  /** Drops every spooled QoS 0 message (the nucleus does so when its connection drops). */
  dropQos0(): number {
    const before = this.queue.length;
    for (let i = this.queue.length - 1; i >= 0; i -= 1) {
      if (this.queue[i].qos === 0) {
        this.bytes -= this.queue[i].payload.length;
        this.queue.splice(i, 1);
      }
    }
    const dropped = before - this.queue.length;
    this.counters.evictedQos0 += dropped;
    return dropped;
  }

  remove(id: number): void {
    const index = this.queue.findIndex((m) => m.id === id);
    if (index < 0) return;
    const [removed] = this.queue.splice(index, 1);
    this.bytes -= removed.payload.length;
  }
}
