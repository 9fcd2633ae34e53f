import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { createLogger, errorMessage } from '../components/shared/logger';
import { RecipeError } from './recipe';
import { LocalRuntime } from './runtime';

// Wiring only: parse flags, build the runtime, start it, stop it on SIGTERM/SIGINT.
const { values } = parseArgs({
  options: {
    root: { type: 'string', default: '.local/greengrass' },
    recipes: { type: 'string', default: 'recipes' },
    artifacts: { type: 'string', default: 'build/artifacts' },
    thing: { type: 'string', default: 'elevator-dev-01' },
    broker: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    ca: { type: 'string' },
    config: { type: 'string' },
    only: { type: 'string' },
    'spooler-max-bytes': { type: 'string' },
    'iot-pacing': { type: 'string', default: 'on' },
    'restart-delay-ms': { type: 'string' },
    'error-reset-ms': { type: 'string' },
    'deployment-profile': { type: 'string', default: 'cloud' },
    'update-timeout-sec': { type: 'string' },
    'validation-timeout-sec': { type: 'string' },
    'settle-ms': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (values.help) {
  process.stdout.write(
    'usage: node dist/runtime/main.js [--root .local/greengrass] [--recipes recipes] [--artifacts build/artifacts]\n' +
      '  [--thing elevator-dev-01] [--broker mqtt://host:port (default: embedded aedes)] [--config merge.json|yaml]\n' +
      '  [--cert device.pem.crt --key private.pem.key] [--ca AmazonRootCA1.pem] (with an mqtts:// --broker)\n' +
      '  [--only Comp1,Comp2] [--spooler-max-bytes 2621440] [--restart-delay-ms 0] [--error-reset-ms 3600000]\n' +
      '  [--iot-pacing on|off] (on: 100 publishes/s and 512 KiB/s on the IoT connection, as the nucleus paces)\n' +
      '  [--deployment-profile cloud|cli] [--update-timeout-sec 60] [--validation-timeout-sec 20] [--settle-ms 2000]\n' +
      'Deploy to it with: node dist/scripts/deploy.js --root <same root> ... (see runtime/README.md)\n',
  );
  process.exit(0);
}

const logger = createLogger('LocalRuntime', { thing: values.thing });

function positiveNumberFlag(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0) {
    process.stderr.write(`--${name} must be a non-negative number, got "${text}"\n`);
    process.exit(2);
  }
  return value;
}

async function main(): Promise<void> {
  const profile = values['deployment-profile'];
  if (profile !== 'cloud' && profile !== 'cli') {
    process.stderr.write(`--deployment-profile must be cloud or cli, got "${profile}"\n`);
    process.exit(2);
  }
  const pacing = values['iot-pacing'];
  if (pacing !== 'on' && pacing !== 'off') {
    process.stderr.write(`--iot-pacing must be on or off, got "${pacing}"\n`);
    process.exit(2);
  }
  const configurationMerge = values.config ? (YAML.parse(readFileSync(values.config, 'utf8')) as Record<string, Record<string, unknown>>) : undefined;
  const runtime = new LocalRuntime({
    root: values.root!,
    recipesDir: values.recipes!,
    artifactsDir: values.artifacts!,
    thingName: values.thing!,
    brokerUrl: values.broker,
    brokerTls: { certPath: values.cert, keyPath: values.key, caPath: values.ca },
    configurationMerge,
    only: values.only ? values.only.split(',') : undefined,
    spoolerMaxBytes: positiveNumberFlag('spooler-max-bytes', values['spooler-max-bytes']),
    iotPacing: pacing === 'on',
    restartDelayMs: positiveNumberFlag('restart-delay-ms', values['restart-delay-ms']),
    errorResetTimeMs: positiveNumberFlag('error-reset-ms', values['error-reset-ms']),
    deployments: {
      profile,
      updatePolicyTimeoutSec: positiveNumberFlag('update-timeout-sec', values['update-timeout-sec']),
      validationTimeoutSec: positiveNumberFlag('validation-timeout-sec', values['validation-timeout-sec']),
      settleMs: positiveNumberFlag('settle-ms', values['settle-ms']),
    },
    logger,
  });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('stopping on signal', { signal });
    runtime.stop().then(
      () => process.exit(0),
      (error) => {
        logger.error('runtime stop failed', { error: errorMessage(error) });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  await runtime.start();
}

main().catch((error) => {
  if (error instanceof RecipeError) logger.error('malformed recipe; the runtime will not start', { error: error.message });
  else logger.error('runtime failed to start', { error: errorMessage(error), stack: (error as Error).stack });
  process.exit(2);
});
