import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { PROJECT_ROOT } from '../helpers/runtime-fixture';

// The units in deploy/systemd/ run the components without Greengrass (docs/RUN-WITHOUT-GREENGRASS.md).
// There is no systemd running here, but systemd-analyze checks a unit the way systemd loads it:
// a key in the wrong section is "ignored" with only a warning, which is how the start limit of
// the documented units was once lost. Any output from it is a failure here.

const UNITS_DIR = join(PROJECT_ROOT, 'deploy', 'systemd');
const analyzer = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
const MISSING = 'SKIPPED: systemd-analyze is not installed (apt-get install systemd; .ci/run installs it), so the units cannot be checked';
if (analyzer.error) console.error(`\n*** ${MISSING} ***\n`);

const unitFiles = readdirSync(UNITS_DIR).filter((f) => f.endsWith('.service')).sort();

/** [section] -> key -> values, as systemd reads a unit file (comments and blank lines skipped). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const header = /^\[(.+)\]$/.exec(trimmed);
    if (header) {
      current = new Map();
      sections.set(header[1], current);
      continue;
    }
    const eq = trimmed.indexOf('=');
    assert.ok(current && eq > 0, `a key=value line inside a section: ${trimmed}`);
    const key = trimmed.slice(0, eq);
    current.set(key, [...(current.get(key) ?? []), trimmed.slice(eq + 1)]);
  }
  return sections;
}

test('one unit per component, each starting that component\'s bundle', () => {
  const components = readdirSync(join(PROJECT_ROOT, 'recipes'))
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => (YAML.parse(readFileSync(join(PROJECT_ROOT, 'recipes', f), 'utf8')) as { ComponentName: string }).ComponentName)
    .sort();
  const started = unitFiles.map((file) => {
    const service = parseUnit(readFileSync(join(UNITS_DIR, file), 'utf8')).get('Service');
    const execStart = service?.get('ExecStart') ?? [];
    assert.equal(execStart.length, 1, `${file}: one ExecStart`);
    const bundle = /^\/usr\/bin\/node \/opt\/elevator\/([\w.]+)\/main\.js$/.exec(execStart[0]);
    assert.ok(bundle, `${file}: ExecStart runs a bundle under /opt/elevator: ${execStart[0]}`);
    return bundle[1];
  });
  assert.deepEqual(started.sort(), components);
});

test('every unit restarts on failure and gives up after three failures within an hour, as a component goes BROKEN', () => {
  for (const file of unitFiles) {
    const unit = parseUnit(readFileSync(join(UNITS_DIR, file), 'utf8'));
    assert.deepEqual(unit.get('Service')?.get('Restart'), ['on-failure'], file);
    assert.deepEqual(unit.get('Unit')?.get('StartLimitIntervalSec'), ['3600'], `${file}: the interval in [Unit], where systemd reads it`);
    assert.deepEqual(unit.get('Unit')?.get('StartLimitBurst'), ['3'], file);
  }
});

test('systemd-analyze verify accepts every unit without a warning', { skip: analyzer.error ? MISSING : false }, () => {
  // verify checks that ExecStart's program exists: the units name /usr/bin/node, Debian's path.
  const dir = mkdtempSync(join(tmpdir(), 'units-'));
  try {
    const paths = unitFiles.map((file) => {
      const path = join(dir, file);
      // 0644 whatever the umask: systemd warns about a world-writable unit file.
      writeFileSync(path, readFileSync(join(UNITS_DIR, file), 'utf8').replaceAll('/usr/bin/node ', `${process.execPath} `));
      chmodSync(path, 0o644);
      return path;
    });
    const result = spawnSync('systemd-analyze', ['verify', ...paths], { encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stderr.trim(), '', 'systemd-analyze had something to say');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
