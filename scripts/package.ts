/**
 * Packages the four components for AWS IoT Greengrass v2, offline:
 *
 *   greengrass-build/artifacts/<Component>/<version>/main.js        the esbuild bundle (build/artifacts/)
 *   greengrass-build/artifacts/<Component>/<version>/package.json   the exact native modules it needs
 *   greengrass-build/recipes/<Component>-<version>.yaml             the recipe to publish
 *   greengrass-build/gdk/<Component>/{gdk-config.json,recipe.yaml}  one GDK CLI project per component
 *
 * Native modules (aws-crt, sqlite3) stay out of the bundles: bundled, their .node binaries do not
 * load. They reach a device through the recipe's Install step, which runs `npm install` of the
 * exact versions this build was tested with into the component's work folder (written by the
 * component's own user, kept across versions so a rollback needs no network), and Run finds them
 * through NODE_PATH. Why this and not prebuilt per-platform archives: docs/DEPLOY.md.
 *
 * usage: node dist/scripts/package.js [--bucket NAME] [--prefix KEY_PREFIX] [--component NAME ...]
 *          [--out DIR] [--gdk-project-dir DIR]
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import YAML from 'yaml';

export const PROJECT_ROOT = resolve(__dirname, '..', '..');
export const GREENGRASS_BUILD_DIR = 'greengrass-build';
/** What scripts/build.mjs keeps external; a bundle that requires one needs it installed on the device. */
export const NATIVE_MODULES = ['aws-crt', 'sqlite3', 'better-sqlite3'] as const;
/** The artifacts of every component, in the order they appear in its recipe. */
export const BUNDLE_FILE = 'main.js';
export const RUNTIME_MANIFEST_FILE = 'package.json';
/** npm install on a slow aarch64 device that must compile sqlite3 (no prebuilt binary reachable) takes minutes. */
export const INSTALL_TIMEOUT_SEC = 900;

const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

export class PackageError extends Error {}

export type Recipe = Record<string, any>;

export interface PackageOptions {
  /** Project root: package.json, recipes/, build/artifacts/, node_modules/. */
  root?: string;
  /** Where to write; <root>/greengrass-build by default. */
  outDir?: string;
  /** The S3 bucket the recipes' artifact URIs name; publish-components can re-target them. */
  bucket: string;
  /** Key prefix in the bucket, "" or ending in "/". */
  prefix?: string;
  /** Only these components; all when absent. */
  components?: string[];
  /** Also copy the result into <dir>/greengrass-build/ as a GDK custom build must. */
  gdkProjectDir?: string;
}

export interface PackagedArtifact {
  /** Local path of the file. */
  path: string;
  uri: string;
  bucket: string;
  key: string;
  size: number;
  /** base64 SHA-256, as a recipe's Digest. */
  digest: string;
}

export interface PackagedComponent {
  name: string;
  version: string;
  recipePath: string;
  recipe: Recipe;
  artifacts: PackagedArtifact[];
  /** Exact versions of the native modules the bundle requires. */
  nativeDependencies: Record<string, string>;
  gdkProjectDir: string;
}

export function sha256Base64(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('base64');
}

export function readProjectVersion(root = PROJECT_ROOT): string {
  const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
  if (typeof version !== 'string' || !SEMVER.test(version)) throw new PackageError(`package.json: "version" must be a semantic version like 1.2.3, got ${JSON.stringify(version)}`);
  return version;
}

export interface SourceRecipe {
  file: string;
  recipe: Recipe;
}

/** The recipes in recipes/, one per component, as written by hand. */
export function readSourceRecipes(root = PROJECT_ROOT): SourceRecipe[] {
  const dir = join(root, 'recipes');
  return readdirSync(dir)
    .filter((file) => /\.ya?ml$/.test(file))
    .sort()
    .map((file) => {
      const recipe = YAML.parse(readFileSync(join(dir, file), 'utf8')) as Recipe;
      if (typeof recipe?.ComponentName !== 'string') throw new PackageError(`recipes/${file}: no ComponentName`);
      return { file: join(dir, file), recipe };
    });
}

/** The GDK settings shared by every component (author, publish bucket prefix and region, gdk_version). */
export interface SharedGdkSettings {
  author: string;
  bucket: string;
  region: string;
  gdkVersion: string;
  version: string;
}

