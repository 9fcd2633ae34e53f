import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  RecipeError,
  dependencyOrder,
  interpolate,
  jsonPointer,
  loadRecipes,
  mergeConfiguration,
  parseRecipe,
  stepOf,
  type InterpolationContext,
  type LoadedRecipe,
  type Recipe,
} from '../../runtime/recipe';

const MINIMAL_YAML = `---
RecipeFormatVersion: 2020-01-25
ComponentName: com.example.Hello
ComponentVersion: 1.0.0
Manifests:
  - Platform:
      os: windows
    Lifecycle:
      Run: hello.exe
  - Platform:
      os: linux
    Lifecycle:
      Run: echo linux
`;

function recipeObject(patch: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    RecipeFormatVersion: '2020-01-25',
    ComponentName: 'com.example.Hello',
    ComponentVersion: '1.0.0',
    Manifests: [{ Platform: { os: 'linux' }, Lifecycle: { Run: 'echo hi' } }],
    ...patch,
  };
}

function manifestWith(lifecycle: Record<string, unknown>): Record<string, unknown> {
  return { Manifests: [{ Platform: { os: 'linux' }, Lifecycle: lifecycle }] };
}

/** Runs fn, expects a RecipeError, returns its message. */
function recipeErrorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof RecipeError, `expected RecipeError, got ${String(error)}`);
    return error.message;
  }
  assert.fail('expected a RecipeError');
}

describe('parseRecipe: valid recipes', () => {
  test('accepts a minimal YAML recipe (unquoted date and version read as strings) and picks the linux manifest', () => {
    const loaded = parseRecipe(MINIMAL_YAML, '/recipes/hello.yaml');
    assert.equal(loaded.file, '/recipes/hello.yaml');
    assert.equal(loaded.recipe.RecipeFormatVersion, '2020-01-25');
    assert.equal(loaded.recipe.ComponentName, 'com.example.Hello');
    assert.equal(loaded.recipe.ComponentVersion, '1.0.0');
    assert.deepEqual(loaded.lifecycle, { Run: 'echo linux' });
  });

  test('accepts the same recipe as JSON', () => {
    const json = JSON.stringify(
      recipeObject({
        Manifests: [
          { Platform: { os: 'darwin' }, Lifecycle: { Run: 'mac' } },
          { Platform: { os: 'linux' }, Lifecycle: { Run: { Script: 'run linux', Timeout: 30 } } },
        ],
      }),
    );
    const loaded = parseRecipe(json, '/recipes/hello.json');
    assert.equal(loaded.recipe.ComponentName, 'com.example.Hello');
    assert.deepEqual(loaded.lifecycle, { Run: { Script: 'run linux', Timeout: 30 } });
  });

  test('a manifest without Platform, or with os "*", applies to linux', () => {
    const noPlatform = parseRecipe(JSON.stringify(recipeObject({ Manifests: [{ Lifecycle: { Run: 'any' } }] })), 'a.json');
    assert.deepEqual(noPlatform.lifecycle, { Run: 'any' });
    const star = parseRecipe(JSON.stringify(recipeObject({ Manifests: [{ Platform: { os: '*' }, Lifecycle: { Run: 'star' } }] })), 'b.json');
    assert.deepEqual(star.lifecycle, { Run: 'star' });
  });

  test('the first matching manifest wins', () => {
    const loaded = parseRecipe(
      JSON.stringify(recipeObject({ Manifests: [{ Platform: { os: 'linux' }, Lifecycle: { Run: 'first' } }, { Lifecycle: { Run: 'second' } }] })),
      'c.json',
    );
    assert.deepEqual(loaded.lifecycle, { Run: 'first' });
  });

  test('a recipe with no manifest for linux is refused naming /Manifests', () => {
    const message = recipeErrorOf(() => parseRecipe(JSON.stringify(recipeObject({ Manifests: [{ Platform: { os: 'windows' }, Lifecycle: { Run: 'x' } }] })), 'w.json'));
    assert.equal(message, 'w.json: /Manifests has no manifest for Platform.os "linux"');
  });

  test('stepOf turns a string step into { Script } and keeps an object step', () => {
    assert.deepEqual(stepOf('echo hi'), { Script: 'echo hi' });
    assert.deepEqual(stepOf({ Script: 'x', Timeout: 5 }), { Script: 'x', Timeout: 5 });
    assert.equal(stepOf(undefined), undefined);
  });
});

