import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import {
  PROJECT_ROOT,
  NATIVE_MODULES,
  nativeModulesRequiredBy,
  packageComponents,
  readProjectVersion,
  readSourceRecipes,
  sha256Base64,
  verifyPackage,
  type PackagedComponent,
} from '../../scripts/package';
import { bumpVersion, disagreements, satisfies, setVersion, versionMirrors } from '../../scripts/version';

const BUCKET = 'elevator-artifacts-test';
const PREFIX = 'components/';

/**
 * Packages the real bundles (build/artifacts, written by npm run build) into a folder of its own,
 * so the test never touches the project's greengrass-build/.
 */
describe('package: greengrass-build/ from the bundles', () => {
  let out: string;
  let packaged: PackagedComponent[];

  before(() => {
    for (const { recipe } of readSourceRecipes()) {
      const bundle = join(PROJECT_ROOT, 'build', 'artifacts', recipe.ComponentName, 'main.js');
      assert.ok(existsSync(bundle), `${bundle} is missing: npm run build (or node scripts/build.mjs --bundles-only) writes it`);
    }
    out = mkdtempSync(join(tmpdir(), 'package-test-'));
    packaged = packageComponents({ outDir: out, bucket: BUCKET, prefix: PREFIX });
  });
  after(() => rmSync(out, { recursive: true, force: true }));

  test('one recipe per component, named <Component>-<version>.yaml, at package.json version', () => {
    const version = readProjectVersion();
    const names = readSourceRecipes().map(({ recipe }) => recipe.ComponentName).sort();
    assert.deepEqual(packaged.map((p) => p.name).sort(), names);
    assert.deepEqual(readdirSync(join(out, 'recipes')).sort(), names.map((n) => `${n}-${version}.yaml`));
    for (const component of packaged) assert.equal(YAML.parse(readFileSync(component.recipePath, 'utf8')).ComponentVersion, version);
  });

  test("every artifact's Digest is the base64 SHA-256 of the file at <Component>/<version>/, with its S3 URI", () => {
    for (const component of packaged) {
      const recipe = YAML.parse(readFileSync(component.recipePath, 'utf8'));
      const artifacts = recipe.Manifests.flatMap((m: { Artifacts: unknown[] }) => m.Artifacts);
      assert.ok(artifacts.length >= 1, `${component.name}: no artifacts`);
      for (const artifact of artifacts) {
        const file = artifact.URI.split('/').pop();
        const local = join(out, 'artifacts', component.name, component.version, file);
        assert.equal(artifact.URI, `s3://${BUCKET}/${PREFIX}${component.name}/${component.version}/${file}`);
        assert.equal(artifact.Algorithm, 'SHA-256');
        assert.equal(artifact.Digest, sha256Base64(local), `${local}: digest differs from the recipe`);
        assert.deepEqual(artifact.Permission, { Read: 'OWNER', Execute: 'NONE' });
      }
      const bundle = join(out, 'artifacts', component.name, component.version, 'main.js');
      assert.equal(sha256Base64(bundle), sha256Base64(join(PROJECT_ROOT, 'build', 'artifacts', component.name, 'main.js')), 'main.js is the bundle as built');
    }
    assert.deepEqual(verifyPackage(out), []);
  });

  test('verifyPackage notices an artifact changed after packaging', () => {
    const copy = mkdtempSync(join(tmpdir(), 'package-tamper-'));
    try {
      cpSync(out, copy, { recursive: true });
      const target = join(copy, 'artifacts', packaged[0].name, packaged[0].version, 'main.js');
      appendFileSync(target, '\n// changed\n');
      const problems = verifyPackage(copy);
      assert.equal(problems.length, 1);
      assert.equal(problems[0].file, target);
      assert.match(problems[0].problem, /differs from the recipe's Digest/);
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });

  test('accessControl is exactly as in recipes/ and stays least-privilege', () => {
    const sources = new Map(readSourceRecipes().map(({ recipe }) => [recipe.ComponentName, recipe]));
    for (const component of packaged) {
      const recipe = YAML.parse(readFileSync(component.recipePath, 'utf8'));
      const accessControl = recipe.ComponentConfiguration.DefaultConfiguration.accessControl;
      assert.deepEqual(accessControl, sources.get(component.name)!.ComponentConfiguration.DefaultConfiguration.accessControl);
      for (const [service, policies] of Object.entries<Record<string, { operations: string[]; resources: string[] }>>(accessControl)) {
        for (const [policyId, policy] of Object.entries(policies)) {
          assert.ok(policyId.startsWith(`${component.name}:`), `${component.name}: policy id ${policyId} should name the component`);
          for (const operation of policy.operations) assert.notEqual(operation, '*', `${policyId}: operation "*"`);
          for (const resource of policy.resources) {
            assert.ok(!['*', '#', '+'].includes(resource) && !resource.endsWith('/#'), `${policyId}: resource "${resource}" is a blanket wildcard`);
            if (service === 'aws.greengrass.ipc.mqttproxy' || service === 'aws.greengrass.ShadowManager') {
              assert.ok(resource.includes('{iot:thingName}'), `${policyId}: IoT Core resource "${resource}" must be this device's own ({iot:thingName})`);
            }
          }
        }
      }
    }
  });

  test('native modules: exact installed versions in the shipped package.json, an Install step, NODE_PATH to them', () => {
    for (const component of packaged) {
      const bundle = readFileSync(join(out, 'artifacts', component.name, component.version, 'main.js'), 'utf8');
      const needed = nativeModulesRequiredBy(bundle);
      assert.ok(needed.includes('aws-crt'), `${component.name}: the IPC client needs aws-crt`);
      const manifest = JSON.parse(readFileSync(join(out, 'artifacts', component.name, component.version, 'package.json'), 'utf8'));
      for (const module of needed) {
        const installed = JSON.parse(readFileSync(join(PROJECT_ROOT, 'node_modules', module, 'package.json'), 'utf8')).version;
        assert.equal(manifest.dependencies[module], installed, `${component.name}: ${module} must be pinned to the tested ${installed}`);
      }
      assert.deepEqual(Object.keys(manifest.dependencies).sort(), needed);
      const recipe = YAML.parse(readFileSync(component.recipePath, 'utf8'));
      for (const m of recipe.Manifests) {
        assert.match(m.Lifecycle.Run.Script, /\{artifacts:path\}\/main\.js/);
        assert.match(m.Lifecycle.Install.Script, /npm install --omit=dev/);
        assert.match(m.Lifecycle.Install.Script, /cp "\{artifacts:path\}\/package\.json"/);
        assert.match(m.Lifecycle.Install.Skipif, /^exists \{work:path\}\/node-deps\/.+\/\.installed$/);
        assert.equal(m.Lifecycle.Install.RequiresPrivilege, false);
        const depsDir = m.Lifecycle.Install.Skipif.replace(/^exists /, '').replace(/\/\.installed$/, '');
        assert.equal(m.Lifecycle.Setenv.NODE_PATH, `${depsDir}/node_modules`);
        for (const module of needed) assert.ok(depsDir.includes(`${module}-${manifest.dependencies[module]}`), `${depsDir} should change with ${module}'s version`);
      }
    }
  });

  test('nativeModulesRequiredBy finds subpaths and ignores everything else', () => {
    const source = 'require("aws-crt/dist/native/x"); require("sqlite3"); require("fs"); require("ajv"); require("sqlite3-extra");';
    assert.deepEqual(nativeModulesRequiredBy(source), ['aws-crt', 'sqlite3']);
    assert.ok(NATIVE_MODULES.includes('better-sqlite3'));
  });

  test('one GDK project per component, at the same version', () => {
    for (const component of packaged) {
      const config = JSON.parse(readFileSync(join(component.gdkProjectDir, 'gdk-config.json'), 'utf8'));
      assert.deepEqual(Object.keys(config.component), [component.name]);
      assert.equal(config.component[component.name].version, component.version);
      assert.equal(config.component[component.name].build.build_system, 'custom');
      assert.ok(config.component[component.name].build.custom_build_command.includes(component.name));
      assert.deepEqual(YAML.parse(readFileSync(join(component.gdkProjectDir, 'recipe.yaml'), 'utf8')), YAML.parse(readFileSync(component.recipePath, 'utf8')));
    }
  });

  test('a --gdk-project-dir gets the layout GDK publish reads', () => {
    const gdkDir = mkdtempSync(join(tmpdir(), 'gdk-project-'));
    try {
      const [one] = packageComponents({ outDir: out, bucket: BUCKET, prefix: PREFIX, components: [packaged[0].name], gdkProjectDir: gdkDir });
      assert.ok(existsSync(join(gdkDir, 'greengrass-build', 'recipes', 'recipe.yaml')));
      for (const artifact of one.artifacts) {
        const copy = join(gdkDir, 'greengrass-build', 'artifacts', one.name, one.version, artifact.path.split('/').pop()!);
        assert.equal(sha256Base64(copy), artifact.digest);
      }
      assert.deepEqual(verifyPackage(out), [], 'packaging one component leaves the others in place');
    } finally {
      rmSync(gdkDir, { recursive: true, force: true });
    }
  });
});

describe('versions: one version, everywhere', () => {
  test('package.json, package-lock.json, every recipe and gdk-config.json agree', () => {
    const wrong = disagreements();
    assert.deepEqual(wrong, [], wrong.map((m) => `${m.where} = ${m.version}`).join('; '));
    assert.ok(versionMirrors().length >= 3 + readSourceRecipes().length);
  });

  test('bumpVersion', () => {
    assert.equal(bumpVersion('0.1.0', 'patch'), '0.1.1');
    assert.equal(bumpVersion('0.1.9', 'minor'), '0.2.0');
    assert.equal(bumpVersion('0.9.3', 'major'), '1.0.0');
    assert.equal(bumpVersion('1.2.3-rc.1', 'patch'), '1.2.3');
    assert.throws(() => bumpVersion('1.2', 'patch'), /not a semantic version/);
  });

  test('satisfies reads the recipes\' requirement form', () => {
    assert.equal(satisfies('0.5.0', '>=0.1.0 <1.0.0'), true);
    assert.equal(satisfies('1.0.0', '>=0.1.0 <1.0.0'), false);
    assert.throws(() => satisfies('1.0.0', '^1.0.0 || 2.x'), /cannot read/);
  });

  test('setVersion rewrites every mirror, and widens our own dependency requirements a major bump would break', () => {
    const root = mkdtempSync(join(tmpdir(), 'version-test-'));
    try {
      for (const file of ['package.json', 'package-lock.json', 'gdk-config.json', 'recipes']) cpSync(join(PROJECT_ROOT, file), join(root, file), { recursive: true });
      const before = readFileSync(join(root, 'recipes', 'com.elevator.MqttPublisher.yaml'), 'utf8');
      setVersion(root, '1.0.0');
      assert.deepEqual(disagreements(root), []);
      assert.equal(versionMirrors(root)[0].version, '1.0.0');
      const after = readFileSync(join(root, 'recipes', 'com.elevator.MqttPublisher.yaml'), 'utf8');
      const recipe = YAML.parse(after);
      assert.equal(recipe.ComponentVersion, '1.0.0');
      assert.ok(satisfies('1.0.0', recipe.ComponentDependencies['com.elevator.StreamBuffer'].VersionRequirement));
      // Only the two lines changed: the hand-written recipe keeps its layout.
      const changedLines = after.split('\n').filter((line, i) => line !== before.split('\n')[i]);
      assert.equal(changedLines.length, 2, changedLines.join('\n'));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
