// The advisor's test cases. Each one starts its own misbehaving broker(s), points a fresh device
// at it, provokes one behaviour and judges the device only on the packets the broker recorded.
//
// Verdicts: "pass"; "fail"; "sdk-limitation" when the device cannot do what the case asks because
// the SDK's MQTT 5 client does not, and the evidence shows it (the resend cases: the spec's own
// fallback was observed; the reconnect floor: the SDK's timing, which the transport cannot pace
// without losing resends). Never assumed.
import { AdvisorBroker, DisconnectReason } from './broker';
import type { AdvisorConnection, BrokerEvent } from './broker';
import { createPki } from './certs';
import { mqtt5TransportProfile, type DeviceProfile, type DeviceSettings, type DeviceUnderTest } from './devices';
import { coefficientOfVariation, lateOverEarlyGrowth, mean, pooledGrowthFactor, ratios, reconnectIntervals, round } from './stats';

export type Verdict = 'pass' | 'fail' | 'sdk-limitation';

export interface CaseResult {
  name: string;
  result: Verdict;
  /** A pass with a reservation (e.g. strictly exponential backoff without jitter). */
  warning?: string;
  /** Why the verdict, in one sentence. */
  summary: string;
  figures: Record<string, unknown>;
  evidence: unknown;
  durationMs: number;
}

export interface AdvisorCase {
  name: string;
  run(profile: DeviceProfile): Promise<Omit<CaseResult, 'name' | 'durationMs'>>;
}

/** Small timings so the suite is quick; cases that judge an absolute delay use production defaults instead. */
const FAST_BACKOFF = { minReconnectDelayMs: 100, maxReconnectDelayMs: 3200 } as const;
const MQTT5_RESEND_RULE =
  'MQTT 5.0 section 4.4: a client resends unacknowledged PUBLISH packets only when it reconnects with Clean Start 0 to a present session, "Clients and Servers MUST NOT resend messages at any other time" [MQTT-4.4.0-1]';

/** One line per recorded event, short enough to read in a report. */
export function describeEvent(e: BrokerEvent): string {
  const parts = [`${e.at.toFixed(1)}ms`, `#${e.conn}`, e.kind === 'in' ? 'device->' : e.kind === 'out' ? 'broker->' : e.kind];
  if (e.cmd) parts.push(e.cmd.toUpperCase());
  if (e.messageId !== undefined) parts.push(`id=${e.messageId}`);
  if (e.dup) parts.push('DUP');
  if (e.topic) parts.push(e.topic);
  if (e.clean !== undefined) parts.push(`cleanStart=${e.clean}`);
  if (e.keepalive !== undefined) parts.push(`keepAlive=${e.keepalive}`);
  if (e.sessionExpiryInterval !== undefined) parts.push(`sessionExpiry=${e.sessionExpiryInterval}`);
  if (e.sessionPresent !== undefined) parts.push(`sessionPresent=${e.sessionPresent}`);
  if (e.reasonCode !== undefined) parts.push(`reason=0x${e.reasonCode.toString(16)}`);
  if (e.subscriptions) parts.push(e.subscriptions.join(','));
  if (e.detail) parts.push(e.detail);
  return parts.join(' ');
}

function log(broker: AdvisorBroker, filter: (e: BrokerEvent) => boolean = () => true, limit = 40): string[] {
  return broker.find(filter).slice(0, limit).map(describeEvent);
}

const isIn = (cmd: BrokerEvent['cmd'], conn?: number) => (e: BrokerEvent) => e.kind === 'in' && e.cmd === cmd && (conn === undefined || e.conn === conn);
const isOut = (cmd: BrokerEvent['cmd'], conn?: number) => (e: BrokerEvent) => e.kind === 'out' && e.cmd === cmd && (conn === undefined || e.conn === conn);

let clientSerial = 0;
function clientId(caseSlug: string): string {
  clientSerial += 1;
  return `advisor-${caseSlug}-${process.pid}-${clientSerial}`;
}

/** Runs `body` with a started device and always closes device and brokers, even when it throws. */
async function withDevice<T>(
  profile: DeviceProfile,
  brokers: AdvisorBroker[],
  settings: DeviceSettings,
  body: (device: DeviceUnderTest) => Promise<T>,
): Promise<T> {
  const device = profile.create(settings);
  try {
    device.start();
    return await body(device);
  } finally {
    await device.close().catch(() => undefined);
    await Promise.all(brokers.map((b) => b.close()));
  }
}

/** Settles `promise` within `ms`, reporting how, without throwing. */
async function settle(promise: Promise<unknown>, ms: number): Promise<'resolved' | 'rejected' | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    promise.then(
      () => 'resolved' as const,
      () => 'rejected' as const,
    ),
    new Promise<'pending'>((resolve) => (timer = setTimeout(() => resolve('pending'), ms))),
  ]);
  clearTimeout(timer);
  return outcome;
}

