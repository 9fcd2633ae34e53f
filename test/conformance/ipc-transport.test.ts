// The Transport conformance suite against IpcTransport: the SDK's Greengrass IPC client talking to
// the local runtime, whose IoT bridge (with its nucleus-like spooler) reaches a real mosquitto
// through the fault proxy.
import type { MqttClient } from 'mqtt';
import { GreengrassIpc } from '../../components/shared/ipc';
import { createLogger } from '../../components/shared/logger';
import { IpcTransport } from '../../components/mqtt-publisher/ipc-transport';
import { findMosquitto, MOSQUITTO_MISSING } from '../helpers/mosquitto';
import { startRuntime, testRecipe } from '../helpers/runtime-fixture';
import { linkedHarnessParts, startBrokerLink } from './broker-link';
import { transportConformance, type TransportHarness } from './transport-conformance';

const mosquitto = findMosquitto();
if (!mosquitto) console.error(`\n*** ${MOSQUITTO_MISSING} ***\n`);

const THING = 'conformance-ipc';
const COMPONENT = 'test.ConformancePublisher';
const logger = createLogger('ipc-conformance');
logger.level = process.env.LOG_LEVEL ?? 'error';
let harnesses = 0;

// The suite checks the transport, not authorization: this device's data and command topics only.
const accessControl = {
  'aws.greengrass.ipc.mqttproxy': {
    'test.ConformancePublisher:mqttproxy:1': { operations: ['aws.greengrass#PublishToIoTCore'], resources: ['dt/elevator/{iot:thingName}/*'] },
    'test.ConformancePublisher:mqttproxy:2': { operations: ['aws.greengrass#SubscribeToIoTCore'], resources: ['cmd/elevator/{iot:thingName}/*'] },
  },
};

/** The nucleus spooler (mqtt.spooler.maxSizeInBytes) is what bounds this path: a small one fills while the link is cut. */
// Large enough for one 120 kB message (the payload test), small enough to fill in a few publishes.
const SPOOLER_MAX_BYTES = 256 * 1024;
const PAYLOAD_BYTES = 32 * 1024;

/**
 * The runtime's bridge connects to the broker in the background, and a publish before that is
 * only spooled: a probe that reaches the cloud shows the whole path is up.
 */
async function untilBridgeDelivers(transport: IpcTransport, cloud: MqttClient): Promise<void> {
  const probeTopic = `dt/elevator/${THING}/harness-ready`;
  const arrived = new Promise<void>((resolve) => {
    const onMessage = (topic: string) => {
      if (topic !== probeTopic) return;
      cloud.off('message', onMessage);
      resolve();
    };
    cloud.on('message', onMessage);
  });
  await cloud.subscribeAsync(probeTopic, { qos: 1 });
  await transport.publish(probeTopic, Buffer.from('ready'), { qos: 1 });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('the runtime\'s IoT bridge delivered nothing to the broker within 10 s')), 10_000);
  });
  try {
    await Promise.race([arrived, timeout]);
  } finally {
    clearTimeout(timer);
    await cloud.unsubscribeAsync(probeTopic);
  }
}

async function ipcHarness(): Promise<TransportHarness> {
  const link = await startBrokerLink(mosquitto!, `cloud-${process.pid}-${(harnesses += 1)}`);
  const fixture = await startRuntime([testRecipe(COMPONENT, 'sleep 600', accessControl)], {
    thingName: THING,
    brokerUrl: link.deviceUrl,
    spoolerMaxBytes: SPOOLER_MAX_BYTES,
  });
  const token = fixture.runtime.tokenFor(COMPONENT);
  if (!token) throw new Error(`the runtime issued no IPC token for ${COMPONENT}`);
  const ipc = await GreengrassIpc.connect({ logger, socketPath: fixture.runtime.socketPath, authToken: token, connectDeadlineMs: 10_000 });
  const transport = new IpcTransport(ipc);
  await untilBridgeDelivers(transport, link.cloud);
  let closed = false;
  const shutdown = async () => {
    if (closed) return;
    closed = true;
    // As MqttPublisher's runComponent does at shutdown: the transport, then the IPC connection it uses.
    await transport.close();
    await ipc.close();
  };
  return {
    transport,
    ...linkedHarnessParts(link, THING),
    // Envelope-sized messages: a publish counts its payload plus topic against the spooler.
    backpressure: { payloadBytes: PAYLOAD_BYTES, refusedWithin: Math.ceil(SPOOLER_MAX_BYTES / PAYLOAD_BYTES) * 3 },
    shutdownTransport: shutdown,
    async cleanup() {
      await shutdown();
      await fixture.stop();
      await link.close();
    },
  };
}

transportConformance('IpcTransport', ipcHarness, {
  skip: mosquitto ? false : MOSQUITTO_MISSING,
});
