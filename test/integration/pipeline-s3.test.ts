/**
 * npm start with the cloud archive in S3 (issue 10): the whole pipeline, the ingest writing through
 * the S3 backend to a local S3-compatible server, and the summary audited from the bucket.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { S3ArchiveBackend } from '../../cloud/s3-archive';
import { createLogger } from '../../components/shared/logger';
import { Pipeline } from '../../scripts/pipeline';
import { startLocalS3 } from '../helpers/s3-server';
import { tempRoot } from '../helpers/runtime-fixture';

test('npm start archives to s3://bucket/prefix: nothing missing, every record in the bucket, none on local disk', { timeout: 180_000 }, async () => {
  const s3 = await startLocalS3();
  const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
  // The SDK's default credential chain, as on a real deployment; the ingest process inherits them.
  process.env.AWS_ACCESS_KEY_ID = s3.credentials.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = s3.credentials.secretAccessKey;
  const bucket = new S3ArchiveBackend({ bucket: 'elevator-archive', prefix: 'run-1/', endpoint: s3.endpoint });
  try {
    await bucket.client.send(new CreateBucketCommand({ Bucket: 'elevator-archive' }));
    const root = tempRoot('ps3-');
    const logger = createLogger('pipeline-s3-test');
    logger.level = 'warn';
    const pipeline = new Pipeline({ root, thingName: 's3-thing-01', durationMs: 8_000, drainTimeoutMs: 60_000, resume: false, timeScale: 20, archiveUrl: 's3://elevator-archive/run-1', s3Endpoint: s3.endpoint, logger });
    const summary = await pipeline.run();
    assert.ok(summary.produced > 50, `records were produced (${summary.produced})`);
    assert.equal(summary.drained, true);
    assert.equal(summary.missing, 0);
    assert.equal(summary.archived, summary.produced, 'audited from the bucket');
    const objects = await bucket.list('records/s3-thing-01/');
    assert.ok(objects.length > 0, 'record objects are in the bucket, under the prefix');
    assert.ok(summary.health['s3-thing-01'], 'the final health came from the bucket too');
    assert.deepEqual(await pipeline.archive.list('records/'), objects, 'the pipeline reads the same bucket');
    assert.equal(existsSync(join(root, 'cloud-archive', 'records')), false, 'nothing was archived on local disk');
  } finally {
    bucket.client.destroy();
    if (saved.id === undefined) delete process.env.AWS_ACCESS_KEY_ID;
    else process.env.AWS_ACCESS_KEY_ID = saved.id;
    if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
    else process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
    await s3.stop();
  }
});
