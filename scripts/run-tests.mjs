// Runs every compiled test file under dist/test, two at a time (a few alone), each in its own Node process.
// Usage: node scripts/run-tests.mjs [substring ...]  (only files whose path contains one of them)
//
// Why not `node --test`: an aws-crt client can keep a test process alive after its tests have
// finished, so --test-force-exit is needed, and under `node --test` a child force-exited before
// its report reached the parent loses test verdicts silently, failures included, with exit code 0
// (nodejs/node#64833; seen here as one file reporting 38 of its 50 tests). Run directly, a file's
// runner reports straight to its own stdout, whose pipe writes are synchronous on Linux, so the
// report is whole; and a report without its closing summary is a failure here, not a smaller count.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const filters = process.argv.slice(2);
const CONCURRENCY = Number(process.env.TEST_CONCURRENCY ?? 2);
// Far above the slowest file (the chaos runs, about 4 min); only a hung process gets here.
const FILE_TIMEOUT_MS = Number(process.env.TEST_FILE_TIMEOUT_MS ?? 15 * 60_000);
const SUMMARY_KEYS = ['tests', 'suites', 'pass', 'fail', 'cancelled', 'skipped', 'todo'];
// Files that time faults and reconnects against the wall clock (the chaos runs, the Device
// Advisor's backoff shapes) run with nothing beside them: on two cores, a neighbour's load is
// enough to push a fault past its slot. The rest share the machine two at a time.
const RUN_ALONE = ['test/chaos/chaos-run', 'test/advisor/'];
// How much of a failed file's "failing tests" section the closing lines repeat: CI may keep only
// the end of a long output, and that end should say which test failed and why.
const FAILURE_DIGEST_LINES = 40;

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

const files = walk(join(root, 'dist', 'test'))
  .filter((f) => f.endsWith('.test.js'))
  .filter((f) => filters.length === 0 || filters.some((s) => relative(root, f).includes(s)))
  .sort();
if (files.length === 0) {
  console.error(`no test files matched ${filters.join(', ') || '(all)'}`);
  process.exit(1);
}

/** The spec reporter's closing summary ("ℹ tests 12" ...), or undefined when it never came. */
function summaryOf(output) {
  if (!/^ℹ duration_ms [\d.]+\s*$/m.test(output)) return undefined;
  const summary = {};
  for (const key of SUMMARY_KEYS) {
    const matches = [...output.matchAll(new RegExp(`^ℹ ${key} (\\d+)\\s*$`, 'gm'))];
    if (matches.length === 0) return undefined;
    summary[key] = Number(matches[matches.length - 1][1]);
  }
  return summary;
}

/** Process groups of the files running now: an interrupted run takes them (and what they started) down. */
const running = new Set();
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    for (const pid of running) killGroup(pid);
    process.exit(130);
  });
}

/** The environment variable every process a test file starts inherits: it names the file. */
const MARKER = 'ELEVATOR_TEST_FILE';

/**
 * Processes still running that a test file started: by the marker in their environment, not by
 * process group, since the runtime starts each component in a group of its own. Zombies are not
 * running (a child that exited after its parent stays one where nothing reaps orphans, as in a
 * container without an init). Linux: read from /proc.
 */