describe('parseRecipe: refusals name the file and the JSON pointer of the field', () => {
  test('text that is not YAML is refused naming the file', () => {
    assert.match(recipeErrorOf(() => parseRecipe('a: [unclosed', '/r/bad.yaml')), /^\/r\/bad\.yaml: not valid YAML: /);
  });

  test('text that is not JSON in a .json file is refused naming the file', () => {
    assert.match(recipeErrorOf(() => parseRecipe('{"a":', '/r/bad.json')), /^\/r\/bad\.json: not valid JSON: /);
  });

  test('a missing ComponentVersion is refused naming the field', () => {
    const recipe = recipeObject();
    delete recipe.ComponentVersion;
    const message = recipeErrorOf(() => parseRecipe(JSON.stringify(recipe), '/r/noversion.json'));
    assert.match(message, /^\/r\/noversion\.json: /);
    assert.match(message, /\/ must have required property 'ComponentVersion'/);
  });

  test('a ComponentVersion that is not major.minor.patch is refused at /ComponentVersion', () => {
    for (const version of ['1.0', 'v1.0.0', '1.0.0.0', 'latest']) {
      const message = recipeErrorOf(() => parseRecipe(JSON.stringify(recipeObject({ ComponentVersion: version })), '/r/semver.json'));
      assert.match(message, /^\/r\/semver\.json: \/ComponentVersion must match pattern/, version);
    }
  });

  test('semantic versions with pre-release and build metadata are accepted', () => {
    for (const version of ['0.0.1', '10.20.30', '1.0.0-rc.1', '1.0.0+build.5', '1.0.0-alpha+001']) {
      assert.equal(parseRecipe(JSON.stringify(recipeObject({ ComponentVersion: version })), 'ok.json').recipe.ComponentVersion, version);
    }
  });

  test('a RecipeFormatVersion other than 2020-01-25 is refused at /RecipeFormatVersion', () => {
    const message = recipeErrorOf(() => parseRecipe(JSON.stringify(recipeObject({ RecipeFormatVersion: '2021-01-25' })), '/r/format.json'));
    assert.match(message, /^\/r\/format\.json: \/RecipeFormatVersion must be equal to constant/);
  });

  test('an unknown lifecycle key is refused at the lifecycle\'s JSON pointer', () => {
    const text = JSON.stringify(recipeObject(manifestWith({ Runn: 'echo typo' })));
    const message = recipeErrorOf(() => parseRecipe(text, '/r/typo.json'));
    assert.match(message, /^\/r\/typo\.json: \/Manifests\/0\/Lifecycle must NOT have additional properties/);
  });

  test('an unknown lifecycle key is refused with the unknown key named', () => {
    const text = JSON.stringify(recipeObject(manifestWith({ Runn: 'echo typo' })));
    const message = recipeErrorOf(() => parseRecipe(text, '/r/typo.json'));
    assert.match(message, /Runn/);
  });

  test('a lifecycle step object without Script is refused at the step\'s JSON pointer', () => {
    const text = JSON.stringify(recipeObject(manifestWith({ Run: { Timeout: 10 } })));
    const message = recipeErrorOf(() => parseRecipe(text, '/r/noscript.json'));
    assert.match(message, /^\/r\/noscript\.json: /);
    assert.match(message, /\/Manifests\/0\/Lifecycle\/Run must have required property 'Script'/);
  });

  test('the JSON pointer names the manifest index where the error is', () => {
    const text = JSON.stringify(recipeObject({ Manifests: [{ Platform: { os: 'linux' }, Lifecycle: { Run: 'ok' } }, { Lifecycle: { Install: { Script: '' } } }] }));
    assert.match(recipeErrorOf(() => parseRecipe(text, 'x.json')), /\/Manifests\/1\/Lifecycle\/Install/);
  });

  test('a YAML recipe is refused with the same pointers as a JSON one', () => {
    const text = MINIMAL_YAML.replace('ComponentVersion: 1.0.0', 'ComponentVersion: "1.0"');
    assert.match(recipeErrorOf(() => parseRecipe(text, '/r/hello.yaml')), /^\/r\/hello\.yaml: \/ComponentVersion must match pattern/);
  });
});