export function readSharedGdkSettings(root = PROJECT_ROOT): SharedGdkSettings {
  const file = join(root, 'gdk-config.json');
  const config = JSON.parse(readFileSync(file, 'utf8'));
  const entries = Object.entries(config.component ?? {});
  if (entries.length !== 1) throw new PackageError(`${file}: "component" must hold exactly one entry (the settings shared by every component)`);
  const shared = entries[0][1] as { author?: string; version?: string; publish?: { bucket?: string; region?: string } };
  if (!shared.author || !shared.version || !shared.publish?.bucket || !shared.publish?.region) {
    throw new PackageError(`${file}: the component entry needs author, version, publish.bucket and publish.region`);
  }
  return { author: shared.author, bucket: shared.publish.bucket, region: shared.publish.region, gdkVersion: config.gdk_version, version: shared.version };
}

/** Package names of the native modules a bundle requires (require("aws-crt/dist/...") counts as aws-crt). */
export function nativeModulesRequiredBy(bundleSource: string): string[] {
  const found = new Set<string>();
  for (const match of bundleSource.matchAll(/\brequire\("([^"]+)"\)/g)) {
    const parts = match[1].split('/');
    const name = match[1].startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
    if ((NATIVE_MODULES as readonly string[]).includes(name)) found.add(name);
  }
  return [...found].sort();
}

function installedVersion(root: string, module: string, needer: string): string {
  const manifest = join(root, 'node_modules', module, 'package.json');
  if (!existsSync(manifest)) throw new PackageError(`${needer} requires the native module ${module}, but ${manifest} does not exist: run npm ci first`);
  return JSON.parse(readFileSync(manifest, 'utf8')).version;
}

/** Folder name for one set of native modules: readable, and different for every set of versions. */
export function nativeDependencyKey(dependencies: Record<string, string>): string {
  const entries = Object.entries(dependencies).sort(([a], [b]) => a.localeCompare(b));
  return entries.length === 0 ? 'none' : entries.map(([name, version]) => `${name}-${version}`).join('_');
}

/**
 * The package.json shipped next to main.js. It pins the exact native versions, allows exactly
 * their install scripts (npm 11 warns about, and later npm blocks, unreviewed dependency install
 * scripts: sqlite3 fetches or compiles its binary in one), and says "commonjs" so the bundle loads
 * as the CommonJS esbuild wrote whatever package.json an ancestor folder holds.
 */
export function runtimeManifest(componentName: string, version: string, dependencies: Record<string, string>): Record<string, unknown> {
  return {
    name: `${componentName.toLowerCase().replace(/[^a-z0-9-]+/g, '-')}-runtime`,
    version,
    private: true,
    type: 'commonjs',
    description: `Native modules for ${componentName}; installed on the device by the recipe's Install step.`,
    dependencies,
    allowScripts: Object.fromEntries(Object.entries(dependencies).map(([name, exact]) => [`${name}@${exact}`, true])),
  };
}

/** Where the Install step puts the native modules on the device, and what marks it complete. */
export function deviceDependencyPaths(dependencies: Record<string, string>): { dir: string; nodeModules: string; marker: string } {
  const dir = `{work:path}/node-deps/${nativeDependencyKey(dependencies)}`;
  return { dir, nodeModules: `${dir}/node_modules`, marker: `${dir}/.installed` };
}

/**
 * The Install step. `Skipif: exists <marker>` makes it free after the first success (the nucleus
 * runs Install again on every start of the component) and lets a device that rolls back, or
 * restarts offline, reuse the folder. The marker is written last, so an install cut short by a
 * power loss runs again. npm's cache goes to the work folder: ggc_user may have no home.
 */
export function installStep(dependencies: Record<string, string>): Recipe {
  const paths = deviceDependencyPaths(dependencies);
  const script = [
    'set -e',
    `mkdir -p "${paths.dir}"`,
    `cp "{artifacts:path}/${RUNTIME_MANIFEST_FILE}" "${paths.dir}/package.json"`,
    `cd "${paths.dir}"`,
    'npm install --omit=dev --no-audit --no-fund --no-save --cache "{work:path}/.npm-cache"',
    `touch "${paths.marker}"`,
  ].join('\n');
  return { Skipif: `exists ${paths.marker}`, Script: script, Timeout: INSTALL_TIMEOUT_SEC, RequiresPrivilege: false };
}