function leftBehindBy(name) {
  const wanted = `${MARKER}=${name}`;
  let entries;
  try {
    entries = readdirSync('/proc').filter((entry) => /^\d+$/.test(entry));
  } catch {
    return []; // no /proc: nothing can be checked
  }
  const found = [];
  for (const pid of entries) {
    try {
      if (!readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(wanted)) continue;
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // pid (comm) state ...; comm may hold spaces and parentheses, so split at the last ')'.
      const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
      if (state === 'Z' || state === 'X') continue;
      found.push({ pid: Number(pid), comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) });
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

/** SIGKILL to a test file's process group (its runtimes, brokers and components too). */
function killGroup(pid) {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function runFile(file) {
  const name = relative(root, file);
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--test-force-exit', '--test-reporter=spec', file], {
      cwd: root,
      // Test processes log at warn unless asked; component logs go to the runtime's log files anyway.
      env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn', [MARKER]: name },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    running.add(child.pid);
    const chunks = [];
    child.stdout.on('data', (chunk) => chunks.push(chunk));
    child.stderr.on('data', (chunk) => chunks.push(chunk));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
    }, FILE_TIMEOUT_MS);
    // What the file started and left running (a broker, a runtime, a component) would load the
    // machine for the files after it, or hold its output pipes open; it is named and killed.
    let leftBehind = [];
    child.on('exit', () => {
      leftBehind = leftBehindBy(name);
      for (const { pid } of leftBehind) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      killGroup(child.pid);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      running.delete(child.pid);
      const output = Buffer.concat(chunks).toString('utf8');
      const summary = summaryOf(output);
      const problems = [];
      if (timedOut) problems.push(`still running after ${FILE_TIMEOUT_MS / 1000} s; killed`);
      if (!summary) problems.push('its report ended before the closing summary: results are missing');
      else if (summary.tests === 0) problems.push('it reported no tests');
      if (summary?.fail) problems.push(`${summary.fail} failed`);
      if (summary?.cancelled) problems.push(`${summary.cancelled} cancelled`);
      if (code !== 0 && problems.length === 0) problems.push(`exit code ${code ?? signal}`);
      const warnings = leftBehind.length > 0 ? [`it left ${leftBehind.length} process(es) running, killed: ${leftBehind.map((p) => `${p.pid} ${p.comm}`).join(', ')}`] : [];
      resolve({ name, output, summary, problems, warnings, seconds: (Date.now() - started) / 1000 });
    });
  });
}

/** The spec reporter's "✖ failing tests:" section of a file's output, shortened. */
function failureDigest(output) {
  const lines = output.split('\n');
  const start = lines.findIndex((line) => line.startsWith('✖ failing tests:'));
  if (start < 0) return [];
  const section = lines.slice(start + 1).filter((line) => line.trim() !== '' && !line.startsWith('ℹ '));
  return section.length > FAILURE_DIGEST_LINES ? [...section.slice(0, FAILURE_DIGEST_LINES), `... ${section.length - FAILURE_DIGEST_LINES} more lines above, in the file's report`] : section;
}

const results = [];
const runsAlone = (file) => RUN_ALONE.some((part) => relative(root, file).includes(part));
async function worker(queue) {
  while (queue.length > 0) {
    const result = await runFile(queue.shift());
    results.push(result);
    // One file's output at a time, whole, so that two running files do not interleave.
    process.stdout.write(`\n▶ ${result.name} (${result.seconds.toFixed(1)} s)\n${result.output}`);
    if (result.problems.length > 0) process.stdout.write(`✖ ${result.name}: ${result.problems.join('; ')}\n`);
    if (result.warnings.length > 0) process.stdout.write(`⚠ ${result.name}: ${result.warnings.join('; ')}\n`);
  }
}
const shared = files.filter((file) => !runsAlone(file));
await Promise.all(Array.from({ length: Math.min(CONCURRENCY, shared.length) }, () => worker(shared)));
await worker(files.filter(runsAlone));

const totals = Object.fromEntries(SUMMARY_KEYS.map((key) => [key, results.reduce((sum, r) => sum + (r.summary?.[key] ?? 0), 0)]));
const failed = results.filter((r) => r.problems.length > 0).sort((a, b) => a.name.localeCompare(b.name));
const skippedLines = [...new Set(results.flatMap((r) => r.output.split('\n').filter((line) => /# SKIP|^\s*﹣ /.test(line)).map((line) => `  ${r.name}: ${line.trim().replace(/ \([\d.]+ms\)/, '')}`)))];
process.stdout.write(`\n══ all ${results.length} test files ══\n`);
for (const key of SUMMARY_KEYS) process.stdout.write(`ℹ ${key} ${totals[key]}\n`);
if (skippedLines.length > 0) process.stdout.write(`skipped:\n${skippedLines.join('\n')}\n`);
const warned = results.filter((r) => r.warnings.length > 0);
if (warned.length > 0) process.stdout.write(`warnings:\n${warned.map((r) => `  ${r.name}: ${r.warnings.join('; ')}`).join('\n')}\n`);
if (failed.length > 0) {
  process.stdout.write(`\n✖ ${failed.length} test file(s) failed:\n`);
  for (const r of failed) {
    process.stdout.write(`  ${r.name}: ${r.problems.join('; ')}\n`);
    for (const line of failureDigest(r.output)) process.stdout.write(`    ${line}\n`);
  }
  process.exit(1);
}
process.stdout.write('✔ every test file ran to its end and passed\n');
