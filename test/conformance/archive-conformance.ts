/**
 * One abstract suite for every archive backend (cloud/archive.ts ArchiveBackend), in the way
 * aedes-persistence ships abstract tests for every persistence: a runner gives it a name and a way
 * to make a fresh, empty archive, and it registers the behaviours the ingest, the ledger rebuild,
 * the audit and the fleet view rely on. The test names read as the contract.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ArchiveBackend } from '../../cloud/archive';
import { encodeKeySegment, recordKey } from '../../cloud/keys';

export interface ArchiveUnderTest {
  archive: ArchiveBackend;
  /** Removes what the test wrote. */
  dispose(): Promise<void>;
}

export function archiveConformance(name: string, makeArchive: () => Promise<ArchiveUnderTest>): void {
  const withArchive = (body: (archive: ArchiveBackend) => Promise<void>) => async () => {
    const subject = await makeArchive();
    try {
      await body(subject.archive);
    } finally {
      await subject.dispose();
    }
  };

  test(`${name}: get returns exactly the bytes put stored, text or binary`, withArchive(async (archive) => {
    await archive.put('a/b/text.json', '{"x":1,"é":"ü"}');
    await archive.put('a/b/bin', Buffer.from([0, 255, 1, 128]));
    assert.equal((await archive.get('a/b/text.json'))!.toString('utf8'), '{"x":1,"é":"ü"}');
    assert.deepEqual([...(await archive.get('a/b/bin'))!], [0, 255, 1, 128]);
  }));

  test(`${name}: get of a key that was never put is undefined, not an error`, withArchive(async (archive) => {
    assert.equal(await archive.get('nothing/here.json'), undefined);
  }));

  test(`${name}: putting a key again replaces the object, so a resent envelope rewrites itself`, withArchive(async (archive) => {
    await archive.put('records/k.json', 'first');
    await archive.put('records/k.json', 'second');
    assert.equal((await archive.get('records/k.json'))!.toString(), 'second');
    assert.deepEqual(await archive.list('records/'), ['records/k.json'], 'still one object');
  }));

  test(`${name}: list returns every key under a plain string prefix, sorted, and nothing else`, withArchive(async (archive) => {
    for (const key of ['records/b/2.json', 'records/a/1.json', 'records/a/10.json', 'recordsX/z.json', 'gaps/a.json']) await archive.put(key, key);
    assert.deepEqual(await archive.list('records/'), ['records/a/1.json', 'records/a/10.json', 'records/b/2.json']);
    assert.deepEqual(await archive.list('records/a/1'), ['records/a/1.json', 'records/a/10.json'], 'a prefix need not end at a "/"');
    assert.deepEqual(await archive.list('absent/'), []);
  }));

  test(`${name}: record keys with encoded device names and zero-padded sequence numbers list in sequence order`, withArchive(async (archive) => {
    const device = 'elevator:lobby/01';
    const keys = [recordKey(device, 'run', 'e1', 100, 199), recordKey(device, 'run', 'e1', 1, 99), recordKey(device, 'run', 'e1', 200, 200)];
    for (const key of keys) await archive.put(key, '{}');
    const listed = await archive.list(`records/${encodeKeySegment(device)}/run/e1/`);
    assert.deepEqual(listed, [keys[1], keys[0], keys[2]]);
  }));

  test(`${name}: an unsafe key is refused with the reason before anything is written`, withArchive(async (archive) => {
    await assert.rejects(archive.put('../escape.json', 'x'), /invalid segment/);
    await assert.rejects(archive.put('a//b.json', 'x'), /invalid segment/);
    await assert.rejects(archive.put(`a/${'x'.repeat(1100)}`, 'x'), /S3 allows at most 1024/);
    assert.deepEqual(await archive.list(''), []);
  }));

  test(`${name}: a 1 MiB object round-trips intact`, withArchive(async (archive) => {
    const body = Buffer.alloc(1024 * 1024, 7);
    body[12345] = 42;
    await archive.put('big/object.bin', body);
    assert.ok((await archive.get('big/object.bin'))!.equals(body));
  }));

  test(`${name}: concurrent puts of different keys all land`, withArchive(async (archive) => {
    await Promise.all(Array.from({ length: 40 }, (_, i) => archive.put(`c/${String(i).padStart(3, '0')}.json`, String(i))));
    const listed = await archive.list('c/');
    assert.equal(listed.length, 40);
    assert.equal((await archive.get('c/017.json'))!.toString(), '17');
  }));

  test(`${name}: list goes past one page: 1,005 keys all come back (S3 pages 1,000 at a time)`, { timeout: 120_000 }, withArchive(async (archive) => {
    const keys = Array.from({ length: 1005 }, (_, i) => `many/${String(i).padStart(5, '0')}.json`);
    for (let i = 0; i < keys.length; i += 50) await Promise.all(keys.slice(i, i + 50).map((key) => archive.put(key, '1')));
    const listed = await archive.list('many/');
    assert.equal(listed.length, 1005);
    assert.deepEqual(listed, keys);
  }));
}