function artifactEntry(uri: string, digest: string): Recipe {
  // Read by the component's own user only; nothing is executed directly (node reads main.js).
  return { URI: uri, Digest: digest, Algorithm: 'SHA-256', Unarchive: 'NONE', Permission: { Read: 'OWNER', Execute: 'NONE' } };
}

export function artifactKey(prefix: string, component: string, version: string, file: string): string {
  return `${prefix}${component}/${version}/${file}`;
}

export function normalizePrefix(prefix: string): string {
  if (prefix.startsWith('/')) throw new PackageError(`--prefix must not start with "/", got "${prefix}"`);
  return prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
}

export function checkBucket(bucket: string): void {
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) throw new PackageError(`--bucket must be a valid S3 bucket name, got "${bucket}"`);
}

/**
 * The recipe to publish: the hand-written one with the version, the artifacts and the Install
 * step. accessControl and everything else stay exactly as written.
 */
export function buildRecipe(source: Recipe, version: string, artifacts: { uri: string; digest: string }[], dependencies: Record<string, string>, sourceFile: string): Recipe {
  const recipe = structuredClone(source);
  recipe.ComponentVersion = version;
  const manifests = recipe.Manifests;
  if (!Array.isArray(manifests) || manifests.length === 0) throw new PackageError(`${sourceFile}: no Manifests`);
  manifests.forEach((manifest: Recipe, index: number) => {
    const where = `${sourceFile}: Manifests[${index}]`;
    const lifecycle = manifest.Lifecycle;
    if (!lifecycle || typeof lifecycle !== 'object') throw new PackageError(`${where}: no Lifecycle`);
    const run = typeof lifecycle.Run === 'string' ? lifecycle.Run : lifecycle.Run?.Script;
    if (typeof run !== 'string' || !run.includes(`{artifacts:path}/${BUNDLE_FILE}`)) {
      throw new PackageError(`${where}: Lifecycle.Run must run {artifacts:path}/${BUNDLE_FILE}, the packaged bundle; got ${JSON.stringify(run)}`);
    }
    if (lifecycle.Install) throw new PackageError(`${where}: already has an Install step; the package step owns it (native modules)`);
    if (manifest.Artifacts) throw new PackageError(`${where}: already lists Artifacts; the package step writes them`);
    manifest.Artifacts = artifacts.map((artifact) => artifactEntry(artifact.uri, artifact.digest));
    const setenv = { ...(lifecycle.Setenv ?? {}) };
    if (Object.keys(dependencies).length > 0) setenv.NODE_PATH = deviceDependencyPaths(dependencies).nodeModules;
    // Install runs before Run; the key order is what a reader expects.
    manifest.Lifecycle = {
      Setenv: setenv,
      ...(Object.keys(dependencies).length > 0 ? { Install: installStep(dependencies) } : {}),
      ...Object.fromEntries(Object.entries(lifecycle).filter(([key]) => key !== 'Setenv')),
    };
  });
  return recipe;
}

export function gdkConfigFor(name: string, version: string, shared: SharedGdkSettings, buildCommand: string[]): Record<string, unknown> {
  return {
    component: {
      [name]: {
        author: shared.author,
        version,
        build: { build_system: 'custom', custom_build_command: buildCommand },
        // GDK publishes to the bucket "<bucket>-<region>-<account>", which is what deploy/cloud-resources.yaml creates.
        publish: { bucket: shared.bucket, region: shared.region },
      },
    },
    gdk_version: shared.gdkVersion,
  };
}

/** The command GDK runs in a component's project folder: the whole build, then this step for that component only. */
export function gdkBuildCommand(root: string, outDir: string, name: string, bucket: string, prefix: string, gdkDir: string): string[] {
  return ['npm', '--prefix', root, 'run', '--silent', 'package', '--', '--component', name, '--bucket', bucket, '--prefix', prefix, '--out', outDir, '--gdk-project-dir', gdkDir];
}

function writeYaml(path: string, value: unknown): void {
  writeFileSync(path, `---\n${YAML.stringify(value, { lineWidth: 0 })}`);
}

