/**
 * runtime/README.md "Run your own components", followed as written: the example recipe and
 * artifact are taken from the README itself, run by the runtime's command line with a recipes and
 * an artifacts folder of their own, and the runtime is stopped with SIGINT as Ctrl-C would.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { DIST, PROJECT_ROOT, peerRun, readJsonIfExists, readJsonLines, tempRoot, testRecipe, waitFor } from '../helpers/runtime-fixture';

/** The fenced block of `language` that follows `marker` in the README. */
function readmeBlock(readme: string, marker: string, language: string): string {
  const at = readme.indexOf(marker);
  assert.ok(at >= 0, `runtime/README.md still contains "${marker}"`);
  const open = readme.indexOf(`\`\`\`${language}\n`, at);
  const close = readme.indexOf('\n```', open + 1);
  assert.ok(open > at && close > open, `a \`\`\`${language} block follows "${marker}"`);
  return readme.slice(open + language.length + 4, close + 1);
}

test('the README example component runs under `node dist/runtime/main.js --recipes --artifacts --thing`, publishes, logs to its own file, and SIGINT stops everything with exit 0', { timeout: 40_000 }, async () => {
  const readme = readFileSync(join(PROJECT_ROOT, 'runtime', 'README.md'), 'utf8');
  const recipe = YAML.parse(readmeBlock(readme, 'A minimal component of your own', 'yaml')) as Record<string, unknown>;
  const artifact = readmeBlock(readme, 'and its artifact', 'js');
  assert.equal(recipe.ComponentName, 'com.example.Hello');

  const root = tempRoot('own-');
  const recipes = join(root, 'recipes');
  const artifacts = join(root, 'artifacts');
  mkdirSync(recipes);
  mkdirSync(join(artifacts, 'com.example.Hello'), { recursive: true });
  writeFileSync(join(recipes, 'com.example.Hello.yaml'), YAML.stringify(recipe));
  writeFileSync(join(artifacts, 'com.example.Hello', 'hello.js'), artifact);
  // A second component listens on the example's topic, so the test sees what it published.
  const listener = testRecipe('test.Listener', peerRun('subscribe example/hello/my-thing'), {
    'aws.greengrass.ipc.pubsub': { 'test.Listener:pubsub:1': { operations: ['aws.greengrass#SubscribeToTopic'], resources: ['example/hello/my-thing'] } },
  });
  writeFileSync(join(recipes, 'test.Listener.yaml'), YAML.stringify(listener));

  const gg = join(root, 'gg');
  // The README has the user run `npm install aws-iot-device-sdk-v2` next to hello.js; NODE_PATH
  // lends it this project's copy instead.
  const runtime = spawn(process.execPath, [join(DIST, 'runtime', 'main.js'), '--root', gg, '--recipes', recipes, '--artifacts', artifacts, '--thing', 'my-thing'], {
    env: { ...process.env, NODE_PATH: join(PROJECT_ROOT, 'node_modules') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  runtime.stdout.on('data', (d) => (output += d));
  runtime.stderr.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => runtime.on('exit', (code) => resolve(code)));
  let stopped = false;
  try {
    const received = await waitFor(
      'a greeting from the example component',
      () => {
        const lines = readJsonLines<{ topic: string; message: { greeting: string; at: string } }>(join(gg, 'work', 'test.Listener', 'received.jsonl'));
        return lines.length > 0 ? lines[0] : undefined;
      },
      20_000,
    );
    assert.equal(received.topic, 'example/hello/my-thing');
    assert.equal(received.message.greeting, 'hello', 'GREETING came from {configuration:/greeting} through Setenv');

    const log = readFileSync(join(gg, 'logs', 'com.example.Hello.log'), 'utf8');
    assert.match(log, /\[runtime\] Run: exec node ".*artifacts\/com\.example\.Hello\/hello\.js"/, 'its own log file, with the step line');
    assert.ok(existsSync(join(gg, 'logs', 'test.Listener.log')), 'one log per component');
    const pids = readJsonIfExists<{ components: Record<string, { pid?: number; state: string }> }>(join(gg, 'status.json'))!;
    assert.equal(pids.components['com.example.Hello'].state, 'RUNNING');

    runtime.kill('SIGINT');
    const code = await exited;
    stopped = true;
    assert.equal(code, 0, output.slice(-2000));
    const final = readJsonIfExists<{ components: Record<string, { state: string }> }>(join(gg, 'status.json'))!;
    for (const [name, component] of Object.entries(final.components)) assert.notEqual(component.state, 'RUNNING', `${name} was stopped`);
    const helloPid = pids.components['com.example.Hello'].pid!;
    assert.throws(() => process.kill(helloPid, 0), /ESRCH/, 'the component process is gone');
  } finally {
    if (!stopped) {
      runtime.kill('SIGKILL');
      await exited;
    }
  }
});