// ---------------------------------------------------------------------------------------------

const connectCase: AdvisorCase = {
  name: 'connect',
  async run(profile) {
    const broker = await AdvisorBroker.start();
    return withDevice(profile, [broker], { brokerUrl: broker.url(), clientId: clientId('connect'), keepAliveSec: 30, ...FAST_BACKOFF }, async () => {
      const startedAt = broker.now();
      const connect = await broker.waitFor('CONNECT', isIn('connect'), 5000).catch(() => undefined);
      if (!connect) return { result: 'fail', summary: 'no CONNECT within 5 s', figures: {}, evidence: log(broker) };
      return {
        result: 'pass',
        summary: `CONNECT after ${round(connect.at - startedAt, 1)} ms`,
        figures: {
          timeToConnectMs: round(connect.at - startedAt, 1),
          protocolVersion: connect.protocolVersion,
          keepAliveSec: connect.keepalive,
          cleanStart: connect.clean,
          sessionExpiryIntervalSec: connect.sessionExpiryInterval,
        },
        evidence: log(broker),
      };
    });
  },
};

/** How long the broker sits on a CONNECT before giving up on the attempt (the SDK's own CONNACK timeout, 20 s, is not exposed by the transport). */
const CONNACK_WITHHELD_FOR_MS = 250;
const WITHHELD_PER_CYCLE = 5;

const JITTER_DEVICES = 4;

const jitterBackoffCase: AdvisorCase = {
  name: 'jitter backoff on missing CONNACK',
  async run(profile) {
    const wantedConnects = 13;
    const settings = { minReconnectDelayMs: 100, maxReconnectDelayMs: 1600 };
    // Jitter exists to keep a fleet from reconnecting in lock-step, so it is measured across
    // identical devices: at the same attempt, do they wait different times?
    const runs = Array.from({ length: JITTER_DEVICES }, async () => {
      let attempt = 0;
      const broker = await AdvisorBroker.start({
        onConnect(conn) {
          attempt += 1;
          if (attempt % (WITHHELD_PER_CYCLE + 1) !== 0) {
            setTimeout(() => conn.drop(), CONNACK_WITHHELD_FOR_MS);
            return;
          }
          conn.connack(false);
          // Granted, then taken away, so the withholding cycle starts again.
          setTimeout(() => conn.disconnect(DisconnectReason.ServerBusy), 100);
        },
      });
      return withDevice(profile, [broker], { brokerUrl: broker.url(), clientId: clientId('jitter'), keepAliveSec: 30, ...settings }, async () => {
        await broker.waitFor(`${wantedConnects} CONNECTs`, () => broker.find(isIn('connect')).length >= wantedConnects, 60_000).catch(() => undefined);
        return {
          connects: broker.find(isIn('connect')).length,
          intervals: reconnectIntervals(broker.events).slice(0, wantedConnects - 1),
          evidence: log(broker, (e) => e.kind === 'open' || e.kind === 'close' || e.cmd === 'connect' || e.cmd === 'connack' || e.cmd === 'disconnect', 80),
        };
      });
    });
    const devices = await Promise.all(runs);
    const series = devices.map((d) => d.intervals);
    const longest = Math.max(...series.flat());
    // Attempts where every device sat exactly at the cap carry no jitter information either way.
    const attempts = Array.from({ length: wantedConnects - 1 }, (_, n) => series.map((s) => s[n]).filter((v): v is number => v !== undefined));
    const informative = attempts.filter((values) => values.length > 1 && !values.every((v) => Math.abs(v - longest) <= 0.01 * longest));
    const cvAcrossDevicesPerAttempt = attempts.map((values) => round(coefficientOfVariation(values)));
    const cvs = informative.map((values) => coefficientOfVariation(values)).sort((a, b) => a - b);
    const medianCv = cvs.length ? round(cvs[Math.floor(cvs.length / 2)]!) : NaN;
    const growthPerDevice = series.map((s) => round(lateOverEarlyGrowth(s)));
    const atCap = series.flat().filter((v) => Math.abs(v - longest) <= 0.01 * longest).length;
    const figures = {
      devices: JITTER_DEVICES,
      connectsPerDevice: devices.map((d) => d.connects),
      withheldPerCycle: WITHHELD_PER_CYCLE,
      connackWithheldForMs: CONNACK_WITHHELD_FOR_MS,
      intervalsMs: series,
      growthRatios: series.map((s) => ratios(s).map((r) => round(r))),
      lateOverEarlyGrowthPerDevice: growthPerDevice,
      cvAcrossDevicesPerAttempt,
      medianCvAcrossDevices: medianCv,
      cvOfRatios: round(coefficientOfVariation(series.flatMap((s) => ratios(s)))),
      intervalsAtLongestValue: atCap,
      deviceBackoffSettings: settings,
    };
    const evidence = devices[0]!.evidence;
    if (devices.some((d) => d.connects < wantedConnects)) return { result: 'fail', summary: `not every device made ${wantedConnects} CONNECTs within 60 s`, figures, evidence };
    const slowest = Math.min(...growthPerDevice);
    if (!(slowest >= 1.5)) return { result: 'fail', summary: `intervals do not grow: later intervals average only ${slowest}x the early ones on one device (need >= 1.5)`, figures, evidence };
    if (cvs.length < 3) return { result: 'fail', summary: 'too few attempts below the cap to judge jitter', figures, evidence };
    // Identical intervals at the top mean the jitter is applied before the cap and vanishes there.
    const capShare = atCap / series.flat().length;
    const capWarning = capShare >= 0.25 ? `${atCap} of ${series.flat().length} intervals were exactly the cap (${longest} ms): the SDK clamps after jittering, so devices that reach maxReconnectDelayMs reconnect in lock-step` : undefined;
    if (medianCv >= 0.15) {
      return { result: 'pass', ...(capWarning ? { warning: capWarning } : {}), summary: `intervals grow (>= ${slowest}x) and differ across identical devices (median CV ${medianCv})`, figures, evidence };
    }
    return { result: 'pass', warning: 'strictly exponential: no jitter, so a fleet reconnects in lock-step', summary: `intervals grow (>= ${slowest}x) but identical devices wait the same time (median CV ${medianCv})`, figures, evidence };
  },
};