describe('interpolate', () => {
  const paths: Record<string, { artifacts: string; decompressed: string; work: string }> = {
    'com.example.App': { artifacts: '/gg/packages/artifacts/com.example.App/1.0.0', decompressed: '/gg/packages/artifacts-unarchived/com.example.App/1.0.0', work: '/gg/work/com.example.App' },
    'com.example.Dep': { artifacts: '/gg/packages/artifacts/com.example.Dep/2.0.0', decompressed: '/gg/unarchived/dep', work: '/gg/work/com.example.Dep' },
    'com.example.Stranger': { artifacts: '/gg/a/s', decompressed: '/gg/d/s', work: '/gg/work/com.example.Stranger' },
  };
  const configurations: Record<string, Record<string, unknown>> = {
    'com.example.App': { server: { host: 'localhost', port: 8080, tls: { enabled: true } }, name: 'app', 'a/b': 'slash', 'm~n': 'tilde', list: ['x', 'y'] },
    'com.example.Dep': { storePath: 'store.db' },
    'com.example.Stranger': { secret: 's3cret' },
  };
  const context: InterpolationContext = {
    component: 'com.example.App',
    thingName: 'elevator-0001',
    rootPath: '/greengrass/v2',
    paths: (component) => paths[component],
    configuration: (component) => configurations[component],
    dependencies: ['com.example.Dep'],
  };

  function run(text: string): { text: string; unresolved: string[] } {
    const unresolved: string[] = [];
    return { text: interpolate(text, context, unresolved), unresolved };
  }

  test('{artifacts:path}, {artifacts:decompressedPath} and {work:path} resolve to the component\'s own folders', () => {
    assert.deepEqual(run('node {artifacts:path}/main.js'), { text: 'node /gg/packages/artifacts/com.example.App/1.0.0/main.js', unresolved: [] });
    assert.equal(run('{artifacts:decompressedPath}/x').text, '/gg/packages/artifacts-unarchived/com.example.App/1.0.0/x');
    assert.equal(run('cd {work:path}').text, 'cd /gg/work/com.example.App');
  });

  test('{configuration:/a/b} inserts a string value as is', () => {
    assert.equal(run('host={configuration:/server/host}').text, 'host=localhost');
    assert.equal(run('{configuration:/name}').text, 'app');
  });

  test('{configuration:/a/b} inserts a number, boolean, object or array value as JSON', () => {
    assert.equal(run('{configuration:/server/port}').text, '8080');
    assert.equal(run('{configuration:/server/tls/enabled}').text, 'true');
    assert.equal(run('{configuration:/server/tls}').text, '{"enabled":true}');
    assert.equal(run('{configuration:/list}').text, '["x","y"]');
  });

  test('{configuration:...} pointers honour the ~1 and ~0 escapes', () => {
    assert.equal(run('{configuration:/a~1b}|{configuration:/m~0n}').text, 'slash|tilde');
  });

  test('{iot:thingName} and {kernel:rootPath} resolve to the device\'s values', () => {
    assert.equal(run('{kernel:rootPath}/logs/{iot:thingName}.log').text, '/greengrass/v2/logs/elevator-0001.log');
  });

  test('{Dep:work:path} and {Dep:configuration:/x} resolve for a declared dependency', () => {
    assert.deepEqual(run('{com.example.Dep:work:path}/{com.example.Dep:configuration:/storePath}'), { text: '/gg/work/com.example.Dep/store.db', unresolved: [] });
    assert.equal(run('{com.example.Dep:artifacts:path}').text, '/gg/packages/artifacts/com.example.Dep/2.0.0');
  });

  test('a component may name itself in the prefixed form', () => {
    assert.equal(run('{com.example.App:work:path}').text, '/gg/work/com.example.App');
  });

  test('{Other:work:path} for a component that is not a declared dependency stays in place and is reported', () => {
    assert.deepEqual(run('{com.example.Stranger:work:path} {com.example.Stranger:configuration:/secret}'), {
      text: '{com.example.Stranger:work:path} {com.example.Stranger:configuration:/secret}',
      unresolved: ['{com.example.Stranger:work:path}', '{com.example.Stranger:configuration:/secret}'],
    });
  });

  test('unknown and unresolvable variables stay in place and are reported in order, while the others resolve', () => {
    const result = run('{work:path} {configuration:/missing} {unknown:thing} {artifacts:nope} {a:b:c:d} {iot:thingName}');
    assert.equal(result.text, '/gg/work/com.example.App {configuration:/missing} {unknown:thing} {artifacts:nope} {a:b:c:d} elevator-0001');
    assert.deepEqual(result.unresolved, ['{configuration:/missing}', '{unknown:thing}', '{artifacts:nope}', '{a:b:c:d}']);
  });

  test('a dependency whose folders are unknown leaves its path variables unresolved', () => {
    const unresolved: string[] = [];
    const text = interpolate('{com.example.Dep:work:path}', { ...context, paths: () => undefined }, unresolved);
    assert.equal(text, '{com.example.Dep:work:path}');
    assert.deepEqual(unresolved, ['{com.example.Dep:work:path}']);
  });

  test('text without variables is returned unchanged and nothing is reported', () => {
    assert.deepEqual(run('echo "no variables here" && exit 0'), { text: 'echo "no variables here" && exit 0', unresolved: [] });
  });
});

