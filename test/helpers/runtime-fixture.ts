import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import YAML from 'yaml';
import { GreengrassIpc } from '../../components/shared/ipc';
import { createLogger } from '../../components/shared/logger';
import { LocalRuntime, type RuntimeOptions } from '../../runtime/runtime';

export const PROJECT_ROOT = resolve(__dirname, '..', '..', '..');
export const DIST = join(PROJECT_ROOT, 'dist');

/** A recipe for a test component whose Run step is a compiled test helper script. */
export function testRecipe(name: string, run: string, accessControl: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    RecipeFormatVersion: '2020-01-25',
    ComponentName: name,
    ComponentVersion: '1.0.0',
    ComponentConfiguration: { DefaultConfiguration: { accessControl } },
    Manifests: [{ Platform: { os: 'linux' }, Lifecycle: { Run: run } }],
    ...extra,
  };
}

export function peerRun(args: string): string {
  return `exec "${process.execPath}" "${join(DIST, 'test/helpers/ipc-peer.js')}" ${args}`;
}

export interface RuntimeFixture {
  runtime: LocalRuntime;
  root: string;
  workOf(component: string): string;
  stop(): Promise<void>;
}

/** Short temp roots: a Unix socket path must stay under 108 bytes. */
export function tempRoot(prefix = 'rt-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function startRuntime(recipes: Array<Record<string, unknown>>, options: Partial<RuntimeOptions> = {}): Promise<RuntimeFixture> {
  const root = tempRoot();
  const recipesDir = join(root, 'recipes');
  mkdirSync(recipesDir);
  for (const recipe of recipes) writeFileSync(join(recipesDir, `${recipe.ComponentName}.yaml`), YAML.stringify(recipe));
  // The in-process runtime's expected warnings (refused calls, full spoolers) would bury test
  // output; TEST_RUNTIME_LOG_LEVEL=info shows them when a test needs investigating.
  const logger = createLogger('LocalRuntime-test');
  logger.level = process.env.TEST_RUNTIME_LOG_LEVEL ?? 'error';
  const runtime = new LocalRuntime({
    root: join(root, 'gg'),
    recipesDir,
    artifactsDir: join(root, 'artifacts'),
    thingName: 'test-thing',
    logger,
    restartDelayMs: 100,
    ...options,
  });
  await runtime.start();
  return {
    runtime,
    root,
    workOf: (component) => join(root, 'gg', 'work', component),
    stop: () => runtime.stop(),
  };
}

/** Polls probe until it gives a value other than undefined or false; an async probe is awaited (a pending promise is not a value). */
export async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 20_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export function readJsonIfExists<T>(path: string): T | undefined {
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return undefined; // partially written; poll again
  }
}

export function readJsonLines<T>(path: string): T[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as T);
}

/** A folder of recipes for a deployment's recipeDirectoryPath. */
export function recipeFolder(fixture: RuntimeFixture, name: string, recipes: Array<Record<string, unknown>>): string {
  const folder = join(fixture.root, name);
  mkdirSync(folder, { recursive: true });
  for (const recipe of recipes) writeFileSync(join(folder, `${recipe.ComponentName}-${recipe.ComponentVersion}.yaml`), YAML.stringify(recipe));
  return folder;
}

/** The test's own SDK client, as the local Greengrass CLI principal (token from cli_ipc_info). */
export async function cliClient(fixture: RuntimeFixture): Promise<GreengrassIpc> {
  const info = JSON.parse(readFileSync(join(fixture.root, 'gg', 'cli_ipc_info', 'ipc.json'), 'utf8')) as { socketPath: string; token: string };
  const logger = createLogger('test-cli');
  logger.level = 'error';
  return GreengrassIpc.connect({ logger, socketPath: info.socketPath, authToken: info.token, connectDeadlineMs: 10_000 });
}

/** CreateLocalDeployment, then GetLocalDeploymentStatus until it succeeds or fails. */
export async function deployAndWait(cli: GreengrassIpc, request: Parameters<GreengrassIpc['createLocalDeployment']>[0], timeoutMs = 15_000) {
  const id = await cli.createLocalDeployment(request);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const deployment = await cli.getLocalDeploymentStatus(id);
    if (deployment.status === 'SUCCEEDED' || deployment.status === 'FAILED') return deployment;
    if (Date.now() > deadline) throw new Error(`deployment ${id} still ${deployment.status} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
