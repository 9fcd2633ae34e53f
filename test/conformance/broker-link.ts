/**
 * What both conformance runners share: a real mosquitto standing in for AWS IoT Core, the fault
 * proxy in front of it for the device's side of the link, and the "cloud" client connected to
 * mosquitto directly, so it keeps seeing the truth while the device's link is cut.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { FaultProxy } from '../chaos/fault-proxy';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto';

export interface BrokerLink {
  /** Where the device side connects: the fault proxy. */
  readonly deviceUrl: string;
  readonly cloud: MqttClient;
  cut(): Promise<void>;
  restore(): Promise<void>;
  restartForgettingSessions(): Promise<void>;
  close(): Promise<void>;
}

export async function startBrokerLink(mosquittoBinary: string, cloudClientId: string): Promise<BrokerLink> {
  // No persistence: a restart forgets every session, which is what the resubscribe test needs.
  let broker: Mosquitto = await startMosquitto(mosquittoBinary);
  const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: broker.port });
  const cloud = mqtt.connect(broker.url, { clientId: cloudClientId, reconnectPeriod: 200, protocolVersion: 5 });
  await new Promise<void>((resolve, reject) => {
    cloud.once('connect', () => resolve());
    cloud.once('error', reject);
  });
  cloud.on('error', () => undefined); // reconnects on its own after a broker restart
  return {
    deviceUrl: proxy.url,
    cloud,
    async cut() {
      // Reset what is open and refuse what comes next: the device sees the link die at once,
      // and every reconnect attempt fails until restore().
      proxy.refuseNew(true);
      proxy.resetAll();
    },
    async restore() {
      proxy.refuseNew(false);
    },
    async restartForgettingSessions() {
      broker.process.kill('SIGKILL');
      await broker.stop();
      broker = await startMosquitto(mosquittoBinary, { port: broker.port });
    },
    async close() {
      cloud.end(true);
      await proxy.close();
      await broker.stop();
    },
  };
}

/** The parts of a TransportHarness that come from the link and the thing, the same for every transport. */
export function linkedHarnessParts(link: BrokerLink, thing: string) {
  return {
    cloud: link.cloud,
    dataTopic: (name: string) => `dt/elevator/${thing}/${name}`,
    commandTopic: (name: string) => `cmd/elevator/${thing}/${name}`,
    cutLink: () => link.cut(),
    restoreLink: () => link.restore(),
    restartBrokerForgettingSessions: () => link.restartForgettingSessions(),
  };
}
