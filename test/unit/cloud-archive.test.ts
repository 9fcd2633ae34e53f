import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { checkArchiveKey } from '../../cloud/archive';
import { decodeKeySegment, encodeKeySegment, healthKey, parseRecordKey, recordKey, rejectedKey } from '../../cloud/keys';
import { withArchive } from '../helpers/cloud-fixtures';


describe('LocalFolderArchive', () => {
  test('get returns what put stored, as bytes', () =>
    withArchive(async (archive) => {
      await archive.put('a/b/c.json', '{"x":1}');
      await archive.put('a/bin', Buffer.from([0, 255, 1]));
      assert.equal((await archive.get('a/b/c.json'))!.toString('utf8'), '{"x":1}');
      assert.deepEqual(await archive.get('a/bin'), Buffer.from([0, 255, 1]));
    }));

  test('get of a missing key is undefined', () =>
    withArchive(async (archive) => {
      assert.equal(await archive.get('nothing/here.json'), undefined);
    }));

  test('put replaces an object and leaves no temporary file behind', () =>
    withArchive(async (archive, root) => {
      await archive.put('k/obj.json', 'first');
      await archive.put('k/obj.json', 'second');
      assert.equal((await archive.get('k/obj.json'))!.toString(), 'second');
      assert.deepEqual(await readdir(join(root, 'k')), ['obj.json']);
    }));

  test('list returns keys under a prefix, sorted, treating the prefix as a plain string', () =>
    withArchive(async (archive) => {
      for (const key of ['r/b/2.json', 'r/a/1.json', 'r/b/10.json', 'r2/x.json', 's/y.json']) await archive.put(key, key);
      assert.deepEqual(await archive.list('r/'), ['r/a/1.json', 'r/b/10.json', 'r/b/2.json']);
      assert.deepEqual(await archive.list('r'), ['r/a/1.json', 'r/b/10.json', 'r/b/2.json', 'r2/x.json']);
      assert.deepEqual(await archive.list('r/b/1'), ['r/b/10.json']);
      assert.deepEqual(await archive.list(''), ['r/a/1.json', 'r/b/10.json', 'r/b/2.json', 'r2/x.json', 's/y.json']);
      assert.deepEqual(await archive.list('missing/'), []);
    }));

  test('list does not show temporary files of an interrupted put', () =>
    withArchive(async (archive, root) => {
      await archive.put('k/obj.json', 'x');
      const { writeFile } = await import('node:fs/promises');
      await writeFile(join(root, 'k', '.obj2.json.123.tmp'), 'half');
      assert.deepEqual(await archive.list('k/'), ['k/obj.json']);
    }));

  test('keys that are not S3-safe or could escape the root are refused', () =>
    withArchive(async (archive) => {
      for (const bad of ['../x', 'a/../../x', '/abs', 'a//b', 'a/.hidden', 'a b', 'a:b', 'é', '']) {
        await assert.rejects(archive.put(bad, 'x'), RangeError, bad);
      }
      assert.throws(() => checkArchiveKey('a'.repeat(1025)), /at most 1024/);
    }));
});

describe('archive key layout', () => {
  test('record keys are zero-padded to 12 digits so name order is seq order', () => {
    assert.equal(recordKey('elevator-0001', 'run', 'abcdef12', 1, 250), 'records/elevator-0001/run/abcdef12/000000000001-000000000250.json');
    const keys = [recordKey('d', 's', 'e1234567', 100, 199), recordKey('d', 's', 'e1234567', 2, 99)].sort();
    assert.equal(parseRecordKey(keys[0])!.seqFrom, 2);
  });

  test('parseRecordKey inverts recordKey, including for names that need encoding', () => {
    const key = recordKey('arn:thing/01!', 'door-cycle', '0f8fad5b-d9cb', 7, 9);
    checkArchiveKey(key);
    assert.deepEqual(parseRecordKey(key), { device: 'arn:thing/01!', stream: 'door-cycle', epoch: '0f8fad5b-d9cb', seqFrom: 7, seqTo: 9 });
  });

  test('parseRecordKey refuses keys the layout cannot produce', () => {
    for (const bad of [
      'records/d/s/e/1-2.json',
      'records/d/s/e/000000000002-000000000001.json',
      'records/d/s/e/000000000000-000000000001.json',
      'records/d/s/000000000001-000000000002.json',
      'health/d/s/e/000000000001-000000000002.json',
      'records/d!zz/s/e/000000000001-000000000002.json',
    ]) {
      assert.equal(parseRecordKey(bad), undefined, bad);
    }
  });

  test('segment encoding round-trips any string and yields only S3-safe characters', () => {
    for (const value of ['plain-name_1', 'a:b', '..', '.hidden', 'x/y', 'über', '!', '日本']) {
      const encoded = encodeKeySegment(value);
      assert.match(encoded, /^[A-Za-z0-9_!-]+$/);
      assert.equal(decodeKeySegment(encoded), value);
    }
    assert.equal(decodeKeySegment('a!3a'), undefined); // lowercase hex is never produced
  });

  test('health and rejected keys are S3-safe', () => {
    checkArchiveKey(healthKey('weird thing/..'));
    assert.equal(rejectedKey(new Date('2025-03-04T23:59:59Z'), 'f00d-1'), 'rejected/2025-03-04/f00d-1.json');
  });

  test('sequence numbers beyond the 12-digit layout are refused', () => {
    assert.throws(() => recordKey('d', 's', 'e', 1, 10 ** 12), /1\.\.999999999999/);
  });
});