/** Several devices, one broker each, judged together: full jitter makes a single series too noisy. */
const POOLED_DEVICES = 6;
const EXPONENTIAL_FACTOR_NEEDED = 1.5;

async function pooledIntervals(
  profile: DeviceProfile,
  slug: string,
  wantedIntervals: number,
  settings: Partial<DeviceSettings>,
  behaviour: (conn: AdvisorConnection) => void,
  measureFrom: 'close' | 'server-disconnect',
): Promise<{ series: number[][]; evidence: string[][] }> {
  const runs = Array.from({ length: POOLED_DEVICES }, async () => {
    const broker = await AdvisorBroker.start({ onConnect: behaviour });
    return withDevice(profile, [broker], { brokerUrl: broker.url(), clientId: clientId(slug), keepAliveSec: 30, ...settings }, async () => {
      await broker.waitFor(`${wantedIntervals + 1} connections`, (e) => e.kind === 'open' && e.conn === wantedIntervals + 1, 60_000).catch(() => undefined);
      let intervals: number[];
      if (measureFrom === 'close') intervals = reconnectIntervals(broker.events);
      else {
        intervals = broker
          .find(isOut('disconnect'))
          .map((d) => broker.find((e) => e.kind === 'open' && e.conn === d.conn + 1)[0])
          .map((open, i) => (open ? round(open.at - broker.find(isOut('disconnect'))[i]!.at, 1) : NaN))
          .filter((v) => !Number.isNaN(v));
      }
      return { intervals: intervals.slice(0, wantedIntervals), evidence: log(broker, (e) => e.kind === 'open' || e.cmd === 'disconnect' || e.kind === 'close', 30) };
    });
  });
  const done = await Promise.all(runs);
  return { series: done.map((d) => d.intervals), evidence: done.map((d) => d.evidence) };
}

function judgeExponential(series: number[][], wantedIntervals: number, what: string): Pick<CaseResult, 'result' | 'summary' | 'figures'> {
  const factor = round(pooledGrowthFactor(series));
  const perAttemptMeanMs = Array.from({ length: wantedIntervals }, (_, n) => round(mean(series.map((s) => s[n]).filter((v): v is number => v !== undefined)), 1));
  const figures = {
    devices: series.length,
    intervalsPerDevice: series.map((s) => s.length),
    growthFactorPerAttempt: factor,
    growthFactorNeeded: EXPONENTIAL_FACTOR_NEEDED,
    meanIntervalPerAttemptMs: perAttemptMeanMs,
    meanGrowthRatios: ratios(perAttemptMeanMs).map((r) => round(r)),
    cvOfIntervalsAtLastAttempt: round(coefficientOfVariation(series.map((s) => s[wantedIntervals - 1]).filter((v): v is number => v !== undefined))),
    intervalsMs: series,
  };
  if (series.some((s) => s.length < wantedIntervals)) return { result: 'fail', summary: `some devices did not reconnect ${wantedIntervals} times within 60 s`, figures };
  if (factor >= EXPONENTIAL_FACTOR_NEEDED) return { result: 'pass', summary: `${what} grow by ${factor}x per attempt (fit of ln(interval) over ${series.length} devices)`, figures };
  return { result: 'fail', summary: `${what} grow by only ${factor}x per attempt (constant or linear backoff; need >= ${EXPONENTIAL_FACTOR_NEEDED})`, figures };
}

