import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIST, tempRoot } from '../helpers/runtime-fixture';

function runRuntimeWith(files: Record<string, string>): { status: number | null; output: string } {
  const root = tempRoot('rr-');
  const recipes = join(root, 'recipes');
  mkdirSync(recipes);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(recipes, name), text);
  const result = spawnSync(process.execPath, [join(DIST, 'runtime/main.js'), '--root', join(root, 'gg'), '--recipes', recipes], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

const valid = (name: string) => `RecipeFormatVersion: "2020-01-25"
ComponentName: ${name}
ComponentVersion: "1.0.0"
Manifests:
  - Platform: { os: linux }
    Lifecycle:
      Run: "true"
`;

test('a recipe missing a required field stops the runtime, naming the file and the field', () => {
  const { status, output } = runRuntimeWith({
    'good.yaml': valid('test.Good'),
    'bad.yaml': 'RecipeFormatVersion: "2020-01-25"\nComponentName: test.Bad\nManifests: []\n',
  });
  assert.equal(status, 2);
  assert.match(output, /malformed recipe/);
  assert.match(output, /bad\.yaml/);
  assert.match(output, /ComponentVersion/);
});

test('a recipe with a wrong format version or bad lifecycle names the field', () => {
  const wrongVersion = runRuntimeWith({ 'v.yaml': valid('test.V').replace('2020-01-25', '2019-01-01') });
  assert.equal(wrongVersion.status, 2);
  assert.match(wrongVersion.output, /v\.yaml.*RecipeFormatVersion/);
  const badStep = runRuntimeWith({ 's.yaml': valid('test.S').replace('Run: "true"', 'Run: { Scrip: "true" }') });
  assert.equal(badStep.status, 2);
  assert.match(badStep.output, /s\.yaml.*\/Manifests\/0\/Lifecycle\/Run/);
});

test('a recipe that is not YAML at all is named', () => {
  const { status, output } = runRuntimeWith({ 'broken.yaml': 'ComponentName: [unclosed\n' });
  assert.equal(status, 2);
  assert.match(output, /broken\.yaml: not valid YAML/);
});

test('a HARD dependency on a component without a recipe is refused', () => {
  const text = `${valid('test.Needy')}ComponentDependencies:\n  test.Missing:\n    DependencyType: HARD\n`;
  const { status, output } = runRuntimeWith({ 'needy.yaml': text });
  assert.equal(status, 2);
  assert.match(output, /needy\.yaml.*ComponentDependencies\/test\.Missing/);
});

test('two components that use the same accessControl policy id stop the runtime, naming the id and both components', () => {
  const withPolicy = (name: string) => `${valid(name)}ComponentConfiguration:
  DefaultConfiguration:
    accessControl:
      aws.greengrass.ipc.pubsub:
        shared:policy:1:
          operations: ["aws.greengrass#PublishToTopic"]
          resources: ["x"]
`;
  const { status, output } = runRuntimeWith({ 'one.yaml': withPolicy('test.One'), 'two.yaml': withPolicy('test.Two') });
  assert.equal(status, 2);
  assert.match(output, /policy ids must be unique across components: \\"shared:policy:1\\" in test\.One and test\.Two/);
});
