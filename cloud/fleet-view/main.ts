import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger, errorMessage } from '../../components/shared/logger';
import { LocalFolderArchive } from '../archive';
import { DEFAULT_VIEW_HOST, DEFAULT_VIEW_PORT, FleetViewServer } from './server';

const USAGE = `usage: node dist/cloud/fleet-view/main.js [--archive .local/run/cloud-archive] [--port ${DEFAULT_VIEW_PORT}] [--host ${DEFAULT_VIEW_HOST}]`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      archive: { type: 'string', default: '.local/run/cloud-archive' },
      port: { type: 'string', default: String(DEFAULT_VIEW_PORT) },
      host: { type: 'string', default: DEFAULT_VIEW_HOST },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be an integer in 0..65535, got "${values.port}"`);
  const logger = createLogger('FleetView');
  const view = new FleetViewServer({ archive: new LocalFolderArchive(resolve(values.archive)), port, host: values.host, logger });
  const url = await view.start();
  process.stdout.write(`fleet view: ${url}\n`);
  const shutdown = (): void => {
    view.stop().then(
      () => process.exit(0),
      () => process.exit(0),
    );
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

main().catch((error) => {
  process.stderr.write(`fleet view: ${errorMessage(error)}\n${USAGE}\n`);
  process.exit(1);
});
