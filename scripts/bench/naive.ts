import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import type { NaiveCommand, NaiveOptions, NaiveStats } from './naive-publisher';

/** Each naive process numbers its readings from its own multiple of this, so the cloud tells them apart. */
export const SEQ_BLOCK = 1_000_000_000;

/** Outside dt/<app>/..., so the cloud ingest never sees (and rejects) the baseline's bare readings. */
export const NAIVE_TOPIC_PREFIX = 'bench/naive/';

/** The naive publisher's process, driven over the IPC channel. */
export class NaiveProcess {
  private waiting: Array<(stats: NaiveStats) => void> = [];
  last: NaiveStats | undefined;

  private constructor(readonly child: ChildProcess) {
    child.on('message', (stats: NaiveStats) => {
      this.last = stats;
      const waiters = this.waiting;
      this.waiting = [];
      for (const w of waiters) w(stats);
    });
  }

  static async start(options: NaiveOptions): Promise<NaiveProcess> {
    const child = fork(join(__dirname, 'naive-publisher.js'), [JSON.stringify(options)], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    const naive = new NaiveProcess(child);
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`naive publisher exited at start (code ${code})`)));
      child.once('message', () => resolve());
    });
    child.removeAllListeners('exit');
    return naive;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  send(command: NaiveCommand): Promise<NaiveStats> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.child.send(command);
    });
  }

  stats(): Promise<NaiveStats> {
    return this.send({ op: 'stats' });
  }

  async waitConnected(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if ((await this.stats()).connected) return true;
      await sleep(100);
    }
    return false;
  }

  /** SIGKILL, as a crash or a power cut would end it: nothing runs after this. */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }
}

/**
 * The baseline's "cloud": a subscriber straight on the broker that counts distinct readings by
 * their sequence number. A reading counts once the broker has delivered it here, the nearest thing
 * to an acknowledgement a publisher without a cloud protocol has.
 */
export class CloudCounter {
  private readonly seen = new Set<number>();
  /** Distinct readings per block of SEQ_BLOCK sequence numbers: each naive process gets its own block. */
  private readonly perBlock = new Map<number, number>();
  received = 0;

  private constructor(private readonly client: MqttClient) {
    client.on('message', (_topic, payload) => {
      const seq = (JSON.parse(payload.toString('utf8')) as { seq: number }).seq;
      if (this.seen.has(seq)) return;
      this.seen.add(seq);
      this.received += 1;
      const block = Math.floor(seq / SEQ_BLOCK);
      this.perBlock.set(block, (this.perBlock.get(block) ?? 0) + 1);
    });
  }

  static async start(brokerUrl: string): Promise<CloudCounter> {
    const client = mqtt.connect(brokerUrl, { clientId: `bench-naive-cloud-${process.pid}`, clean: true, reconnectPeriod: 500 });
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    await client.subscribeAsync(`${NAIVE_TOPIC_PREFIX}#`, { qos: 1 });
    return new CloudCounter(client);
  }

  /** Readings received from the process whose sequence numbers start at seqStart (a multiple of SEQ_BLOCK). */
  receivedFrom(seqStart: number): number {
    return this.perBlock.get(Math.floor(seqStart / SEQ_BLOCK)) ?? 0;
  }

  countBetween(first: number, last: number): number {
    let count = 0;
    for (const seq of this.seen) if (seq >= first && seq <= last) count += 1;
    return count;
  }

  async stop(): Promise<void> {
    await this.client.endAsync();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
