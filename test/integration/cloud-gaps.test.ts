import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { BackfillRequest } from '../../components/shared/envelope';
import { checkBackfill } from '../../components/shared/envelope';
import { commandTopic, epochTopic, lossTopic } from '../../components/shared/topics';
import { auditArchive } from '../../cloud/audit';
import { gapKey } from '../../cloud/keys';
import { delay, DEVICE, EPOCH, makeEnvelope, startHarness, STREAM, waitUntil, type Harness } from '../helpers/cloud-fixtures';

const OLD_EPOCH = '11111111-2222-4333-8444-555555555555';

async function withBackfillListener(options: Parameters<typeof startHarness>[0], body: (h: Harness, requests: BackfillRequest[]) => Promise<void>): Promise<void> {
  const h = await startHarness({ gapCheckIntervalMs: 50, ...options });
  const requests: BackfillRequest[] = [];
  try {
    await h.device.client.subscribeAsync(commandTopic(DEVICE, 'backfill'), { qos: 1 });
    h.device.client.on('message', (topic, payload) => {
      if (topic === commandTopic(DEVICE, 'backfill')) requests.push(JSON.parse(payload.toString('utf8')) as BackfillRequest);
    });
    await body(h, requests);
  } finally {
    await h.close();
  }
}

function loss(ranges: Array<[number, number]>, reason: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ schema: 'elevator.loss/1', device: DEVICE, stream: STREAM, epoch: EPOCH, ranges, reason, reportedAt: new Date().toISOString(), ...extra });
}

describe('gaps, backfill and permanent gaps at the cloud', () => {
  test('a gap open past the grace time is requested once with its exact range, and not before', () =>
    // A grace of seconds, so that "not before" holds on a loaded machine too.
    withBackfillListener({ gapGraceMs: 3000, backfillRetryMs: 60_000 }, async (h, requests) => {
      await h.device.publishEnvelope(makeEnvelope(1, 5));
      await h.device.publishEnvelope(makeEnvelope(11, 15));
      await h.device.waitForAck((a) => a.gaps.length > 0, 'ack with the gap');
      await delay(300);
      assert.equal(requests.length, 0, 'no request inside the grace time');
      await waitUntil(() => requests.length === 1, 'one backfill request', 15_000);
      const request = requests[0];
      assert.equal(checkBackfill(request).ok, true);
      assert.deepEqual([request.device, request.stream, request.epoch], [DEVICE, STREAM, EPOCH]);
      assert.deepEqual(request.ranges, [[6, 10]]);
      await delay(400);
      assert.equal(requests.length, 1, 'not asked again before the retry time');
      await h.device.publishEnvelope(makeEnvelope(6, 10));
      await h.device.waitForAck((a) => a.watermark === 15, 'watermark 15');
      assert.equal(h.ingest.stats().backfillRequests, 1);
    }));

  test('a request is bounded: at most 20 ranges and maxBackfillRecords records, lowest first', () =>
    // The gap check runs by hand here, once everything has arrived, so the request sees all gaps.
    withBackfillListener({ gapGraceMs: 0, maxBackfillRecords: 1000, gapCheckIntervalMs: 0 }, async (h, requests) => {
      // 25 one-record gaps, then one huge gap.
      for (let i = 0; i < 25; i += 1) await h.device.publishEnvelope(makeEnvelope(2 * i + 1, 2 * i + 1));
      await h.device.publishEnvelope(makeEnvelope(60_000, 60_000));
      await waitUntil(() => h.ingest.ackState(DEVICE, STREAM, EPOCH)?.gaps.length === 25, 'all 25 gaps known');
      h.ingest.checkGaps();
      await waitUntil(() => requests.length >= 1, 'a backfill request');
      assert.equal(requests[0].ranges.length, 20);
      assert.deepEqual(requests[0].ranges[0], [2, 2]);
      const total = requests[0].ranges.reduce((sum, [from, to]) => sum + to - from + 1, 0);
      assert.ok(total <= 1000, `${total} records requested`);
    }));

  test('a loss report becomes a permanent gap with its reason; the watermark passes it and nothing is requested', () =>
    withBackfillListener({ gapGraceMs: 200 }, async (h, requests) => {
      await h.device.publishEnvelope(makeEnvelope(1, 5));
      await h.device.publishRaw(lossTopic(DEVICE), loss([[6, 9]], 'byte-cap'));
      await h.device.publishRaw(lossTopic(DEVICE), loss([[10, 11]], 'acquisition-overflow'));
      await h.device.publishEnvelope(makeEnvelope(12, 14));
      const ack = await h.device.waitForAck((a) => a.watermark === 14, 'watermark 14 past the reported losses');
      assert.deepEqual(ack.gaps, []);
      const stored = JSON.parse((await h.archive.get(gapKey(DEVICE, STREAM, EPOCH, 6, 9)))!.toString('utf8'));
      assert.equal(stored.reason, 'byte-cap');
      const overflow = JSON.parse((await h.archive.get(gapKey(DEVICE, STREAM, EPOCH, 10, 11)))!.toString('utf8'));
      assert.equal(overflow.reason, 'acquisition-overflow');
      await delay(500);
      assert.equal(requests.length, 0);
      const audit = await auditArchive(h.archive);
      assert.deepEqual(audit.streams[0].gone, { 'byte-cap': 4, 'acquisition-overflow': 2 });
      // Rebuilt from the archive, the permanent gaps still count.
      await h.restartIngest();
      assert.deepEqual(h.ingest.ackState(DEVICE, STREAM, EPOCH), { watermark: 14, gaps: [] });
    }));

  test('an epoch report closes the old epoch: what it never delivered is the epoch loss, and it is not asked for', () =>
    // A grace that outlasts the report's handling on most machines, so the check after the report
    // covers the time a request would have come.
    withBackfillListener({ gapGraceMs: 2000 }, async (h, requests) => {
      await h.device.publishEnvelope(makeEnvelope(1, 10, { epoch: OLD_EPOCH }));
      await h.device.publishEnvelope(makeEnvelope(15, 20, { epoch: OLD_EPOCH }));
      await h.device.waitForAck((a) => a.epoch === OLD_EPOCH && a.gaps.length > 0, 'old epoch with a gap');
      const report = {
        schema: 'elevator.epoch/1',
        device: DEVICE,
        epoch: EPOCH,
        previousEpoch: OLD_EPOCH,
        previousStreams: [{ stream: STREAM, appended: 30, watermark: 10 }],
        reportedAt: new Date().toISOString(),
      };
      await h.device.publishRaw(epochTopic(DEVICE), JSON.stringify(report));
      // The report is stored last, after the gaps it implies; the loss is counted once the store
      // has answered, which can be just after the file shows in the folder.
      await waitUntil(async () => (await h.archive.list('epochs/')).length === 1 && h.ingest.stats().epochLoss > 0, 'epoch report stored and its loss counted');
      // 11..14 and 21..30 never arrived.
      assert.equal(h.ingest.stats().epochLoss, 14);
      const audit = await auditArchive(h.archive);
      const old = audit.streams.find((s) => s.epoch === OLD_EPOCH)!;
      assert.deepEqual(old.gone, { 'epoch-replaced': 14 });
      assert.equal(old.watermark, 30);
      // Asked for before the report came is allowed (the gap was open then); after it, never.
      const askedBeforeTheReport = requests.filter((r) => r.epoch === OLD_EPOCH).length;
      await delay(2500);
      assert.equal(requests.filter((r) => r.epoch === OLD_EPOCH).length, askedBeforeTheReport, 'a closed epoch is never asked for, past its grace time too');
    }));

  test('malformed or mis-addressed loss and epoch reports are rejected with a reason and change nothing', () =>
    withBackfillListener({}, async (h) => {
      await h.device.publishRaw(lossTopic(DEVICE), loss([[5, 3]], 'byte-cap'));
      await h.device.publishRaw(lossTopic(DEVICE), loss([[1, 3]], 'because'));
      await h.device.publishRaw(lossTopic(DEVICE), loss([[1, 3]], 'byte-cap', { device: 'someone-else' }));
      await h.device.publishRaw(epochTopic(DEVICE), JSON.stringify({ schema: 'elevator.epoch/1', device: DEVICE, epoch: EPOCH }));
      await waitUntil(() => Object.values(h.ingest.stats().rejected).reduce((a, b) => a + b, 0) === 4, 'four rejections');
      assert.deepEqual(h.ingest.stats().rejected, { loss: 2, 'mis-addressed': 1, epoch: 1 });
      assert.deepEqual(await h.archive.list('gaps/'), []);
      assert.equal(h.ingest.stats().lossReports, 0);
    }));
});

