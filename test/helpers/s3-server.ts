import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './mosquitto';
import { PROJECT_ROOT } from './runtime-fixture';

export interface LocalS3 {
  endpoint: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  stop(): Promise<void>;
}

/**
 * s3rver (npm), a local S3-compatible server, in a process of its own. It encrypts ListObjectsV2
 * continuation tokens with DES, which Node 20's OpenSSL 3 only offers with the legacy provider;
 * a separate process gets that flag without weakening the test process itself.
 */
export async function startLocalS3(): Promise<LocalS3> {
  const folder = await mkdtemp(join(tmpdir(), 's3rver-'));
  const port = await freePort();
  const script = `
    const S3rver = require(${JSON.stringify(join(PROJECT_ROOT, 'node_modules', 's3rver'))});
    new S3rver({ port: ${port}, address: '127.0.0.1', directory: ${JSON.stringify(folder)}, silent: true })
      .run().then(() => process.stdout.write('ready\\n'), (e) => { console.error(e); process.exit(1); });
    process.on('SIGTERM', () => process.exit(0));`;
  const child: ChildProcess = spawn(process.execPath, ['--openssl-legacy-provider', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('s3rver did not start within 15 s')), 15_000);
    child.stdout!.on('data', (data: Buffer) => {
      if (data.toString().includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`s3rver exited with ${code} before it was ready`)));
  });
  return {
    endpoint: `http://127.0.0.1:${port}`,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
      await rm(folder, { recursive: true, force: true });
    },
  };
}
