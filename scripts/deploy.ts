import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { GreengrassIpc, describeIpcError } from '../components/shared/ipc';
import { createLogger } from '../components/shared/logger';

// A local deployment against a running local runtime, like `greengrass-cli deployment create`:
// it connects as the Greengrass CLI principal (token in <root>/cli_ipc_info/ipc.json), calls
// CreateLocalDeployment and, with --wait, polls GetLocalDeploymentStatus until the deployment ends.
const usage = `usage: node dist/scripts/deploy.js [--root .local/greengrass] [--recipes DIR] [--artifacts DIR]
  [--add Name=Version ...] [--remove Name ...] [--merge Name=merge.json|yaml ...] [--reset Name=/a,/b ...]
  [--failure-handling-policy ROLLBACK|DO_NOTHING] [--group NAME] [--wait] [--timeout-sec 600]
exit: 0 deployed (or queued, without --wait), 1 the deployment FAILED or was CANCELED, 2 bad usage or IPC error
`;

const { values } = parseArgs({
  options: {
    root: { type: 'string', default: '.local/greengrass' },
    recipes: { type: 'string' },
    artifacts: { type: 'string' },
    add: { type: 'string', multiple: true, default: [] },
    remove: { type: 'string', multiple: true, default: [] },
    merge: { type: 'string', multiple: true, default: [] },
    reset: { type: 'string', multiple: true, default: [] },
    'failure-handling-policy': { type: 'string' },
    group: { type: 'string' },
    wait: { type: 'boolean', default: false },
    'timeout-sec': { type: 'string', default: '600' },
    'poll-ms': { type: 'string', default: '500' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

class UsageError extends Error {}

function pair(flag: string, text: string): [string, string] {
  const at = text.indexOf('=');
  if (at <= 0 || at === text.length - 1) throw new UsageError(`--${flag} takes Name=value, got "${text}"`);
  return [text.slice(0, at), text.slice(at + 1)];
}

function buildRequest(): Parameters<GreengrassIpc['createLocalDeployment']>[0] {
  const rootComponentVersionsToAdd: Record<string, string> = {};
  for (const text of values.add!) {
    const [name, version] = pair('add', text);
    rootComponentVersionsToAdd[name] = version;
  }
  const componentToConfiguration: Record<string, { MERGE?: Record<string, unknown>; RESET?: string[] }> = {};
  for (const text of values.merge!) {
    const [name, file] = pair('merge', text);
    let merge: unknown;
    try {
      merge = YAML.parse(readFileSync(file, 'utf8'));
    } catch (error) {
      throw new UsageError(`--merge ${name}: cannot read ${file}: ${(error as Error).message}`);
    }
    if (typeof merge !== 'object' || merge === null || Array.isArray(merge)) throw new UsageError(`--merge ${name}: ${file} must hold an object`);
    componentToConfiguration[name] = { ...componentToConfiguration[name], MERGE: merge as Record<string, unknown> };
  }
  for (const text of values.reset!) {
    const [name, list] = pair('reset', text);
    // "" resets the whole configuration (developer guide, "Update component configurations").
    const pointers = list === '""' ? [''] : list.split(',');
    for (const pointer of pointers) if (pointer !== '' && !pointer.startsWith('/')) throw new UsageError(`--reset ${name}: "${pointer}" is not a JSON pointer (it must start with "/")`);
    componentToConfiguration[name] = { ...componentToConfiguration[name], RESET: [...(componentToConfiguration[name]?.RESET ?? []), ...pointers] };
  }
  const policy = values['failure-handling-policy'];
  if (policy !== undefined && policy !== 'ROLLBACK' && policy !== 'DO_NOTHING') throw new UsageError(`--failure-handling-policy must be ROLLBACK or DO_NOTHING, got "${policy}"`);
  return {
    groupName: values.group,
    recipeDirectoryPath: values.recipes ? resolve(values.recipes) : undefined,
    artifactsDirectoryPath: values.artifacts ? resolve(values.artifacts) : undefined,
    rootComponentVersionsToAdd: Object.keys(rootComponentVersionsToAdd).length > 0 ? rootComponentVersionsToAdd : undefined,
    rootComponentsToRemove: values.remove!.length > 0 ? values.remove : undefined,
    componentToConfiguration: Object.keys(componentToConfiguration).length > 0 ? componentToConfiguration : undefined,
    failureHandlingPolicy: policy as 'ROLLBACK' | 'DO_NOTHING' | undefined,
  };
}

async function main(): Promise<number> {
  if (values.help) {
    process.stdout.write(usage);
    return 0;
  }
  const request = buildRequest();
  const infoPath = join(values.root!, 'cli_ipc_info', 'ipc.json');
  let info: { socketPath: string; token: string };
  try {
    info = JSON.parse(readFileSync(infoPath, 'utf8'));
  } catch (error) {
    throw new UsageError(`cannot read ${infoPath} (is the local runtime running with --root ${values.root}?): ${(error as Error).message}`);
  }
  const logger = createLogger('deploy');
  logger.level = process.env.LOG_LEVEL ?? 'error';
  const ipc = await GreengrassIpc.connect({ logger, socketPath: info.socketPath, authToken: info.token, connectDeadlineMs: 10_000 });
  try {
    const deploymentId = await ipc.createLocalDeployment(request);
    process.stdout.write(`deployment ${deploymentId} QUEUED\n`);
    if (!values.wait) return 0;
    const deadline = Date.now() + Number(values['timeout-sec']) * 1000;
    let last = 'QUEUED';
    for (;;) {
      const deployment = await ipc.getLocalDeploymentStatus(deploymentId);
      if (deployment.status !== last) {
        last = deployment.status;
        process.stdout.write(`deployment ${deploymentId} ${last}\n`);
      }
      if (last === 'SUCCEEDED' || last === 'FAILED' || last === 'CANCELED') {
        const details = deployment.deploymentStatusDetails;
        if (details) process.stdout.write(`${JSON.stringify(details)}\n`);
        return last === 'SUCCEEDED' ? 0 : 1;
      }
      if (Date.now() > deadline) {
        process.stderr.write(`deployment ${deploymentId} still ${last} after ${values['timeout-sec']} s; stopped waiting\n`);
        return 1;
      }
      await new Promise((r) => setTimeout(r, Number(values['poll-ms'])));
    }
  } finally {
    await ipc.close();
  }
}

main().then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(`${error instanceof UsageError ? `${error.message}\n${usage}` : `deploy failed: ${describeIpcError(error)}\n`}`);
    process.exit(2);
  },
);
