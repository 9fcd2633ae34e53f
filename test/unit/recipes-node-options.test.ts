import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { componentSettings, nodeOptionsProblem } from '../../components/shared/deployment-hooks';
import { PROJECT_ROOT } from '../helpers/runtime-fixture';

// nodeOptions is configuration the recipe's lifecycle reads (as NODE_OPTIONS), not the component:
// a deployment can tune a fleet's Node flags, and changing them restarts the component.

interface Recipe {
  ComponentName: string;
  ComponentConfiguration: { DefaultConfiguration: Record<string, unknown> };
  Manifests: Array<{ Lifecycle: { Setenv?: Record<string, string> } }>;
}

const recipes = readdirSync(join(PROJECT_ROOT, 'recipes'))
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => YAML.parse(readFileSync(join(PROJECT_ROOT, 'recipes', f), 'utf8')) as Recipe);

test('every recipe sets NODE_OPTIONS from its nodeOptions configuration', () => {
  assert.equal(recipes.length, 4);
  for (const recipe of recipes) {
    for (const manifest of recipe.Manifests) {
      assert.equal(manifest.Lifecycle.Setenv?.NODE_OPTIONS, '{configuration:/nodeOptions}', recipe.ComponentName);
    }
    assert.equal(typeof recipe.ComponentConfiguration.DefaultConfiguration.nodeOptions, 'string', recipe.ComponentName);
  }
  // One setting for all four: the bench compares it with Node's defaults, and the systemd units repeat it.
  assert.equal(new Set(recipes.map((r) => r.ComponentConfiguration.DefaultConfiguration.nodeOptions)).size, 1);
  for (const unit of readdirSync(join(PROJECT_ROOT, 'deploy', 'systemd')).filter((f) => f.endsWith('.service'))) {
    const text = readFileSync(join(PROJECT_ROOT, 'deploy', 'systemd', unit), 'utf8');
    assert.ok(text.includes(`Environment=NODE_OPTIONS=${recipes[0].ComponentConfiguration.DefaultConfiguration.nodeOptions}\n`), `${unit} sets the recipes' NODE_OPTIONS`);
  }
});

test('Node starts with each default nodeOptions, and it takes effect', () => {
  for (const recipe of recipes) {
    const nodeOptions = recipe.ComponentConfiguration.DefaultConfiguration.nodeOptions as string;
    // Node refuses a flag it does not allow in NODE_OPTIONS, and exits 9 naming it.
    const run = spawnSync(process.execPath, ['-e', ''], {
      env: { ...process.env, NODE_OPTIONS: nodeOptions },
      encoding: 'utf8',
    });
    assert.equal(run.status, 0, `${recipe.ComponentName}: NODE_OPTIONS="${nodeOptions}": ${run.stderr}`);
  }
  // The flag takes effect: objects that survive a while make V8 grow the young generation, to
  // 32 MiB by default here, and to no more than its two 1 MiB semi-spaces with the flag.
  const youngGeneration = (env: NodeJS.ProcessEnv) => {
    const script = 'let keep = []; for (let r = 0; r < 50; r += 1) { keep = []; for (let i = 0; i < 200000; i += 1) keep.push({ i }); } console.log(require("v8").getHeapSpaceStatistics().find((x) => x.space_name === "new_space").space_size)';
    const run = spawnSync(process.execPath, ['-e', script], { env, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    return Number(run.stdout);
  };
  const { NODE_OPTIONS: _inherited, ...withoutOptions } = process.env;
  assert.ok(youngGeneration(withoutOptions) > 2 * 1024 * 1024, 'without the flag the young generation grows past 2 MiB');
  assert.ok(youngGeneration({ ...withoutOptions, NODE_OPTIONS: '--max-semi-space-size=1' }) <= 2 * 1024 * 1024, 'with it, it stays within two 1 MiB semi-spaces');
});

test('the components do not see nodeOptions: it is removed before their schema checks the configuration', () => {
  for (const recipe of recipes) {
    assert.equal('nodeOptions' in componentSettings(recipe.ComponentConfiguration.DefaultConfiguration), false, recipe.ComponentName);
    assert.equal('accessControl' in componentSettings(recipe.ComponentConfiguration.DefaultConfiguration), false, recipe.ComponentName);
  }
});

test('nodeOptionsProblem: what Node allows in NODE_OPTIONS passes; anything else is named', () => {
  assert.equal(nodeOptionsProblem(undefined), undefined, 'no key, nothing to check');
  assert.equal(nodeOptionsProblem(''), undefined);
  assert.equal(nodeOptionsProblem('--max-semi-space-size=1 --max-old-space-size=96'), undefined);
  assert.equal(nodeOptionsProblem('-r ./preload.js --max-semi-space-size=1'), undefined, 'a flag\'s value is not a flag');
  assert.match(nodeOptionsProblem('--max-semi-space-size=1 --no-such-flag')!, /"--no-such-flag" is not allowed in NODE_OPTIONS/);
  assert.match(nodeOptionsProblem('--expose-internals')!, /"--expose-internals" is not allowed/, 'a real Node flag that NODE_OPTIONS refuses');
  assert.match(nodeOptionsProblem(96)!, /must be a string/);
  // The same verdict as Node's own, for each of these.
  for (const options of ['--max-semi-space-size=1', '--no-such-flag', '--expose-internals']) {
    const run = spawnSync(process.execPath, ['-e', ''], { env: { ...process.env, NODE_OPTIONS: options }, encoding: 'utf8' });
    assert.equal(nodeOptionsProblem(options) === undefined, run.status === 0, `${options}: Node exits ${run.status}`);
  }
});
