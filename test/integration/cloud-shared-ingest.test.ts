// Three ingest processes on a mosquitto shared subscription, the integrity checker as a fourth
// process, twenty devices (real stores, publishers and SDK MQTT 5 clients). One ingest instance is
// killed with SIGKILL mid-run, and so is the checker (then restarted); every record must still end
// up archived exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createLogger } from '../../components/shared/logger';
import { LocalFolderArchive } from '../../cloud/archive';
import { auditArchive } from '../../cloud/audit';
import { instanceStatusKey } from '../../cloud/keys';
import { PROJECT_ROOT } from '../../scripts/pipeline';
import { findMosquitto, MOSQUITTO_MISSING, startMosquitto } from '../helpers/mosquitto';
import { tempRoot, waitFor } from '../helpers/runtime-fixture';
import { startSimDevice, type SimDevice } from '../helpers/sim-device';

const mosquitto = findMosquitto();
const logger = createLogger('shared-ingest-test');
logger.level = process.env.LOG_LEVEL ?? 'error';
const DEVICES = 20;
const INSTANCES = 3;

function startProcess(script: string, args: string[]): { child: ChildProcess; exited: Promise<number | null>; output: () => string } {
  const child = spawn(process.execPath, [join(PROJECT_ROOT, 'dist', 'cloud', script), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'info' } });
  let output = '';
  child.stdout?.on('data', (chunk) => (output = (output + chunk).slice(-20_000)));
  child.stderr?.on('data', (chunk) => (output = (output + chunk).slice(-20_000)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, output: () => output };
}

async function stopProcess(proc: { child: ChildProcess; exited: Promise<number | null> }): Promise<number | null> {
  if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGTERM');
  return proc.exited;
}

test(
  `${INSTANCES} ingest instances on a shared subscription and ${DEVICES} devices: one instance and the checker killed mid-run, every record archived exactly once`,
  { timeout: 240_000, skip: mosquitto ? false : MOSQUITTO_MISSING },
  async () => {
    const broker = await startMosquitto(mosquitto!);
    const archiveDir = join(tempRoot('shared-ingest-'), 'archive');
    const archive = new LocalFolderArchive(archiveDir);
    const common = ['--broker', broker.url, '--archive', archiveDir];
    const instances = Array.from({ length: INSTANCES }, (_, i) =>
      startProcess('main.js', [...common, '--integrity', 'checker', '--share-group', 'ingest', '--client-id', `ingest-${i + 1}`]),
    );
    const checkerArgs = [...common, '--interval-ms', '500', '--gap-grace-ms', '5000', '--ack-repeat-ms', '5000'];
    let checker = startProcess('checker-main.js', checkerArgs);
    const devices: SimDevice[] = [];
    let appended = 0;
    try {
      for (const proc of instances) await waitFor('an ingest instance subscribed', () => proc.output().includes('ingest subscribed') || (proc.child.exitCode !== null && 'exited'), 30_000);
      assert.ok(instances.every((proc) => proc.child.exitCode === null), `an instance exited at start:\n${instances.map((p) => p.output()).join('\n')}`);
      for (let d = 0; d < DEVICES; d += 1) devices.push(await startSimDevice(`elevator-${String(d + 1).padStart(4, '0')}`, broker.url, logger));

      const sampleFor = async (ms: number): Promise<void> => {
        const until = Date.now() + ms;
        while (Date.now() < until) {
          await Promise.all(devices.map((device) => device.append(3)));
          appended += 3 * DEVICES;
          await new Promise((r) => setTimeout(r, 200));
        }
      };
      await sampleFor(4_000);
      // The victim hangs first (SIGSTOP), so the broker keeps handing it its share, then dies with
      // those messages received or queued and never archived: only the devices' resends bring them back.
      const victim = instances[1];
      victim.child.kill('SIGSTOP');
      await sampleFor(2_000);
      victim.child.kill('SIGKILL');
      await victim.exited;
      await sampleFor(2_000);
      // The checker dies too and comes back: the archive is its whole state.
      checker.child.kill('SIGKILL');
      await checker.exited;
      await sampleFor(2_000);
      checker = startProcess('checker-main.js', checkerArgs);

      await waitFor(
        'every record acknowledged by the checker (so archived)',
        async () => (await Promise.all(devices.map((device) => device.backlog()))).every((n) => n === 0),
        150_000,
        500,
      );
      const audit = await auditArchive(archive);
      assert.equal(audit.unreadable.length, 0, JSON.stringify(audit.unreadable.slice(0, 3)));
      assert.equal(audit.duplicateRecords, 0, 'nothing stored twice');
      assert.equal(audit.missingRecords, 0, 'no gap left');
      assert.equal(audit.uniqueRecords, appended, 'every record appended is archived');
      assert.equal(audit.streams.length, DEVICES);

      // The work was really shared: each instance archived some envelopes (the killed one before it died).
      const survivors = [instances[0], instances[2]];
      await Promise.all(survivors.map(stopProcess));
      for (const i of [1, 3]) {
        const status = JSON.parse((await archive.get(instanceStatusKey(`ingest-${i}`)))!.toString('utf8'));
        assert.ok(status.objectsWritten > 0, `ingest-${i} archived envelopes (${status.objectsWritten})`);
        assert.equal(status.archiveErrors, 0);
      }
      const resent = devices.reduce((sum, device) => sum + device.publisher.metrics.recordsResent, 0);
      assert.ok(resent > 0, 'the killed instance took messages with it, which the devices resent');
      assert.equal(devices.reduce((sum, device) => sum + device.publisher.metrics.envelopesRepacked, 0), 0, 'every resend kept its first boundaries');
      logger.info('shared ingest run', { appended, resent, objects: audit.objects });
    } finally {
      await Promise.all(devices.map((device) => device.stop().catch(() => undefined)));
      await Promise.all([...instances, checker].map(stopProcess));
      await broker.stop();
    }
  },
);