export function packageComponents(options: PackageOptions): PackagedComponent[] {
  const root = options.root ?? PROJECT_ROOT;
  const outDir = options.outDir ?? join(root, GREENGRASS_BUILD_DIR);
  const prefix = normalizePrefix(options.prefix ?? '');
  checkBucket(options.bucket);
  const version = readProjectVersion(root);
  const shared = readSharedGdkSettings(root);
  const sources = readSourceRecipes(root);
  const wanted = options.components ?? sources.map((s) => s.recipe.ComponentName as string);
  for (const name of wanted) {
    if (!sources.some((s) => s.recipe.ComponentName === name)) throw new PackageError(`no recipe in recipes/ for component "${name}"; known: ${sources.map((s) => s.recipe.ComponentName).join(', ')}`);
  }
  const results: PackagedComponent[] = [];
  for (const { file, recipe: source } of sources.filter((s) => wanted.includes(s.recipe.ComponentName))) {
    const name = source.ComponentName as string;
    if (source.ComponentVersion !== version) {
      throw new PackageError(`${file}: ComponentVersion "${source.ComponentVersion}" differs from package.json "${version}"; run npm run version:bump -- ${version} to align them`);
    }
    const bundle = join(root, 'build', 'artifacts', name, BUNDLE_FILE);
    if (!existsSync(bundle)) throw new PackageError(`${bundle} does not exist: build the bundles first (npm run build, or node scripts/build.mjs --bundles-only)`);
    const nativeDependencies = Object.fromEntries(nativeModulesRequiredBy(readFileSync(bundle, 'utf8')).map((module) => [module, installedVersion(root, module, bundle)]));

    // Only this component's earlier output goes: other components, and gdk/ (GDK may be running in it), stay.
    const artifactDir = join(outDir, 'artifacts', name, version);
    rmSync(join(outDir, 'artifacts', name), { recursive: true, force: true });
    mkdirSync(artifactDir, { recursive: true });
    const recipesDir = join(outDir, 'recipes');
    mkdirSync(recipesDir, { recursive: true });
    for (const old of readdirSync(recipesDir)) if (old.startsWith(`${name}-`)) rmSync(join(recipesDir, old));

    copyFileSync(bundle, join(artifactDir, BUNDLE_FILE));
    const files = [BUNDLE_FILE];
    if (Object.keys(nativeDependencies).length > 0) {
      writeFileSync(join(artifactDir, RUNTIME_MANIFEST_FILE), `${JSON.stringify(runtimeManifest(name, version, nativeDependencies), null, 2)}\n`);
      files.push(RUNTIME_MANIFEST_FILE);
    }
    const artifacts: PackagedArtifact[] = files.map((fileName) => {
      const path = join(artifactDir, fileName);
      const key = artifactKey(prefix, name, version, fileName);
      return { path, uri: `s3://${options.bucket}/${key}`, bucket: options.bucket, key, size: statSync(path).size, digest: sha256Base64(path) };
    });
    const recipe = buildRecipe(source, version, artifacts, nativeDependencies, file);
    const recipePath = join(recipesDir, `${name}-${version}.yaml`);
    writeYaml(recipePath, recipe);

    const gdkDir = join(outDir, 'gdk', name);
    mkdirSync(gdkDir, { recursive: true });
    writeFileSync(join(gdkDir, 'gdk-config.json'), `${JSON.stringify(gdkConfigFor(name, version, shared, gdkBuildCommand(root, outDir, name, options.bucket, prefix, gdkDir)), null, 2)}\n`);
    writeYaml(join(gdkDir, 'recipe.yaml'), recipe);

    if (options.gdkProjectDir) {
      // GDK publish uploads everything in greengrass-build/artifacts/<name>/<version>/ and reads
      // greengrass-build/recipes/recipe.yaml (named after the project's recipe file).
      const gdkBuild = join(options.gdkProjectDir, GREENGRASS_BUILD_DIR);
      const gdkArtifacts = join(gdkBuild, 'artifacts', name, version);
      mkdirSync(gdkArtifacts, { recursive: true });
      mkdirSync(join(gdkBuild, 'recipes'), { recursive: true });
      for (const artifact of artifacts) copyFileSync(artifact.path, join(gdkArtifacts, basename(artifact.path)));
      writeYaml(join(gdkBuild, 'recipes', 'recipe.yaml'), recipe);
    }
    results.push({ name, version, recipePath, recipe, artifacts, nativeDependencies, gdkProjectDir: gdkDir });
  }
  return results;
}

