// Type-checks and compiles the project to dist/, then bundles each component into one file under
// build/artifacts/<ComponentName>/, which is what a recipe's {artifacts:path} points at.
// Native modules stay external: aws-crt and sqlite3 load .node binaries that cannot be bundled.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, mkdirSync, rmSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import YAML from 'yaml';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// --bundles-only rebuilds the component bundles and leaves dist/ alone, for a developer whose
// tests are running from dist/ while a component changed.
if (!process.argv.includes('--bundles-only')) {
  // A clean dist/: a compiled test whose source was moved or deleted would otherwise still run.
  rmSync(join(root, 'dist'), { recursive: true, force: true });
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.json')], { stdio: 'inherit' });
}

const externals = ['aws-crt', 'sqlite3', 'better-sqlite3'];
for (const file of readdirSync(join(root, 'recipes'))) {
  if (!/\.(ya?ml|json)$/.test(file)) continue;
  const recipe = YAML.parse(readFileSync(join(root, 'recipes', file), 'utf8'));
  // com.elevator.SensorAcquisition is built from components/sensor-acquisition.
  const last = String(recipe.ComponentName).split('.').pop();
  const source = join('components', last.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase());
  const outdir = join(root, 'build', 'artifacts', recipe.ComponentName);
  mkdirSync(outdir, { recursive: true });
  await build({
    entryPoints: [join(root, source, 'main.ts')],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    outfile: join(outdir, 'main.js'),
    external: externals,
    sourcemap: true,
    logLevel: 'warning',
  });
}