describe('jsonPointer (RFC 6901)', () => {
  const doc = { a: { b: { c: 42 } }, 'x/y': 1, 'p~q': 2, '~1': 'tilde-one', arr: [10, 20, { k: 'v' }], nul: null, zero: 0 };

  test('walks objects and arrays', () => {
    assert.equal(jsonPointer(doc, '/a/b/c'), 42);
    assert.deepEqual(jsonPointer(doc, '/a/b'), { c: 42 });
    assert.equal(jsonPointer(doc, '/arr/1'), 20);
    assert.equal(jsonPointer(doc, '/arr/2/k'), 'v');
  });

  test('the empty pointer is the whole document', () => {
    assert.equal(jsonPointer(doc, ''), doc);
  });

  test('"~1" decodes to "/" and "~0" to "~", and "~01" to the literal "~1" (decoded in that order)', () => {
    assert.equal(jsonPointer(doc, '/x~1y'), 1);
    assert.equal(jsonPointer(doc, '/p~0q'), 2);
    assert.equal(jsonPointer(doc, '/~01'), 'tilde-one');
  });

  test('falsy values are found, not mistaken for missing', () => {
    assert.equal(jsonPointer(doc, '/nul'), null);
    assert.equal(jsonPointer(doc, '/zero'), 0);
  });

  test('missing members, paths through scalars and pointers without a leading "/" give undefined', () => {
    assert.equal(jsonPointer(doc, '/nope'), undefined);
    assert.equal(jsonPointer(doc, '/a/b/c/d'), undefined);
    assert.equal(jsonPointer(doc, '/nul/x'), undefined);
    assert.equal(jsonPointer(doc, '/arr/3'), undefined);
    assert.equal(jsonPointer(doc, 'a/b'), undefined);
    assert.equal(jsonPointer(undefined, '/a'), undefined);
  });

  test('only own members are found: "/toString" and "/constructor" on a plain object are undefined', () => {
    assert.equal(jsonPointer({}, '/toString'), undefined);
    assert.equal(jsonPointer({ a: 1 }, '/constructor'), undefined);
    assert.equal(jsonPointer({}, '/__proto__'), undefined);
  });
});

