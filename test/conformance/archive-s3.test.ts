/**
 * The S3 archive backend with the real AWS SDK v3 client against s3rver, a local S3-compatible
 * server, one bucket per test.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { auditArchive } from '../../cloud/audit';
import { recordKey } from '../../cloud/keys';
import { S3ArchiveBackend } from '../../cloud/s3-archive';
import { DEVICE, EPOCH, makeEnvelope, startHarness, STREAM } from '../helpers/cloud-fixtures';
import { startLocalS3, type LocalS3 } from '../helpers/s3-server';
import { archiveConformance } from './archive-conformance';

let s3: LocalS3;
let buckets = 0;

before(async () => {
  s3 = await startLocalS3();
});

after(async () => {
  await s3?.stop();
});

archiveConformance('S3 archive (s3rver)', async () => {
  buckets += 1;
  const bucket = `archive-conformance-${buckets}`;
  const archive = new S3ArchiveBackend({ bucket, prefix: 'fleet-a/', endpoint: s3.endpoint, credentials: s3.credentials, maxAttempts: 3, requestTimeoutMs: 20_000 });
  await archive.client.send(new CreateBucketCommand({ Bucket: bucket }));
  return { archive, dispose: async () => archive.client.destroy() };
});

test('the cloud ingest runs on the S3 archive: envelopes are archived in the bucket, acked, and the audit reads them back', { timeout: 60_000 }, async () => {
  const bucket = 'ingest-on-s3';
  const archive = new S3ArchiveBackend({ bucket, prefix: 'cloud/', endpoint: s3.endpoint, credentials: s3.credentials, maxAttempts: 3, requestTimeoutMs: 20_000 });
  await archive.client.send(new CreateBucketCommand({ Bucket: bucket }));
  const h = await startHarness({ archiveWrapper: () => archive });
  try {
    await h.device.publishEnvelope(makeEnvelope(1, 20));
    await h.device.publishEnvelope(makeEnvelope(21, 30));
    await h.device.waitForAck((a) => a.watermark === 30, 'watermark 30', 15_000);
    const audit = await auditArchive(archive);
    assert.equal(audit.uniqueRecords, 30);
    assert.equal(audit.duplicateRecords, 0);
    assert.equal(audit.missingRecords, 0);
    assert.deepEqual(audit.unreadable, []);
    assert.deepEqual(await archive.list('records/'), [recordKey(DEVICE, STREAM, EPOCH, 1, 20), recordKey(DEVICE, STREAM, EPOCH, 21, 30)]);
  } finally {
    await h.close();
    archive.client.destroy();
  }
});
