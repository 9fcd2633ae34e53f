/**
 * A runtime that dies without stopping (SIGKILL) leaves its components running. The next runtime
 * on the same root must not start second copies beside them (two acquisitions on one store), and
 * a runtime must not start at all on a root another live runtime serves.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { DIST, tempRoot, testRecipe, waitFor } from '../helpers/runtime-fixture';

const COMPONENT = 'test.Sleeper';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function runningPid(gg: string): number | undefined {
  const path = join(gg, 'status.json');
  if (!existsSync(path)) return undefined;
  try {
    const state = JSON.parse(readFileSync(path, 'utf8')).components?.[COMPONENT];
    return state?.state === 'RUNNING' && typeof state.pid === 'number' ? state.pid : undefined;
  } catch {
    return undefined; // caught mid-write
  }
}

/** A root whose only component sleeps, and the command line of a runtime process on it. */
function runtimeRootWithSleeper(prefix: string, thing: string): { gg: string; args: string[] } {
  const root = tempRoot(prefix);
  const recipes = join(root, 'recipes');
  mkdirSync(recipes);
  mkdirSync(join(root, 'artifacts'));
  writeFileSync(join(recipes, `${COMPONENT}.yaml`), YAML.stringify(testRecipe(COMPONENT, 'sleep 600')));
  const gg = join(root, 'gg');
  return { gg, args: [join(DIST, 'runtime', 'main.js'), '--root', gg, '--recipes', recipes, '--artifacts', join(root, 'artifacts'), '--thing', thing] };
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', () => resolve()));
}

test('after a runtime is SIGKILLed, the next one on its root kills the components it left running before starting them again; a second runtime on a live root is refused', { timeout: 90_000 }, async () => {
  const { gg, args } = runtimeRootWithSleeper('previous-', 'previous-thing');
  const runtimes: ChildProcess[] = [];
  const start = () => {
    const child = spawn(process.execPath, args, { stdio: 'ignore' });
    runtimes.push(child);
    return child;
  };
  let orphan: number | undefined;
  try {
    const first = start();
    orphan = await waitFor('the component RUNNING under the first runtime', () => runningPid(gg), 30_000);

    const second = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 30_000 });
    assert.notEqual(second.status, 0, 'the second runtime did not stop');
    assert.match(`${second.stdout}${second.stderr}`, /another runtime \(pid \d+\) holds .*runtime\.lock/);
    assert.ok(alive(orphan), 'the refused runtime touched nothing');

    first.kill('SIGKILL');
    await exited(first);
    assert.ok(alive(orphan), 'SIGKILL of the runtime alone leaves its component running');

    start();
    await waitFor('the left-over component killed', () => !alive(orphan!), 30_000);
    const restarted = await waitFor('the component RUNNING again under the new runtime', () => {
      const pid = runningPid(gg);
      return pid !== undefined && pid !== orphan ? pid : undefined;
    }, 30_000);
    assert.ok(alive(restarted));
  } finally {
    for (const child of runtimes) if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
    await Promise.all(runtimes.map(exited));
    if (orphan !== undefined && alive(orphan)) process.kill(-orphan, 'SIGKILL');
  }
});

test('two runtimes started on one root in the same instant: exactly one runs, the other stops naming the lock', { timeout: 60_000 }, async () => {
  const { gg, args } = runtimeRootWithSleeper('same-instant-', 'same-instant-thing');
  const outputs = ['', ''];
  const both = [0, 1].map((i) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (chunk) => (outputs[i] += chunk));
    child.stderr!.on('data', (chunk) => (outputs[i] += chunk));
    return child;
  });
  try {
    await waitFor('one of the two to stop', () => both.some((c) => c.exitCode !== null), 30_000);
    const [refused, kept] = both[0].exitCode !== null ? [0, 1] : [1, 0];
    assert.notEqual(both[refused].exitCode, 0);
    assert.match(outputs[refused], /another runtime/);
    await waitFor('the component RUNNING under the runtime that kept the root', () => runningPid(gg), 30_000);
    assert.equal(both[kept].exitCode, null, 'the other runtime still runs');
  } finally {
    for (const child of both) if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
    await Promise.all(both.map(exited));
  }
});

