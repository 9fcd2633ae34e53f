import { execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from './mosquitto';
import { tempRoot } from './runtime-fixture';

/**
 * A real mosquitto standing in for both brokers of a device without Greengrass: a plain listener
 * on loopback (the device's local bus) and a TLS listener that requires a client certificate, as
 * AWS IoT Core does (the "IoT Core" of the test). The PKI is generated with openssl at run time
 * into a temp folder: a CA, a server certificate for 127.0.0.1 and localhost, and one client
 * certificate (keys are never committed).
 */
export interface TestPki {
  dir: string;
  caPath: string;
  serverCertPath: string;
  serverKeyPath: string;
  clientCertPath: string;
  clientKeyPath: string;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`openssl ${args[0]} failed (the TLS tests need the openssl CLI on PATH): ${stderr || (error as Error).message}`);
  }
}

function issue(dir: string, name: string, extensions: string): void {
  writeFileSync(join(dir, `${name}.ext`), extensions);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.csr`], dir);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.pem`], dir);
}

export function createTestPki(): TestPki {
  const dir = tempRoot('pki-');
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=elevator-test-ca', '-keyout', 'ca.key', '-out', 'ca.pem'], dir);
  issue(dir, 'server', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n');
  issue(dir, 'device', 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n');
  return {
    dir,
    caPath: join(dir, 'ca.pem'),
    serverCertPath: join(dir, 'server.pem'),
    serverKeyPath: join(dir, 'server.key'),
    clientCertPath: join(dir, 'device.pem'),
    clientKeyPath: join(dir, 'device.key'),
  };
}

export interface TwoListenerMosquitto {
  /** mqtt://127.0.0.1:<port>: the device's local bus. */
  plainUrl: string;
  /** mqtts://127.0.0.1:<port>: mutual TLS, a client certificate signed by pki.caPath required. */
  tlsUrl: string;
  pki: TestPki;
  stop(): Promise<void>;
}

async function listening(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function startTwoListenerMosquitto(binary: string, pki: TestPki = createTestPki()): Promise<TwoListenerMosquitto> {
  const plainPort = await freePort();
  const tlsPort = await freePort();
  const dir = tempRoot('mq-tls-');
  const config = join(dir, 'mosquitto.conf');
  writeFileSync(
    config,
    [
      // Run as root, mosquitto would switch to user "mosquitto", which cannot read the private temp PKI.
      `user ${userInfo().username}`,
      'per_listener_settings false',
      'allow_anonymous true',
      'persistence false',
      'log_dest stderr',
      `listener ${plainPort} 127.0.0.1`,
      `listener ${tlsPort} 127.0.0.1`,
      `cafile ${pki.caPath}`,
      `certfile ${pki.serverCertPath}`,
      `keyfile ${pki.serverKeyPath}`,
      'require_certificate true',
      '',
    ].join('\n'),
  );
  const child = spawn(binary, ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk) => (stderr += chunk));
  const deadline = Date.now() + 10_000;
  while (!((await listening(plainPort)) && (await listening(tlsPort)))) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited at start: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${plainPort} and ${tlsPort}: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    plainUrl: `mqtt://127.0.0.1:${plainPort}`,
    tlsUrl: `mqtts://127.0.0.1:${tlsPort}`,
    pki,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
