import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LocalFolderArchive } from '../../cloud/archive';
import { auditArchive } from '../../cloud/audit';
import { gapKey, recordKey } from '../../cloud/keys';
import { makeRecords, tempDir } from '../helpers/cloud-fixtures';

function run(device: string, stream: string, epoch: string, from: number, to: number): string {
  return JSON.stringify({ device, stream, epoch, seqFrom: from, seqTo: to, envelopeId: 'x', receivedAt: new Date(0).toISOString(), records: makeRecords(from, to) });
}

test('auditArchive counts unique records from object contents, not key names', async () => {
  const dir = await tempDir();
  try {
    const archive = new LocalFolderArchive(dir.path);
    await archive.put(recordKey('dev-1', 'run', 'abcdef12', 1, 10), run('dev-1', 'run', 'abcdef12', 1, 10));
    // Overlaps the first object: seqs 8..10 must be counted once.
    await archive.put(recordKey('dev-1', 'run', 'abcdef12', 11, 15), run('dev-1', 'run', 'abcdef12', 8, 15));
    // The key claims 21..100 but the object holds 21..22: the contents win.
    await archive.put(recordKey('dev-1', 'run', 'abcdef12', 21, 100), run('dev-1', 'run', 'abcdef12', 21, 22));
    // The key names dev-1 but the contents belong to dev-2.
    await archive.put(recordKey('dev-1', 'motor', 'abcdef12', 1, 3), run('dev-2', 'motor', 'abcdef12', 1, 3));
    await archive.put(recordKey('dev-1', 'motor', 'abcdef12', 4, 4), 'not json');
    await archive.put('health/dev-1/latest.json', '{}');

    const audit = await auditArchive(archive);
    assert.deepEqual(audit.streams, [
      { device: 'dev-1', stream: 'run', epoch: 'abcdef12', uniqueRecords: 17, duplicateRecords: 3, gone: {}, watermark: 15, highestSeq: 22, gaps: [[16, 20]], missingRecords: 5 },
      { device: 'dev-2', stream: 'motor', epoch: 'abcdef12', uniqueRecords: 3, duplicateRecords: 0, gone: {}, watermark: 3, highestSeq: 3, gaps: [], missingRecords: 0 },
    ]);
    assert.equal(audit.uniqueRecords, 20);
    assert.equal(audit.duplicateRecords, 3, 'seqs 8..10 are stored twice');
    assert.equal(audit.missingRecords, 5);
    assert.equal(audit.objects, 5);
    assert.equal(audit.unreadable.length, 1);
    assert.match(audit.unreadable[0].reason, /^json:/);
  } finally {
    await dir.remove();
  }
});

test('auditArchive of an empty archive finds nothing', async () => {
  const dir = await tempDir();
  try {
    const audit = await auditArchive(new LocalFolderArchive(dir.path));
    assert.deepEqual(audit, { streams: [], uniqueRecords: 0, duplicateRecords: 0, missingRecords: 0, objects: 0, unreadable: [] });
  } finally {
    await dir.remove();
  }
});

test('auditArchive counts permanent gaps by reason, only where nothing was archived, and the watermark passes them', async () => {
  const dir = await tempDir();
  try {
    const archive = new LocalFolderArchive(dir.path);
    await archive.put(recordKey('dev-1', 'run', 'abcdef12', 1, 5), run('dev-1', 'run', 'abcdef12', 1, 5));
    await archive.put(recordKey('dev-1', 'run', 'abcdef12', 11, 12), run('dev-1', 'run', 'abcdef12', 11, 12));
    const gap = (from: number, to: number, reason: string) =>
      archive.put(gapKey('dev-1', 'run', 'abcdef12', from, to), JSON.stringify({ device: 'dev-1', stream: 'run', epoch: 'abcdef12', seqFrom: from, seqTo: to, reason }));
    await gap(6, 8, 'byte-cap');
    // 9..11 declared gone, but 11 was archived after all: only 9 and 10 count as gone.
    await gap(9, 11, 'epoch-replaced');
    const audit = await auditArchive(archive);
    assert.equal(audit.streams.length, 1);
    assert.deepEqual(audit.streams[0].gone, { 'byte-cap': 3, 'epoch-replaced': 2 });
    assert.equal(audit.streams[0].uniqueRecords, 7);
    assert.equal(audit.streams[0].watermark, 12);
    assert.deepEqual(audit.streams[0].gaps, []);
  } finally {
    await dir.remove();
  }
});