export interface PackageProblem {
  file: string;
  problem: string;
}

/**
 * Checks a greengrass-build folder as a device would see it: every artifact a recipe names is
 * there, under <Component>/<version>/, with the recipe's digest.
 */
export function verifyPackage(outDir: string): PackageProblem[] {
  const problems: PackageProblem[] = [];
  const recipesDir = join(outDir, 'recipes');
  if (!existsSync(recipesDir)) return [{ file: recipesDir, problem: 'missing: run the package step' }];
  for (const file of readdirSync(recipesDir).filter((f) => f.endsWith('.yaml')).sort()) {
    const path = join(recipesDir, file);
    const recipe = YAML.parse(readFileSync(path, 'utf8')) as Recipe;
    const name = recipe.ComponentName;
    const version = recipe.ComponentVersion;
    if (file !== `${name}-${version}.yaml`) problems.push({ file: path, problem: `file name should be ${name}-${version}.yaml` });
    for (const manifest of recipe.Manifests ?? []) {
      if (!Array.isArray(manifest.Artifacts) || manifest.Artifacts.length === 0) problems.push({ file: path, problem: 'a manifest has no Artifacts' });
      for (const artifact of manifest.Artifacts ?? []) {
        const local = join(outDir, 'artifacts', name, version, basename(String(artifact.URI)));
        if (!String(artifact.URI).startsWith('s3://') || !String(artifact.URI).endsWith(`${name}/${version}/${basename(String(artifact.URI))}`)) {
          problems.push({ file: path, problem: `artifact URI ${artifact.URI} is not s3://<bucket>/<prefix>${name}/${version}/<file>` });
        }
        if (artifact.Algorithm !== 'SHA-256') problems.push({ file: path, problem: `artifact ${artifact.URI}: Algorithm must be SHA-256` });
        if (!existsSync(local)) {
          problems.push({ file: path, problem: `artifact ${local} is missing` });
          continue;
        }
        const digest = sha256Base64(local);
        if (digest !== artifact.Digest) problems.push({ file: local, problem: `SHA-256 ${digest} differs from the recipe's Digest ${artifact.Digest}` });
      }
    }
  }
  return problems;
}

function main(): void {
  const { values } = parseArgs({
    options: {
      bucket: { type: 'string' },
      prefix: { type: 'string', default: '' },
      component: { type: 'string', multiple: true },
      out: { type: 'string' },
      'gdk-project-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(`usage: node dist/scripts/package.js [--bucket NAME] [--prefix KEY_PREFIX] [--component NAME ...] [--out DIR] [--gdk-project-dir DIR]
  --bucket defaults to $ARTIFACT_BUCKET, then to gdk-config.json's publish.bucket; publish-components --bucket re-targets the URIs.`);
    return;
  }
  const bucket = values.bucket ?? process.env.ARTIFACT_BUCKET ?? readSharedGdkSettings().bucket;
  const packaged = packageComponents({
    bucket,
    prefix: values.prefix,
    components: values.component,
    outDir: values.out ? resolve(values.out) : undefined,
    gdkProjectDir: values['gdk-project-dir'] ? resolve(values['gdk-project-dir']) : undefined,
  });
  for (const component of packaged) {
    const native = Object.entries(component.nativeDependencies).map(([n, v]) => `${n}@${v}`).join(' ') || 'none';
    console.log(`${component.name} ${component.version}: ${component.recipePath}`);
    for (const artifact of component.artifacts) console.log(`  ${artifact.uri}  ${artifact.size} B  sha256:${artifact.digest}`);
    console.log(`  native modules installed on the device: ${native}`);
  }
  const problems = verifyPackage(values.out ? resolve(values.out) : join(PROJECT_ROOT, GREENGRASS_BUILD_DIR));
  if (problems.length > 0) throw new PackageError(problems.map((p) => `${p.file}: ${p.problem}`).join('\n'));
}

if (require.main === module) {
  try {
    main();
  } catch (error) {
    console.error(`package: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  }
}
