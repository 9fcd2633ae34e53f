import { test } from 'node:test';
import assert from 'node:assert/strict';
import { invalidIotTopicReason } from '../../runtime/iot-topic';

test('a topic with 7 slashes and 256 bytes is accepted; 8 slashes or 257 bytes are refused with the limit named', () => {
  assert.equal(invalidIotTopicReason('a/b/c/d/e/f/g/h', 'publish'), undefined);
  assert.match(invalidIotTopicReason('a/b/c/d/e/f/g/h/i', 'publish')!, /8 forward slashes; AWS IoT Core allows at most 7/);
  assert.equal(invalidIotTopicReason('x'.repeat(256), 'publish'), undefined);
  assert.match(invalidIotTopicReason('x'.repeat(257), 'subscribe')!, /257 bytes; AWS IoT Core allows at most 256/);
  assert.match(invalidIotTopicReason('é'.repeat(129), 'publish')!, /258 bytes/, 'bytes, not characters');
});

test('the Basic Ingest prefix does not count, and may not be all there is', () => {
  assert.equal(invalidIotTopicReason(`$aws/rules/my_rule/${'a/'.repeat(7)}b`, 'publish'), undefined);
  assert.match(invalidIotTopicReason('$aws/rules/my_rule/', 'publish') ?? 'accepted', /Basic Ingest topic is empty/);
});

test('wildcards are refused in a publish topic and allowed in a subscription', () => {
  assert.match(invalidIotTopicReason('dt/+/x', 'publish')!, /wildcards/);
  assert.equal(invalidIotTopicReason('dt/+/#', 'subscribe'), undefined);
  assert.match(invalidIotTopicReason('', 'subscribe')!, /empty/);
});