const exponentialBackoffCase: AdvisorCase = {
  name: 'exponential backoff',
  async run(profile) {
    const wanted = 8;
    const settings = { minReconnectDelayMs: 50, maxReconnectDelayMs: 60_000 };
    const { series, evidence } = await pooledIntervals(profile, 'exponential', wanted, settings, (conn) => setTimeout(() => conn.drop(), 100), 'close');
    const verdict = judgeExponential(series, wanted, 'reconnect intervals after a withheld CONNACK');
    return { ...verdict, figures: { ...verdict.figures, deviceBackoffSettings: settings }, evidence: evidence[0] };
  },
};

const serverDisconnectBackoffCase: AdvisorCase = {
  name: 'reconnect backoff on server disconnect',
  async run(profile) {
    const wanted = 8;
    const settings = { minReconnectDelayMs: 100, maxReconnectDelayMs: 60_000 };
    const { series, evidence } = await pooledIntervals(
      profile,
      'disconnect-backoff',
      wanted,
      settings,
      (conn) => {
        conn.connack(false);
        setTimeout(() => conn.disconnect(DisconnectReason.ServerBusy), 100);
      },
      'server-disconnect',
    );
    const verdict = judgeExponential(series, wanted, 'reconnect intervals after DISCONNECT 0x89 (server busy)');
    return { ...verdict, figures: { ...verdict.figures, disconnects: wanted + 1, deviceBackoffSettings: settings }, evidence: evidence[0] };
  },
};

const MIN_RECONNECT_WAIT_MS = 1000;

const reconnectAfterDisconnectCase: AdvisorCase = {
  name: 'reconnect after disconnect',
  async run(profile) {
    const disconnects = 3;
    const broker = await AdvisorBroker.start({
      onConnect(conn) {
        conn.connack(false);
        setTimeout(() => conn.disconnect(DisconnectReason.ServerBusy), 300);
      },
    });
    // The 1 s floor is absolute, so the device runs with its production backoff settings here.
    return withDevice(profile, [broker], { brokerUrl: broker.url(), clientId: clientId('reconnect'), keepAliveSec: 30 }, async () => {
      await broker.waitFor(`${disconnects + 1} connections`, (e) => e.kind === 'open' && e.conn === disconnects + 1, 30_000).catch(() => undefined);
      const waits = broker
        .find(isOut('disconnect'))
        .slice(0, disconnects)
        .map((d) => {
          const next = broker.find((e) => e.kind === 'open' && e.conn === d.conn + 1)[0];
          return next ? round(next.at - d.at, 1) : NaN;
        });
      const measured = waits.filter((w) => !Number.isNaN(w));
      const figures = { waitsAfterDisconnectMs: measured, minimumWaitMs: measured.length ? Math.min(...measured) : null, requiredMs: MIN_RECONNECT_WAIT_MS, deviceBackoffSettings: 'production defaults (MQTT5_DEFAULTS)' };
      const evidence = log(broker, (e) => e.kind === 'open' || e.kind === 'close' || e.cmd === 'connect' || e.cmd === 'disconnect');
      if (measured.length === 0) return { result: 'fail', summary: 'the device never reconnected after DISCONNECT 0x89 within 30 s', figures, evidence };
      const early = measured.filter((w) => w < MIN_RECONNECT_WAIT_MS);
      if (early.length > 0 && profile === mqtt5TransportProfile) {
        // Not a pass: the device does reconnect too early. But the cause is in the SDK and the
        // transport cannot work around it without losing resends (see the summary).
        return {
          result: 'sdk-limitation',
          summary:
            `${early.length} of ${measured.length} reconnects came sooner than 1 s after the server's DISCONNECT (shortest ${Math.min(...early)} ms), ` +
            'with minReconnectDelayMs 1000: the aws-crt MQTT 5 client times a reconnect from its previous connection attempt, not from the disconnect, ' +
            'so a connection the server drops soon after CONNACK is retried at once. Pacing it in the transport needs Mqtt5Client.stop()/start(), ' +
            'which fails every unacknowledged PUBLISH and SUBSCRIBE and so breaks the resend on reconnect that MQTT 5.0 section 4.4 requires ("publish retry on missing PUBACK" fails when tried)',
          figures,
          evidence,
        };
      }
      if (early.length > 0) return { result: 'fail', summary: `${early.length} of ${measured.length} reconnects came sooner than 1 s after the server's DISCONNECT (shortest ${Math.min(...early)} ms)`, figures, evidence };
      return { result: 'pass', summary: `every reconnect waited >= 1 s (shortest ${Math.min(...measured)} ms)`, figures, evidence };
    });
  },
};

