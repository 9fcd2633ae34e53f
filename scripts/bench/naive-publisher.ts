import { mqtt5 } from 'aws-iot-device-sdk-v2';
import { recordPool } from './source';

/**
 * The baseline the issue compares against, as a prototype would be written: the SDK's MQTT 5
 * client with its defaults (clean session, in-memory offline queue, the SDK's reconnect backoff),
 * one QoS 1 publish per reading, no store, no batching, no pacing. It runs as its own process so
 * that it can be killed like a device process and its memory and CPU are its own.
 *
 * Driven by its parent over the Node IPC channel: {op: 'rate', perSec}, {op: 'burst', count},
 * {op: 'stats'}; every message is answered with the current NaiveStats.
 */
export interface NaiveOptions {
  host: string;
  port: number;
  clientId: string;
  topic: string;
  /** First reading's sequence number; a restarted process continues from another range so the cloud can tell them apart. */
  seqStart: number;
}

export interface NaiveStats {
  /** Readings handed to client.publish(). */
  published: number;
  /** Publishes the SDK completed with a PUBACK. */
  acked: number;
  failed: number;
  /** Operations the SDK still holds (offline queue and unacknowledged in-flight). */
  incomplete: number;
  connected: boolean;
  connects: number;
  firstSeq: number;
  lastSeq: number;
  rssMiB: number;
  cpuSeconds: number;
}

export type NaiveCommand = { op: 'rate'; perSec: number } | { op: 'burst'; count: number } | { op: 'stats' };

const TICK_MS = 10;

function main(): void {
  const options = JSON.parse(process.argv[2]) as NaiveOptions;
  const pool = recordPool(4096, 11);
  const client = new mqtt5.Mqtt5Client({
    hostName: options.host,
    port: options.port,
    connectProperties: { clientId: options.clientId, keepAliveIntervalSeconds: 60 },
  });
  let seq = options.seqStart - 1;
  let published = 0;
  let acked = 0;
  let failed = 0;
  let connected = false;
  let connects = 0;
  client.on('connectionSuccess', () => {
    connected = true;
    connects += 1;
  });
  client.on('disconnection', () => (connected = false));
  client.on('error', () => undefined);

  const publishOne = (): void => {
    seq += 1;
    const reading = pool[seq % pool.length];
    const payload = JSON.stringify({ seq, time: Date.now(), stream: reading.stream, data: reading.data });
    published += 1;
    client.publish({ topicName: options.topic, payload, qos: mqtt5.QoS.AtLeastOnce }).then(
      () => (acked += 1),
      () => (failed += 1),
    );
  };

  let rate = 0;
  let carry = 0;
  let last = performance.now();
  setInterval(() => {
    const now = performance.now();
    const exact = (rate * (now - last)) / 1000 + carry;
    last = now;
    const count = Math.floor(exact);
    carry = exact - count;
    for (let i = 0; i < count; i += 1) publishOne();
  }, TICK_MS);

  const stats = (): NaiveStats => {
    const cpu = process.cpuUsage();
    return {
      published,
      acked,
      failed,
      incomplete: Number(client.getOperationalStatistics().incompleteOperationCount),
      connected,
      connects,
      firstSeq: options.seqStart,
      lastSeq: seq,
      rssMiB: process.memoryUsage().rss / 2 ** 20,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
    };
  };

  process.on('message', (command: NaiveCommand) => {
    if (command.op === 'rate') {
      rate = command.perSec;
      carry = 0;
      last = performance.now();
    } else if (command.op === 'burst') {
      for (let i = 0; i < command.count; i += 1) publishOne();
    }
    process.send?.(stats());
  });
  process.on('disconnect', () => process.exit(0));
  client.start();
  process.send?.(stats());
}

main();
