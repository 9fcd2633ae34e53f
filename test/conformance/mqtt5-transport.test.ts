// The Transport conformance suite against Mqtt5Transport: the SDK's Mqtt5Client talking to a real
// mosquitto (MQTT 5) through the fault proxy.
import { createLogger } from '../../components/shared/logger';
import { Mqtt5Transport } from '../../components/mqtt-publisher/mqtt5-transport';
import { findMosquitto, MOSQUITTO_MISSING } from '../helpers/mosquitto';
import { linkedHarnessParts, startBrokerLink } from './broker-link';
import { transportConformance, type TransportHarness } from './transport-conformance';

const mosquitto = findMosquitto();
if (!mosquitto) console.error(`\n*** ${MOSQUITTO_MISSING} ***\n`);

const THING = 'conformance-mqtt5';
const logger = createLogger('mqtt5-conformance');
logger.level = process.env.LOG_LEVEL ?? 'error';
let harnesses = 0;

/** maxQueuedPublishes is what bounds this path; the test fills it while the link is cut. */
const MAX_QUEUED_PUBLISHES = 8;

async function mqtt5Harness(): Promise<TransportHarness> {
  const id = `${process.pid}-${(harnesses += 1)}`;
  const link = await startBrokerLink(mosquitto!, `cloud-${id}`);
  const transport = new Mqtt5Transport({
    brokerUrl: link.deviceUrl,
    clientId: `${THING}-${id}`,
    // Fast reconnects so a restored link is used within a second, not the production 1..120 s.
    minReconnectDelayMs: 100,
    maxReconnectDelayMs: 500,
    maxQueuedPublishes: MAX_QUEUED_PUBLISHES,
    ackTimeoutSec: 20,
    logger,
  });
  transport.start();
  await transport.waitConnected(10_000);
  let transportClosed = false;
  return {
    transport,
    ...linkedHarnessParts(link, THING),
    backpressure: { payloadBytes: 256, refusedWithin: MAX_QUEUED_PUBLISHES * 4 },
    async shutdownTransport() {
      transportClosed = true;
      await transport.close();
    },
    async cleanup() {
      if (!transportClosed) await transport.close();
      await link.close();
    },
  };
}

transportConformance('Mqtt5Transport', mqtt5Harness, { skip: mosquitto ? false : MOSQUITTO_MISSING });