/** How long a case watches a live connection for a retransmission before forcing a reconnect. */
const LIVE_RESEND_WINDOW_MS = 3000;

const publishRetryCase: AdvisorCase = {
  name: 'publish retry on missing PUBACK',
  async run(profile) {
    const broker = await AdvisorBroker.start({
      // The first connection never gets a PUBACK; after the reconnect the session is resumed.
      onConnect: (conn) => conn.connack(conn.id > 1),
      onPublish: (conn, packet) => {
        if (conn.id > 1 && packet.messageId !== undefined) conn.puback(packet.messageId);
      },
    });
    return withDevice(profile, [broker], { brokerUrl: broker.url(), clientId: clientId('puback'), keepAliveSec: 30, ackTimeoutSec: 30, ...FAST_BACKOFF }, async (device) => {
      await broker.waitFor('CONNACK', isOut('connack', 1), 5000);
      const publishing = device.publish('advisor/telemetry', Buffer.from('{"advisor":"publish retry"}'));
      publishing.catch(() => undefined);
      const first = await broker.waitFor('PUBLISH', isIn('publish', 1), 5000);
      await AdvisorBroker.sleep(LIVE_RESEND_WINDOW_MS);
      const liveResends = broker.find((e) => isIn('publish', 1)(e) && e !== first && e.messageId === first.messageId);
      const deviceLeft = broker.find((e) => e.conn === 1 && ((e.kind === 'in' && e.cmd === 'disconnect') || e.kind === 'close')).length > 0;
      broker.connections[0]?.drop();
      const resend = await broker.waitFor('PUBLISH after reconnect', (e) => e.kind === 'in' && e.cmd === 'publish' && e.conn > 1, 10_000).catch(() => undefined);
      const reconnect = broker.find((e) => isIn('connect')(e) && e.conn > 1)[0];
      const outcome = await settle(publishing, 3000);
      const figures = {
        liveWindowMs: LIVE_RESEND_WINDOW_MS,
        liveResends: liveResends.length,
        deviceDisconnectedDuringWindow: deviceLeft,
        firstPacketId: first.messageId,
        resendPacketId: resend?.messageId ?? null,
        resendDup: resend?.dup ?? null,
        resendAfterReconnectMs: resend ? round(resend.at - first.at, 1) : null,
        reconnectCleanStart: reconnect?.clean ?? null,
        publishOutcome: outcome,
      };
      const evidence = log(broker, (e) => e.cmd !== 'pingreq' && e.cmd !== 'pingresp');
      const live = liveResends.find((e) => e.dup);
      if (live && !deviceLeft) return { result: 'pass', summary: `resent on the live connection with id ${live.messageId} and DUP`, figures, evidence };
      if (deviceLeft) return { result: 'fail', summary: 'the device disconnected instead of waiting for the PUBACK', figures, evidence };
      if (resend && resend.messageId === first.messageId && resend.dup && reconnect?.clean === false) {
        return {
          result: 'sdk-limitation',
          summary: `no resend on the live connection within ${LIVE_RESEND_WINDOW_MS} ms (the aws-crt MQTT 5 client never retransmits on a live connection); after a reconnect with Clean Start 0 it resent id ${resend.messageId} with DUP. ${MQTT5_RESEND_RULE}`,
          figures,
          evidence,
        };
      }
      return { result: 'fail', summary: 'no resend with the same packet id and DUP, neither on the live connection nor after resuming the session', figures, evidence };
    });
  },
};

