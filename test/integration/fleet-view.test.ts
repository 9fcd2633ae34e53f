import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { LocalFolderArchive } from '../../cloud/archive';
import { FleetViewServer } from '../../cloud/fleet-view/server';
import { CHECKER_STATUS_KEY, instanceStatusKey } from '../../cloud/keys';
import { createLogger } from '../../components/shared/logger';
import { Pipeline, PROJECT_ROOT } from '../../scripts/pipeline';
import { tempRoot } from '../helpers/runtime-fixture';

const THING = 'fleet-view-thing-01';
const PUBLISHER = 'com.elevator.MqttPublisher';
const ARTIFACTS = join(PROJECT_ROOT, 'test-artifacts');
const SCREENSHOT = join(ARTIFACTS, 'fleet-view.png');
const FAILURE_SCREENSHOT = join(ARTIFACTS, 'fleet-view-failure.png');
const CHROMIUM_MISSING = 'chromium is not installed (Debian package `chromium`, or set CHROMIUM_PATH): the fleet view browser test is SKIPPED';

function findChromium(): string | undefined {
  if (process.env.CHROMIUM_PATH) return existsSync(process.env.CHROMIUM_PATH) ? process.env.CHROMIUM_PATH : undefined;
  const found = spawnSync('sh', ['-c', 'command -v chromium || command -v chromium-browser'], { encoding: 'utf8' });
  const path = found.stdout.trim().split('\n')[0];
  return found.status === 0 && path ? path : undefined;
}

const chromiumPath = findChromium();
if (!chromiumPath) console.error(`\n*** ${CHROMIUM_MISSING} ***\n`);

