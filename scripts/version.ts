/**
 * One version for the four components: package.json's. Everything that repeats it (package-lock.json,
 * every recipe's ComponentVersion, gdk-config.json) is rewritten by one command and checked by
 * test/unit/package.test.ts. greengrass-build/ is generated from these by the package step.
 *
 * usage: node dist/scripts/version.js patch|minor|major|<x.y.z>   bump, then print what changed
 *        node dist/scripts/version.js --check                     exit 1 if any place disagrees
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { PROJECT_ROOT } from './package';

const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/;

export class VersionError extends Error {}

export type BumpKind = 'patch' | 'minor' | 'major';

interface Parsed {
  major: number;
  minor: number;
  patch: number;
  prerelease?: string;
}

function parse(version: string): Parsed {
  const match = SEMVER.exec(version);
  if (!match) throw new VersionError(`"${version}" is not a semantic version (x.y.z)`);
  return { major: Number(match[1]), minor: Number(match[2]), patch: Number(match[3]), prerelease: match[4] };
}

/** A prerelease of x.y.z bumps to x.y.z itself on a patch (semver's order: 1.0.0-rc.1 < 1.0.0). */
export function bumpVersion(version: string, kind: BumpKind): string {
  const v = parse(version);
  if (kind === 'major') return `${v.major + 1}.0.0`;
  if (kind === 'minor') return `${v.major}.${v.minor + 1}.0`;
  return v.prerelease ? `${v.major}.${v.minor}.${v.patch}` : `${v.major}.${v.minor}.${v.patch + 1}`;
}

export function compareVersions(a: string, b: string): number {
  const x = parse(a);
  const y = parse(b);
  for (const key of ['major', 'minor', 'patch'] as const) if (x[key] !== y[key]) return x[key] - y[key];
  if (x.prerelease === y.prerelease) return 0;
  if (!x.prerelease) return 1;
  if (!y.prerelease) return -1;
  return x.prerelease < y.prerelease ? -1 : 1;
}

/**
 * Whether a version meets a Greengrass VersionRequirement written as space-separated comparators
 * (">=0.1.0 <1.0.0", the only form this project's recipes use). Anything else is refused, so a
 * requirement this cannot judge is never silently left stale.
 */
export function satisfies(version: string, requirement: string): boolean {
  return requirement
    .trim()
    .split(/\s+/)
    .every((comparator) => {
      const match = /^(>=|<=|>|<|=)?(\d\S*)$/.exec(comparator);
      if (!match) throw new VersionError(`cannot read the version requirement "${requirement}"`);
      const order = compareVersions(version, match[2]);
      switch (match[1] ?? '=') {
        case '>=': return order >= 0;
        case '<=': return order <= 0;
        case '>': return order > 0;
        case '<': return order < 0;
        default: return order === 0;
      }
    });
}

export interface VersionMirror {
  /** Path relative to the project root, and where in it. */
  where: string;
  version: string;
}

function recipeFiles(root: string): string[] {
  return readdirSync(join(root, 'recipes')).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => join('recipes', f));
}

/** Every committed place that states the components' version. */
export function versionMirrors(root = PROJECT_ROOT): VersionMirror[] {
  const mirrors: VersionMirror[] = [];
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  mirrors.push({ where: 'package.json: version', version: pkg.version });
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'));
  mirrors.push({ where: 'package-lock.json: version', version: lock.version });
  mirrors.push({ where: 'package-lock.json: packages[""].version', version: lock.packages?.['']?.version });
  for (const file of recipeFiles(root)) {
    const recipe = YAML.parse(readFileSync(join(root, file), 'utf8'));
    mirrors.push({ where: `${file}: ComponentVersion`, version: String(recipe.ComponentVersion) });
  }
  const gdk = JSON.parse(readFileSync(join(root, 'gdk-config.json'), 'utf8'));
  for (const [name, settings] of Object.entries<{ version?: string }>(gdk.component ?? {})) {
    mirrors.push({ where: `gdk-config.json: component["${name}"].version`, version: String(settings.version) });
  }
  return mirrors;
}

