import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import mqtt, { type MqttClient } from 'mqtt';
import winston from 'winston';
import { buildEnvelope, type AckCommand, type Envelope, type WireRecord } from '../../components/shared/envelope';
import { commandTopic, dataTopic } from '../../components/shared/topics';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../runtime/broker';
import { LocalFolderArchive, type ArchiveBackend } from '../../cloud/archive';
import { CloudIngest, type CloudIngestOptions } from '../../cloud/ingest';

export const DEVICE = 'elevator-0001';
export const STREAM = 'door-cycle';
export const EPOCH = '0f8fad5b-d9cb-469f-a165-70867728950e';

/** A valid door-cycle.v1 record's data, derived from seq so that two calls give identical bytes. */
export function doorCycleData(seq: number): Record<string, unknown> {
  const openStartTime = 1_700_000_000_000 + seq * 1000;
  const openingMs = 2000 + (seq % 500);
  return {
    floor: seq % 12,
    openStartTime,
    closeEndTime: openStartTime + openingMs + 3000 + 2600,
    openingMs,
    dwellMs: 3000,
    closingMs: 2600,
    totalMs: openingMs + 3000 + 2600,
    doorSpeedMps: Math.round((0.45 / (openingMs / 1000)) * 1000) / 1000,
    reversals: 0,
    obstructions: 0,
    quality: { samples: 100, missingSamples: 0, outOfRangeSamples: 0, stuckSignals: [] },
  };
}

/** Records from..to with data derived from seq, so two calls give identical bytes. */
export function makeRecords(from: number, to: number): WireRecord[] {
  const records: WireRecord[] = [];
  for (let seq = from; seq <= to; seq += 1) {
    records.push({ seq, time: 1_700_000_000_000 + seq * 1000, mono: seq * 1000.5, data: doorCycleData(seq) });
  }
  return records;
}

/** One send time per test run: envelopes built twice are byte-identical, and no device clock looks skewed. */
const SENT_AT = new Date();

export function makeEnvelope(from: number, to: number, ids: { device?: string; stream?: string; epoch?: string } = {}): Envelope {
  return buildEnvelope(ids.device ?? DEVICE, ids.stream ?? STREAM, ids.epoch ?? EPOCH, makeRecords(from, to), SENT_AT);
}

/** A LocalFolderArchive in a fresh temporary folder, removed afterwards. */
export async function withArchive(body: (archive: LocalFolderArchive, root: string) => Promise<void>): Promise<void> {
  const dir = await tempDir();
  try {
    await body(new LocalFolderArchive(dir.path), dir.path);
  } finally {
    await dir.remove();
  }
}

export async function tempDir(prefix = 'cloud-test-'): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** A winston logger that keeps every entry in memory instead of printing it. */
export function captureLogger(): { logger: winston.Logger; entries: Array<Record<string, unknown>> } {
  const entries: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      entries.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
      callback();
    },
  });
  const logger = winston.createLogger({ level: 'debug', format: winston.format.json(), transports: [new winston.transports.Stream({ stream: sink })] });
  return { logger, entries };
}

export async function waitUntil(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A device: a plain MQTT.js client that publishes envelopes and collects the acks sent to it. */
export class FakeDevice {
  readonly acks: AckCommand[] = [];

  private constructor(
    readonly client: MqttClient,
    readonly device: string,
  ) {
    client.on('message', (topic, payload) => {
      if (topic === commandTopic(device, 'ack')) this.acks.push(JSON.parse(payload.toString('utf8')) as AckCommand);
    });
  }

  static async connect(url: string, device = DEVICE): Promise<FakeDevice> {
    const client = await mqtt.connectAsync(url, { clientId: `test-device-${device}-${process.pid}-${Math.random().toString(16).slice(2)}`, reconnectPeriod: 0 });
    const fake = new FakeDevice(client, device);
    await client.subscribeAsync(commandTopic(device, 'ack'), { qos: 1 });
    return fake;
  }

  async publishEnvelope(envelope: Envelope, topic = dataTopic(envelope.device, envelope.stream)): Promise<void> {
    await this.client.publishAsync(topic, JSON.stringify(envelope), { qos: 1 });
  }

  async publishRaw(topic: string, payload: string | Buffer): Promise<void> {
    await this.client.publishAsync(topic, payload, { qos: 1 });
  }

  async waitForAck(predicate: (ack: AckCommand) => boolean, what: string, timeoutMs = 15_000): Promise<AckCommand> {
    let found: AckCommand | undefined;
    await waitUntil(() => (found = this.acks.find(predicate)) !== undefined, what, timeoutMs);
    return found!;
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}

/** A broker, an archive folder, a started CloudIngest and a connected device, torn down together. */
export interface Harness {
  broker: EmbeddedBroker;
  dir: string;
  archive: ArchiveBackend;
  ingest: CloudIngest;
  ingestClient: MqttClient;
  device: FakeDevice;
  logs: Array<Record<string, unknown>>;
  /** Stops the current ingest and starts a new one on the same archive and broker. */
  restartIngest(options?: Partial<CloudIngestOptions>): Promise<CloudIngest>;
  close(): Promise<void>;
}

export async function startHarness(options: Partial<CloudIngestOptions> & { archiveWrapper?: (a: ArchiveBackend) => ArchiveBackend } = {}): Promise<Harness> {
  const broker = await startEmbeddedBroker();
  const dir = await tempDir();
  const { logger, entries } = captureLogger();
  const base = new LocalFolderArchive(dir.path);
  const archive = options.archiveWrapper ? options.archiveWrapper(base) : base;
  const build = async (extra: Partial<CloudIngestOptions>): Promise<{ ingest: CloudIngest; client: MqttClient }> => {
    const client = await mqtt.connectAsync(broker.url, { clientId: `test-ingest-${Math.random().toString(16).slice(2)}`, reconnectPeriod: 0 });
    const ingest = new CloudIngest({ archive, client, logger, ackWindowMs: 20, statusIntervalMs: 0, ...options, ...extra });
    await ingest.start();
    return { ingest, client };
  };
  let current = await build({});
  const device = await FakeDevice.connect(broker.url);
  const harness: Harness = {
    broker,
    dir: dir.path,
    archive,
    ingest: current.ingest,
    ingestClient: current.client,
    device,
    logs: entries,
    async restartIngest(extra = {}) {
      await current.ingest.stop();
      await current.client.endAsync(true);
      current = await build(extra);
      harness.ingest = current.ingest;
      harness.ingestClient = current.client;
      return current.ingest;
    },
    async close() {
      await current.ingest.stop();
      await current.client.endAsync(true);
      await device.close();
      await broker.close();
      await dir.remove();
    },
  };
  return harness;
}