async function waitFor<T>(what: string, read: () => T | undefined, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test(
  'the fleet view shows the running device live in a real browser, and a stalled component turns it degraded with the reason',
  { skip: chromiumPath ? false : CHROMIUM_MISSING, timeout: 100_000 },
  async () => {
    const logger = createLogger('fleet-view-test');
    logger.level = process.env.LOG_LEVEL ?? 'warn';
    const root = tempRoot('fleet-view-');
    const pipeline = new Pipeline({
      root,
      thingName: THING,
      // A cap only: the test asks for the stop itself once it has seen what it needs.
      durationMs: 70_000,
      drainTimeoutMs: 20_000,
      resume: false,
      timeScale: 20,
      viewPort: 0,
      logger,
      // Heartbeats every second, judged missing after 3: a stalled component shows within seconds,
      // not the 15 s of the defaults. The disk rule is off so a full test machine cannot make the device unhealthy.
      configurationMerge: {
        'com.elevator.HealthReporter': { heartbeatIntervalMs: 1000, missedHeartbeats: 3, publishIntervalMs: 2000, diskFreeMinBytes: 0 },
        'com.elevator.MqttPublisher': { heartbeatIntervalMs: 1000 },
        'com.elevator.StreamBuffer': { heartbeatIntervalMs: 1000 },
      },
    });
    const running = pipeline.run();
    // Awaited in finally; until then a rejection must not count as unhandled.
    running.catch(() => undefined);
    let browser: Browser | undefined;
    let page: Page | undefined;
    let stoppedGroup: number | undefined;
    try {
      const url = await waitFor('the fleet view to listen', () => pipeline.viewUrl, 20_000);
      const origin = new URL(url).origin;
      browser = await chromium.launch({
        executablePath: chromiumPath,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
      });
      page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      const foreignRequests: string[] = [];
      const pageErrors: string[] = [];
      page.on('request', (request) => {
        if (!request.url().startsWith(origin)) foreignRequests.push(request.url());
      });
      page.on('pageerror', (error) => pageErrors.push(error.message));
      page.on('console', (message) => {
        if (message.type() === 'error') pageErrors.push(message.text());
      });
      await page.goto(url);

      const row = `[data-testid="device-${THING}"]`;
      // The reporter's first message says degraded (no heartbeats yet); healthy follows once all have arrived.
      await page.waitForSelector(`${row}[data-status="healthy"]`, { timeout: 40_000 });
      assert.equal((await page.getByTestId(`reasons-${THING}`).textContent())?.trim(), 'no reasons: all rules pass');
      assert.equal(await page.getByTestId('connection').getAttribute('data-state'), 'live');
      // Live: the throughput chart gains points while the page stays open, without a reload.
      // Functions, not strings (the page's CSP forbids eval); this file has no DOM types, hence the casts.
      const points = (): number => Number((globalThis as any).document.querySelector('[data-testid="chart-throughput"]').getAttribute('data-points'));
      const archived = (): number => Number((globalThis as any).document.querySelector('[data-testid="counter-archived"] b')?.textContent);
      await page.waitForFunction((before: number) => Number((globalThis as any).document.querySelector('[data-testid="chart-throughput"]').getAttribute('data-points')) >= before + 2, await page.evaluate(points), { timeout: 20_000 });
      await page.waitForFunction(archived, undefined, { timeout: 15_000 });

      // The fault: freeze MqttPublisher (its whole process group). It stays "running" for the
      // runtime, but its heartbeats stop, which only the health rules can notice.
      const pid = pipeline.runtimeStatus()?.components[PUBLISHER]?.pid;
      assert.ok(pid, `the runtime reports a pid for ${PUBLISHER}`);
      process.kill(-pid, 'SIGSTOP');
      stoppedGroup = pid;
      const faultAt = Date.now();

      await page.waitForSelector(`${row}[data-status="degraded"]`, { timeout: 15_000 });
      const shownAfterMs = Date.now() - faultAt;
      const reasons = (await page.getByTestId(`reasons-${THING}`).textContent()) ?? '';
      assert.match(reasons, /MqttPublisher: no heartbeat for 3 intervals \(3000 ms\)/);
      assert.equal(await page.getByTestId(`component-${THING}-MqttPublisher`).getAttribute('data-heartbeat'), 'stale');
      assert.equal(await page.getByTestId(`component-${THING}-StreamBuffer`).getAttribute('data-heartbeat'), 'alive');
      assert.equal(await page.getByTestId(`status-${THING}`).textContent(), 'degraded');
      console.log(`fleet view showed the stalled MqttPublisher ${shownAfterMs} ms after SIGSTOP`);

      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      console.log(`fleet view screenshot: ${SCREENSHOT}`);

      // Every object the view read was understood: a shape change elsewhere in the cloud shows up here.
      assert.equal((await page.getByTestId('problems').textContent())?.trim(), '', 'the page lists no unreadable archive objects');
      assert.deepEqual(foreignRequests, [], 'the page fetches nothing but its own server');
      assert.deepEqual(pageErrors, [], 'no script errors or CSP violations on the page');
    } catch (error) {
      // What the page showed when it went wrong is the fastest way to see why.
      if (page) {
        mkdirSync(ARTIFACTS, { recursive: true });
        await page.screenshot({ path: FAILURE_SCREENSHOT, fullPage: true }).catch(() => undefined);
        console.error(`fleet view failure screenshot: ${FAILURE_SCREENSHOT}`);
      }
      console.error(`logs of every process of the failed run: ${root}`);
      throw error;
    } finally {
      if (stoppedGroup !== undefined) {
        try {
          process.kill(-stoppedGroup, 'SIGCONT');
        } catch {
          // the group is gone already
        }
      }
      await browser?.close().catch((error) => console.error('browser did not close cleanly', error));
      pipeline.requestStop();
      await running.catch((error) => console.error('the pipeline run failed', error));
    }
    const url = pipeline.viewUrl;
    assert.ok(url);
    await assert.rejects(fetch(`${url}healthz`), 'the view stops with the pipeline');
    rmSync(root, { recursive: true, force: true });
  },
);

test(
  'with a shared-subscription group and a checker, the page lists each ingest instance and flags the one that stopped updating; the checker line turns NOT UPDATING when its status ages',
  { skip: chromiumPath ? false : CHROMIUM_MISSING, timeout: 60_000 },
  async () => {
    const root = tempRoot('fleet-view-group-');
    const archive = new LocalFolderArchive(root);
    const status = (recordsArchived: number, updatedAt: Date) =>
      JSON.stringify({ recordsArchived, rejected: {}, invalidRecords: {}, connected: true, startedAt: new Date(Date.now() - 600_000).toISOString(), updatedAt: updatedAt.toISOString() });
    await archive.put(instanceStatusKey('ingest-a'), status(120, new Date()));
    await archive.put(instanceStatusKey('ingest-b'), status(80, new Date()));
    await archive.put(instanceStatusKey('ingest-c'), status(5, new Date(Date.now() - 300_000)));
    const checkerStatus = (updatedAt: Date) =>
      JSON.stringify({ passes: 9, passErrors: 0, lastPassAt: updatedAt.toISOString(), openGapRecords: 3, permanentGapRecords: { 'age-cap': 2 }, updatedAt: updatedAt.toISOString() });
    // Written after Chromium is up, and with 10 s of freshness: its launch alone can take seconds
    // on a loaded machine, and the line must still be fresh when the page first reads it.
    const server = new FleetViewServer({ archive, port: 0, sampleIntervalMs: 200, build: { staleCheckerSec: 10 } });
    let browser: Browser | undefined;
    try {
      const url = await server.start();
      browser = await chromium.launch({ executablePath: chromiumPath, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
      const page = await browser.newPage();
      const pageErrors: string[] = [];
      page.on('pageerror', (error) => pageErrors.push(error.message));
      await archive.put(CHECKER_STATUS_KEY, checkerStatus(new Date()));
      await page.goto(url);
      await page.waitForSelector('[data-testid="ingest-instance"]', { timeout: 10_000 });
      const rows = await page.$$eval('[data-testid="ingest-instance"]', (trs) => trs.map((tr) => [tr.children[0].textContent, tr.getAttribute('data-stale'), tr.children[2].textContent]));
      assert.deepEqual(rows, [['ingest-a', 'false', '120 archived'], ['ingest-b', 'false', '80 archived'], ['ingest-c', 'true', '5 archived']]);
      assert.match((await page.getByTestId('ingest-state').textContent()) ?? '', /3 instances, 1 NOT UPDATING \(ingest-c\)/);
      assert.equal(await page.locator('[data-testid="counter-archived"] b').textContent(), '205', 'the counters are the sums');
      // The server samples the archive every 200 ms; its first sample may predate the checker status.
      await page.waitForFunction(() => /^integrity checker pass 9/.test((globalThis as any).document.querySelector('[data-testid="checker-state"]')?.textContent ?? ''), undefined, { timeout: 10_000 });
      assert.match((await page.getByTestId('checker-state').textContent()) ?? '', /^integrity checker pass 9 .*: 3 records in open gaps, 2 in permanent gaps$/);
      await page.waitForFunction(() => /NOT UPDATING/.test((globalThis as any).document.querySelector('[data-testid="checker-state"]').textContent), undefined, { timeout: 30_000 });
      assert.deepEqual(pageErrors, []);
    } finally {
      await browser?.close();
      await server.stop();
      rmSync(root, { recursive: true, force: true });
    }
  },
);