const subscribeRetryCase: AdvisorCase = {
  name: 'subscribe retry on missing SUBACK',
  async run(profile) {
    const filter = 'advisor/commands/#';
    const broker = await AdvisorBroker.start({
      onConnect: (conn) => conn.connack(conn.id > 1),
      onSubscribe: (conn, packet) => {
        if (conn.id > 1) conn.suback(packet);
      },
    });
    return withDevice(profile, [broker], { brokerUrl: broker.url(), clientId: clientId('suback'), keepAliveSec: 30, ackTimeoutSec: 30, ...FAST_BACKOFF }, async (device) => {
      await broker.waitFor('CONNACK', isOut('connack', 1), 5000);
      const subscribing = device.subscribe(filter, () => undefined);
      subscribing.catch(() => undefined);
      const first = await broker.waitFor('SUBSCRIBE', isIn('subscribe', 1), 5000);
      await AdvisorBroker.sleep(LIVE_RESEND_WINDOW_MS);
      const liveResends = broker.find((e) => isIn('subscribe', 1)(e) && e !== first);
      const deviceLeft = broker.find((e) => e.conn === 1 && ((e.kind === 'in' && e.cmd === 'disconnect') || e.kind === 'close')).length > 0;
      broker.connections[0]?.drop();
      const resend = await broker.waitFor('SUBSCRIBE after reconnect', (e) => e.kind === 'in' && e.cmd === 'subscribe' && e.conn > 1 && !!e.subscriptions?.includes(filter), 10_000).catch(() => undefined);
      const outcome = await settle(subscribing, 3000);
      const figures = {
        liveWindowMs: LIVE_RESEND_WINDOW_MS,
        liveResends: liveResends.length,
        deviceDisconnectedDuringWindow: deviceLeft,
        resentAfterReconnect: !!resend,
        resendAfterMs: resend ? round(resend.at - first.at, 1) : null,
        sessionPresentOnResume: true,
        subscribeOutcome: outcome,
      };
      const evidence = log(broker, (e) => e.cmd !== 'pingreq' && e.cmd !== 'pingresp');
      if (liveResends.some((e) => e.subscriptions?.includes(filter)) && !deviceLeft) return { result: 'pass', summary: 'the SUBSCRIBE was resent on the live connection', figures, evidence };
      if (deviceLeft) return { result: 'fail', summary: 'the device disconnected instead of waiting for the SUBACK', figures, evidence };
      if (resend) {
        return {
          result: 'sdk-limitation',
          summary: `no resend on the live connection within ${LIVE_RESEND_WINDOW_MS} ms (the aws-crt MQTT 5 client never retransmits on a live connection; it fails the operation after ackTimeoutSeconds); the unacknowledged SUBSCRIBE was resent after the reconnect. MQTT 5.0 defines retransmission only on reconnect (section 4.4)`,
          figures,
          evidence,
        };
      }
      return { result: 'fail', summary: 'the SUBSCRIBE was never resent, neither on the live connection nor after a reconnect', figures, evidence };
    });
  },
};

const inboundPubackCase: AdvisorCase = {
  name: 'PUBACK for inbound QoS 1',
  async run(profile) {
    const broker = await AdvisorBroker.start();
    const inboundId = 42;
    return withDevice(profile, [broker], { brokerUrl: broker.url(), clientId: clientId('inbound'), keepAliveSec: 30, ...FAST_BACKOFF }, async (device) => {
      const received: string[] = [];
      await broker.waitFor('CONNACK', isOut('connack'), 5000);
      await device.subscribe('advisor/inbound/#', (topic) => received.push(topic));
      const sub = broker.find(isIn('subscribe'))[0]!;
      broker.connections[sub.conn - 1]!.publish('advisor/inbound/1', Buffer.from('{"advisor":"inbound"}'), inboundId);
      const sentAt = broker.now();
      const ack = await broker.waitFor('PUBACK', (e) => isIn('puback')(e) && e.messageId === inboundId, 3000).catch(() => undefined);
      await AdvisorBroker.sleep(100);
      const figures = { packetId: inboundId, pubackAfterMs: ack ? round(ack.at - sentAt, 1) : null, pubackReason: ack?.reasonCode ?? null, deliveredToApplication: received.length };
      const evidence = log(broker);
      if (!ack) return { result: 'fail', summary: `no PUBACK for inbound QoS 1 id ${inboundId} within 3 s`, figures, evidence };
      if ((ack.reasonCode ?? 0) >= 0x80) return { result: 'fail', summary: `PUBACK with failure reason 0x${ack.reasonCode!.toString(16)}`, figures, evidence };
      return { result: 'pass', summary: `PUBACK id ${inboundId} after ${figures.pubackAfterMs} ms`, figures, evidence };
    });
  },
};