export function disagreements(root = PROJECT_ROOT): VersionMirror[] {
  const mirrors = versionMirrors(root);
  return mirrors.filter((m) => m.version !== mirrors[0].version);
}

function writeJson(path: string, value: unknown): void {
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Writes the version everywhere. Recipes are edited line by line (comments and quoting stay as
 * written); a dependency between our own components whose requirement the new version would not
 * meet is widened to the new major, or a deployment of the four would fail to resolve.
 */
export function setVersion(root: string, version: string): string[] {
  parse(version);
  const changed: string[] = [];
  const pkgPath = join(root, 'package.json');
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8'));
  pkg.version = version;
  writeJson(pkgPath, pkg);
  changed.push('package.json');

  const lockPath = join(root, 'package-lock.json');
  const lock = JSON.parse(readFileSync(lockPath, 'utf8'));
  lock.version = version;
  if (lock.packages?.['']) lock.packages[''].version = version;
  writeJson(lockPath, lock);
  changed.push('package-lock.json');

  const ours = new Set<string>();
  for (const file of recipeFiles(root)) ours.add(String(YAML.parse(readFileSync(join(root, file), 'utf8')).ComponentName));
  const { major } = parse(version);
  for (const file of recipeFiles(root)) {
    const path = join(root, file);
    const before = readFileSync(path, 'utf8');
    let text = before.replace(/^ComponentVersion:.*$/m, `ComponentVersion: "${version}"`);
    const recipe = YAML.parse(text);
    for (const [dependency, spec] of Object.entries<{ VersionRequirement?: string }>(recipe.ComponentDependencies ?? {})) {
      if (!ours.has(dependency) || !spec.VersionRequirement || satisfies(version, spec.VersionRequirement)) continue;
      const widened = `>=${major}.0.0 <${major + 1}.0.0`;
      const line = new RegExp(`(^  ${dependency.replace(/\./g, '\\.')}:\\n(?:    .*\\n)*?    VersionRequirement: ).*$`, 'm');
      if (!line.test(text)) throw new VersionError(`${file}: cannot find the VersionRequirement line of ${dependency} to widen it to "${widened}"`);
      text = text.replace(line, `$1"${widened}"`);
    }
    const check = YAML.parse(text);
    if (check.ComponentVersion !== version) throw new VersionError(`${file}: could not set ComponentVersion (no "ComponentVersion:" line at the top level?)`);
    if (text !== before) {
      writeFileSync(path, text);
      changed.push(file);
    }
  }

  const gdkPath = join(root, 'gdk-config.json');
  const gdk = JSON.parse(readFileSync(gdkPath, 'utf8'));
  for (const settings of Object.values<{ version?: string }>(gdk.component ?? {})) settings.version = version;
  writeJson(gdkPath, gdk);
  changed.push('gdk-config.json');
  return changed;
}

function main(): number {
  const argument = process.argv[2];
  if (!argument || argument === '--help' || argument === '-h') {
    console.log('usage: node dist/scripts/version.js patch|minor|major|<x.y.z> | --check');
    return argument ? 0 : 2;
  }
  if (argument === '--check') {
    const wrong = disagreements();
    const expected = versionMirrors()[0].version;
    for (const mirror of wrong) console.error(`${mirror.where} is "${mirror.version}", package.json says "${expected}"`);
    if (wrong.length === 0) console.log(`every place says ${expected}`);
    return wrong.length === 0 ? 0 : 1;
  }
  const current = versionMirrors()[0].version;
  const next = ['patch', 'minor', 'major'].includes(argument) ? bumpVersion(current, argument as BumpKind) : argument;
  parse(next);
  if (compareVersions(next, current) <= 0) throw new VersionError(`the new version ${next} must be greater than ${current}: a published component version is immutable`);
  const changed = setVersion(PROJECT_ROOT, next);
  console.log(`${current} -> ${next}: ${changed.join(', ')}`);
  console.log('then: npm run package && npm run publish:components (see docs/DEPLOY.md)');
  return 0;
}

if (require.main === module) {
  try {
    process.exitCode = main();
  } catch (error) {
    console.error(`version: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  }
}