describe('mergeConfiguration (deployment MERGE)', () => {
  test('merges objects key by key at every depth, replaces arrays and scalars, and keeps untouched keys', () => {
    const base = { a: { b: 1, c: [1, 2, 3], d: { e: 'keep', f: 'old' } }, g: 'x', h: [1] };
    const merge = { a: { c: [9], d: { f: 'new' }, n: true }, h: [2, 3], i: null };
    assert.deepEqual(mergeConfiguration(base, merge), { a: { b: 1, c: [9], d: { e: 'keep', f: 'new' }, n: true }, g: 'x', h: [2, 3], i: null });
  });

  test('an object replaces a scalar and a scalar replaces an object', () => {
    assert.deepEqual(mergeConfiguration({ a: 1, b: { c: 1 } }, { a: { x: 1 }, b: 'flat' }), { a: { x: 1 }, b: 'flat' });
  });

  test('an array never merges with an object at the same key', () => {
    assert.deepEqual(mergeConfiguration({ a: { '0': 'x', k: 1 } }, { a: ['y'] }), { a: ['y'] });
    assert.deepEqual(mergeConfiguration({ a: ['y'] }, { a: { k: 1 } }), { a: { k: 1 } });
  });

  test('neither input is modified', () => {
    const base = { a: { b: 1 } };
    const merge = { a: { c: 2 } };
    const result = mergeConfiguration(base, merge);
    assert.deepEqual(base, { a: { b: 1 } });
    assert.deepEqual(merge, { a: { c: 2 } });
    assert.notEqual(result.a, base.a);
  });
});

function loadedRecipe(name: string, dependencies: Record<string, 'HARD' | 'SOFT'> = {}): LoadedRecipe {
  const recipe = recipeObject({
    ComponentName: name,
    ComponentDependencies: Object.fromEntries(Object.entries(dependencies).map(([dep, type]) => [dep, { VersionRequirement: '>=1.0.0', DependencyType: type }])),
  }) as unknown as Recipe;
  return { file: `/recipes/${name}.yaml`, recipe, lifecycle: recipe.Manifests[0].Lifecycle };
}

function names(recipes: LoadedRecipe[]): string[] {
  return recipes.map((r) => r.recipe.ComponentName);
}

describe('dependencyOrder', () => {
  test('puts every dependency (HARD or SOFT) before its dependents and keeps every recipe once', () => {
    const ordered = names(
      dependencyOrder([
        loadedRecipe('Publisher', { Buffer: 'HARD' }),
        loadedRecipe('Health', { Buffer: 'SOFT', Acquisition: 'SOFT' }),
        loadedRecipe('Acquisition', { Buffer: 'HARD' }),
        loadedRecipe('Buffer', { Base: 'HARD' }),
        loadedRecipe('Base'),
      ]),
    );
    assert.equal(ordered.length, 5);
    assert.deepEqual([...ordered].sort(), ['Acquisition', 'Base', 'Buffer', 'Health', 'Publisher']);
    const at = (name: string): number => ordered.indexOf(name);
    assert.ok(at('Base') < at('Buffer'), ordered.join());
    assert.ok(at('Buffer') < at('Publisher'), ordered.join());
    assert.ok(at('Buffer') < at('Acquisition'), ordered.join());
    assert.ok(at('Buffer') < at('Health'), ordered.join());
    assert.ok(at('Acquisition') < at('Health'), ordered.join());
  });

  test('independent recipes keep their input order', () => {
    assert.deepEqual(names(dependencyOrder([loadedRecipe('C'), loadedRecipe('A'), loadedRecipe('B')])), ['C', 'A', 'B']);
  });

  test('a dependency without a recipe is skipped, not an error', () => {
    assert.deepEqual(names(dependencyOrder([loadedRecipe('A', { 'aws.greengrass.Nucleus': 'SOFT' })])), ['A']);
  });

  test('a cycle throws RecipeError naming the cycle', () => {
    const message = recipeErrorOf(() => dependencyOrder([loadedRecipe('A', { B: 'HARD' }), loadedRecipe('B', { C: 'SOFT' }), loadedRecipe('C', { A: 'HARD' })]));
    assert.match(message, /^\/recipes\/A\.yaml: \/ComponentDependencies form a cycle: A -> B -> C -> A$/);
  });

  test('a component that depends on itself is a cycle', () => {
    assert.match(recipeErrorOf(() => dependencyOrder([loadedRecipe('Self', { Self: 'HARD' })])), /cycle: Self -> Self$/);
  });
});