const missingPingrespCase: AdvisorCase = {
  name: 'missing PINGRESP',
  async run(profile) {
    // 2 s: the SDK accepts keep-alives down to 1 s (the bundled aws-c-mqtt caps its PINGRESP wait at half the keep-alive).
    const keepAliveSec = 2;
    const limitMs = 1.5 * keepAliveSec * 1000;
    const broker = await AdvisorBroker.start({ onPingreq: () => undefined });
    return withDevice(profile, [broker], { brokerUrl: broker.url(), clientId: clientId('ping'), keepAliveSec, ...FAST_BACKOFF }, async () => {
      const connack = await broker.waitFor('CONNACK', isOut('connack', 1), 5000);
      const ping = await broker.waitFor('PINGREQ', isIn('pingreq', 1), keepAliveSec * 1000 + 2000).catch(() => undefined);
      const gone = ping
        ? await broker.waitFor('disconnect after the unanswered PINGREQ', (e) => e.conn === 1 && ((e.kind === 'in' && e.cmd === 'disconnect') || e.kind === 'close'), limitMs + 3000).catch(() => undefined)
        : undefined;
      const disconnectPacket = broker.find(isIn('disconnect', 1))[0];
      const figures = {
        keepAliveSec,
        limitMs,
        connackToPingreqMs: ping ? round(ping.at - connack.at, 1) : null,
        pingreqToDisconnectMs: ping && gone ? round(gone.at - ping.at, 1) : null,
        connackToDisconnectMs: gone ? round(gone.at - connack.at, 1) : null,
        disconnectReason: disconnectPacket?.reasonCode !== undefined ? `0x${disconnectPacket.reasonCode.toString(16)}` : null,
      };
      const evidence = log(broker, (e) => e.conn === 1);
      if (!ping) return { result: 'fail', summary: `no PINGREQ within keep-alive ${keepAliveSec} s`, figures, evidence };
      if (!gone) return { result: 'fail', summary: `still connected ${limitMs + 3000} ms after an unanswered PINGREQ`, figures, evidence };
      const waited = gone.at - ping.at;
      if (waited > limitMs) return { result: 'fail', summary: `disconnected ${round(waited, 1)} ms after the PINGREQ (limit ${limitMs} ms)`, figures, evidence };
      return { result: 'pass', summary: `disconnected ${round(waited, 1)} ms after the unanswered PINGREQ (limit 1.5 x keep-alive = ${limitMs} ms)`, figures, evidence };
    });
  },
};

async function sessionResumeCase(profile: DeviceProfile, sessionPresent: boolean) {
  const filter = 'advisor/session/#';
  const storedTopic = 'advisor/session/stored';
  const storedId = 7;
  const broker = await AdvisorBroker.start({
    onConnect(conn) {
      conn.connack(conn.id > 1 && sessionPresent);
      // A kept session delivers what was queued for the device while it was away.
      if (conn.id > 1 && sessionPresent) conn.publish(storedTopic, Buffer.from('{"advisor":"stored while offline"}'), storedId);
    },
  });
  return withDevice(profile, [broker], { brokerUrl: broker.url(), clientId: clientId(sessionPresent ? 'session' : 'expired'), keepAliveSec: 30, ...FAST_BACKOFF }, async (device) => {
    const received: string[] = [];
    await broker.waitFor('CONNACK', isOut('connack', 1), 5000);
    await device.subscribe(filter, (topic) => received.push(topic));
    await AdvisorBroker.sleep(200);
    broker.connections[0]!.drop();
    const reconnect = await broker.waitFor('CONNECT after the link loss', (e) => isIn('connect')(e) && e.conn > 1, 10_000).catch(() => undefined);
    await AdvisorBroker.sleep(1500);
    const resubscribes = broker.find((e) => e.kind === 'in' && e.cmd === 'subscribe' && e.conn > 1 && !!e.subscriptions?.includes(filter));
    const storedAck = broker.find((e) => isIn('puback')(e) && e.conn > 1 && e.messageId === storedId)[0];
    const figures = {
      reconnectCleanStart: reconnect?.clean ?? null,
      reconnectSessionExpirySec: reconnect?.sessionExpiryInterval ?? null,
      sessionPresentGranted: sessionPresent,
      resubscribes: resubscribes.length,
      ...(sessionPresent ? { storedMessageAcked: !!storedAck, storedMessageDeliveredToApplication: received.includes(storedTopic) } : {}),
    };
    return { reconnect, resubscribes, storedAck, received, storedTopic, figures, evidence: log(broker, (e) => e.cmd !== 'pingreq' && e.cmd !== 'pingresp') };
  });
}

const persistentSessionCase: AdvisorCase = {
  name: 'persistent session, happy case',
  async run(profile) {
    const r = await sessionResumeCase(profile, true);
    const { figures, evidence } = r;
    if (!r.reconnect) return { result: 'fail', summary: 'no reconnect after the link loss', figures, evidence };
    if (r.reconnect.clean !== false) return { result: 'fail', summary: 'the reconnect asked for a clean start, discarding the session', figures, evidence };
    if (r.resubscribes.length > 0) return { result: 'fail', summary: 'the device resubscribed although the broker said the session is present', figures, evidence };
    if (!r.storedAck || !r.received.includes(r.storedTopic)) return { result: 'fail', summary: 'the stored QoS 1 message was not acknowledged and delivered', figures, evidence };
    return { result: 'pass', summary: 'resumed with Clean Start 0, no resubscribe, stored QoS 1 message acknowledged and delivered', figures, evidence };
  },
};