test('a repeated epoch report changes nothing; an unreadable old epoch is counted as a loss of unknown size', async () => {
  const h = await startHarness({ gapCheckIntervalMs: 0 });
  try {
    await h.device.publishEnvelope(makeEnvelope(1, 4, { epoch: OLD_EPOCH }));
    await h.device.waitForAck((a) => a.epoch === OLD_EPOCH && a.watermark === 4, 'old epoch acked');
    const report = (previousStreams: unknown, epoch = EPOCH, previousEpoch: string | null = OLD_EPOCH) =>
      JSON.stringify({ schema: 'elevator.epoch/1', device: DEVICE, epoch, previousEpoch, previousStreams, reportedAt: new Date().toISOString() });
    await h.device.publishRaw(epochTopic(DEVICE), report([{ stream: STREAM, appended: 10, watermark: 4 }]));
    await h.device.publishRaw(epochTopic(DEVICE), report([{ stream: STREAM, appended: 10, watermark: 4 }]));
    await waitUntil(() => h.ingest.stats().epochReports === 2, 'both reports handled');
    await h.ingest.idle();
    assert.equal(h.ingest.stats().epochLoss, 6, 'counted once');
    assert.deepEqual(await h.archive.list('gaps/'), [gapKey(DEVICE, STREAM, OLD_EPOCH, 5, 10)]);
    await h.device.publishRaw(epochTopic(DEVICE), report(null, '22222222-3333-4444-8555-666666666666', EPOCH));
    await waitUntil(() => h.ingest.stats().epochLossUnknown === 1, 'unknown-size loss counted');
  } finally {
    await h.close();
  }
});
