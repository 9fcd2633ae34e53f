import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { tempRoot } from './runtime-fixture';

/**
 * A real mosquitto broker for tests that need more than aedes (MQTT 5, shared subscriptions, a
 * broker outside our process). .ci/run installs Debian's mosquitto. Where it is missing, tests
 * must skip loudly, never pass.
 */
export function findMosquitto(): string | undefined {
  const candidates = [process.env.MOSQUITTO_BIN, '/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto'];
  return candidates.find((c): c is string => !!c && existsSync(c));
}

export const MOSQUITTO_MISSING =
  'SKIPPED: mosquitto is not installed, so this test did not run. Install it (apt-get install mosquitto) or set MOSQUITTO_BIN; .ci/run installs it.';

export interface Mosquitto {
  url: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

export interface MosquittoOptions {
  /** Reuse a port (a broker restart); a free one when absent. */
  port?: number;
  /** Keep sessions and queued messages on disk here, saved every second, as a production broker would. */
  persistenceDir?: string;
}

export async function startMosquitto(binary: string, options: MosquittoOptions = {}): Promise<Mosquitto> {
  const port = options.port ?? (await freePort());
  const dir = tempRoot('mq-');
  const config = join(dir, 'mosquitto.conf');
  const persistence = options.persistenceDir
    ? ['persistence true', `persistence_location ${options.persistenceDir}/`, 'autosave_interval 1']
    : ['persistence false'];
  writeFileSync(config, [`listener ${port} 127.0.0.1`, 'allow_anonymous true', ...persistence, 'log_dest stderr', ''].join('\n'));
  const child = spawn(binary, ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk) => (stderr += chunk));
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited at start: ${stderr}`);
    const listening = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (listening) break;
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port}: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    process: child,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