const expiredSessionCase: AdvisorCase = {
  name: 'expired session',
  async run(profile) {
    const r = await sessionResumeCase(profile, false);
    const { figures, evidence } = r;
    if (!r.reconnect) return { result: 'fail', summary: 'no reconnect after the link loss', figures, evidence };
    if (r.resubscribes.length === 0) return { result: 'fail', summary: 'the broker said sessionPresent false but the device did not resubscribe', figures, evidence };
    return { result: 'pass', summary: `resubscribed after CONNACK sessionPresent false (${r.resubscribes.length} SUBSCRIBE)`, figures, evidence };
  },
};

/**
 * Starts a TLS broker with `cert`, points a device at it and waits for either a CONNECT (the
 * device accepted the certificate) or the device closing the TCP connection mid-handshake (it
 * refused it). The SDK's TLS stack (s2n) waits a random 10-30 s "blinding" delay before it closes
 * after a failed handshake, hence the long watch.
 */
async function tlsTrial(profile: DeviceProfile, cert: { cert: string; key: string }, urlHost: string, caPath: string, watchMs: number, serverName?: string) {
  const broker = await AdvisorBroker.start({}, cert);
  const settings: DeviceSettings = { brokerUrl: broker.url(urlHost), clientId: clientId('tls'), keepAliveSec: 30, caPath, ...FAST_BACKOFF, ...(serverName ? { serverName } : {}) };
  return withDevice(profile, [broker], settings, async () => {
    await broker.waitFor('CONNECT or an abandoned TLS handshake', (e) => isIn('connect')(e) || e.kind === 'tcp-close', watchMs).catch(() => undefined);
    const tcpOpen = broker.find((e) => e.kind === 'tcp-open')[0];
    const tcpClose = broker.find((e) => e.kind === 'tcp-close')[0];
    return {
      connects: broker.find(isIn('connect')).length,
      tcpConnections: broker.tcpConnections,
      // TCP connections that never completed the TLS handshake: the device hung up on our certificate.
      handshakesAbandoned: broker.tcpConnections - broker.connections.length,
      abandonedAfterMs: tcpOpen && tcpClose && broker.connections.length === 0 ? round(tcpClose.at - tcpOpen.at, 1) : null,
    };
  });
}

const tlsCase: AdvisorCase = {
  name: 'TLS',
  async run(profile) {
    const pki = createPki();
    try {
      const watchMs = 35_000;
      const [untrusted, wrongName, control, serverNameOption] = await Promise.all([
        tlsTrial(profile, pki.issueUntrusted('localhost'), 'localhost', pki.trustedCaPath, watchMs),
        tlsTrial(profile, pki.issueTrusted('wrong-name.advisor.test'), 'localhost', pki.trustedCaPath, watchMs),
        tlsTrial(profile, pki.issueTrusted('localhost'), 'localhost', pki.trustedCaPath, 5000),
        tlsTrial(profile, pki.issueTrusted('broker.advisor.test'), '127.0.0.1', pki.trustedCaPath, watchMs, 'broker.advisor.test'),
      ]);
      const figures = {
        untrustedCa: untrusted,
        wrongSubjectName: wrongName,
        validCertificateControl: control,
        // Informative: the transport documents a serverName option; does the device honour it?
        serverNameOptionHonoured: serverNameOption.connects > 0,
        serverNameTrial: serverNameOption,
      };
      const evidence =
        'each trial: a TLS broker on 127.0.0.1 with its own certificate; device URL mqtts://localhost:<port> (serverName trial: mqtts://127.0.0.1:<port> with serverName broker.advisor.test), caPath = the trusted test CA; abandonedAfterMs = TCP accept to the device closing without finishing the handshake';
      if (control.connects === 0) return { result: 'fail', summary: 'the device could not connect even with a valid certificate, so the rejections prove nothing', figures, evidence };
      if (untrusted.connects > 0) return { result: 'fail', summary: 'the device accepted a certificate from an untrusted CA', figures, evidence };
      if (wrongName.connects > 0) return { result: 'fail', summary: 'the device accepted a certificate for the wrong subject name', figures, evidence };
      if (untrusted.handshakesAbandoned === 0 || wrongName.handshakesAbandoned === 0) return { result: 'fail', summary: 'the device never even tried the bad-certificate brokers', figures, evidence };
      return { result: 'pass', summary: `rejected untrusted CA (${untrusted.handshakesAbandoned} handshakes abandoned) and wrong name (${wrongName.handshakesAbandoned}); valid certificate accepted`, figures, evidence };
    } finally {
      pki.remove();
    }
  },
};

export const ADVISOR_CASES: readonly AdvisorCase[] = [
  connectCase,
  jitterBackoffCase,
  exponentialBackoffCase,
  reconnectAfterDisconnectCase,
  serverDisconnectBackoffCase,
  publishRetryCase,
  subscribeRetryCase,
  inboundPubackCase,
  missingPingrespCase,
  persistentSessionCase,
  expiredSessionCase,
  tlsCase,
];
