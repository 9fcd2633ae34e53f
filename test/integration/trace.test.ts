/**
 * A trace id followed end to end (issue 6): one record of a real `npm start` pipeline, from the
 * acquisition's append through the publisher's envelope and the cloud's archive object to the ack
 * that let the device delete it, found in the components' and the ingest's own logs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { createLogger } from '../../components/shared/logger';
import { LocalFolderArchive } from '../../cloud/archive';
import { Pipeline } from '../../scripts/pipeline';
import { parseTraceKey, traceRecord, TRACE_STAGES } from '../../scripts/trace';
import { DIST, tempRoot } from '../helpers/runtime-fixture';

test('one record traced from append to archive to ack by its correlation id, in order, with the CLI agreeing', { timeout: 120_000 }, async () => {
  const root = tempRoot('trace-');
  const previous = process.env.LOG_LEVEL;
  // The per-record lines are debug lines; every process of the pipeline inherits this.
  process.env.LOG_LEVEL = 'debug';
  const logger = createLogger('trace-test');
  logger.level = 'warn';
  try {
    const summary = await new Pipeline({ root, thingName: 'trace-thing-01', durationMs: 8_000, drainTimeoutMs: 60_000, resume: false, timeScale: 20, logger }).run();
    assert.equal(summary.missing, 0);
  } finally {
    if (previous === undefined) delete process.env.LOG_LEVEL;
    else process.env.LOG_LEVEL = previous;
  }
  const archive = new LocalFolderArchive(join(root, 'cloud-archive'));
  const objects = await archive.list('records/trace-thing-01/run/');
  assert.ok(objects.length > 0, 'runs were archived');
  const body = JSON.parse((await archive.get(objects[0]))!.toString('utf8')) as { envelopeId: string; records: Array<{ seq: number }> };

  const key = parseTraceKey(body.envelopeId)!;
  assert.equal(key.seq, body.records[0].seq, 'an envelope id traces its first record');
  const trace = await traceRecord(root, key);
  assert.deepEqual(trace.missing, [], JSON.stringify(trace, null, 1));
  assert.equal(trace.archiveKey, objects[0]);
  const firstOf = (stage: string) => trace.events.find((e) => e.stage === stage)!;
  const times = TRACE_STAGES.map((stage) => Date.parse(firstOf(stage).at));
  assert.deepEqual(times, [...times].sort((a, b) => a - b), `appended <= published <= archived <= acked: ${TRACE_STAGES.map((s, i) => `${s} ${times[i]}`).join(', ')}`);
  assert.equal(firstOf('appended').component, 'SensorAcquisition');
  assert.equal(firstOf('published').component, 'MqttPublisher');
  assert.equal(firstOf('published').correlationId, body.envelopeId, 'the publisher logged the envelope id the archive holds');
  assert.equal(firstOf('archived').correlationId, body.envelopeId);
  assert.equal(firstOf('acked').component, 'MqttPublisher');

  const cli = spawnSync(process.execPath, [join(DIST, 'scripts', 'trace.js'), '--root', root, body.envelopeId], { encoding: 'utf8' });
  assert.equal(cli.status, 0, cli.stderr + cli.stdout);
  assert.match(cli.stdout, /SensorAcquisition\s+appended/);
  assert.match(cli.stdout, /archive object: records\//);
  const unknown = spawnSync(process.execPath, [join(DIST, 'scripts', 'trace.js'), '--root', root, `trace-thing-01/run/${key.epoch}/999999`], { encoding: 'utf8' });
  assert.equal(unknown.status, 1, 'a record that never existed is not traced');
  assert.match(unknown.stdout, /missing: appended, published, archived, acked/);
});