describe('loadRecipes', () => {
  function folderWith(files: Record<string, string>): string {
    const folder = mkdtempSync(join(tmpdir(), 'recipes-test-'));
    for (const [name, text] of Object.entries(files)) writeFileSync(join(folder, name), text);
    return folder;
  }

  test('reads *.yaml, *.yml and *.json in file-name order and ignores other files', () => {
    const folder = folderWith({
      'b.yml': JSON.stringify(recipeObject({ ComponentName: 'B' })),
      'a.yaml': MINIMAL_YAML,
      'c.json': JSON.stringify(recipeObject({ ComponentName: 'C' })),
      'README.md': '# not a recipe',
    });
    const loaded = loadRecipes(folder);
    assert.deepEqual(names(loaded), ['com.example.Hello', 'B', 'C']);
    assert.equal(loaded[0].file, join(folder, 'a.yaml'));
  });

  test('refuses two recipes with the same ComponentName, naming both files', () => {
    const folder = folderWith({ 'one.json': JSON.stringify(recipeObject()), 'two.yaml': MINIMAL_YAML });
    const message = recipeErrorOf(() => loadRecipes(folder));
    assert.equal(message, `${join(folder, 'two.yaml')}: /ComponentName com.example.Hello is also defined in ${join(folder, 'one.json')}`);
  });

  test('refuses a HARD dependency that has no recipe in the folder', () => {
    const folder = folderWith({ 'a.json': JSON.stringify(recipeObject({ ComponentDependencies: { 'com.example.Missing': { DependencyType: 'HARD' } } })) });
    const message = recipeErrorOf(() => loadRecipes(folder));
    assert.equal(message, `${join(folder, 'a.json')}: /ComponentDependencies/com.example.Missing names a component that has no recipe in ${folder}`);
  });

  test('a dependency without DependencyType is HARD and is refused the same way', () => {
    const folder = folderWith({ 'a.json': JSON.stringify(recipeObject({ ComponentDependencies: { 'com.example.Missing': { VersionRequirement: '>=1.0.0' } } })) });
    assert.match(recipeErrorOf(() => loadRecipes(folder)), /\/ComponentDependencies\/com\.example\.Missing names a component that has no recipe/);
  });

  test('a SOFT dependency without a recipe is accepted', () => {
    const folder = folderWith({ 'a.json': JSON.stringify(recipeObject({ ComponentDependencies: { 'com.example.Optional': { DependencyType: 'SOFT' } } })) });
    assert.deepEqual(names(loadRecipes(folder)), ['com.example.Hello']);
  });

  test('a HARD dependency on a recipe in the folder is accepted', () => {
    const folder = folderWith({
      'a.json': JSON.stringify(recipeObject({ ComponentName: 'A', ComponentDependencies: { B: { DependencyType: 'HARD' } } })),
      'b.json': JSON.stringify(recipeObject({ ComponentName: 'B' })),
    });
    assert.deepEqual(names(loadRecipes(folder)), ['A', 'B']);
  });

  test('the first invalid recipe aborts the load with its file named', () => {
    const folder = folderWith({ 'good.json': JSON.stringify(recipeObject()), 'bad.json': JSON.stringify(recipeObject({ ComponentVersion: 'x' })) });
    assert.match(recipeErrorOf(() => loadRecipes(folder)), new RegExp(`^${join(folder, 'bad.json').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: /ComponentVersion`));
  });
});
