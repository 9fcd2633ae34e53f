import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import {
  ACK_SCHEMA,
  ENVELOPE_SCHEMA,
  buildEnvelope,
  checkAck,
  checkEnvelope,
  encodeEnvelopePayload,
  encodeStoredEnvelope,
  isGzip,
  parseEnvelopePayload,
  parseJson,
  recordsChecksum,
  type AckCommand,
  type Envelope,
  type WireRecord,
} from '../../components/shared/envelope';

const DEVICE = 'elevator-0001';
const STREAM = 'door-cycle';
const EPOCH = '0f8fad5b-d9cb-469f-a165-70867728950e';
const SENT_AT = new Date('2025-01-01T00:00:00.000Z');

function records(from: number, to: number): WireRecord[] {
  const out: WireRecord[] = [];
  for (let seq = from; seq <= to; seq += 1) {
    out.push({ seq, time: 1_700_000_000_000 + seq * 1000, mono: seq * 1000.25, data: { floor: seq % 12, openMs: 2000 + seq, speed: 0.25 + seq / 1000 } });
  }
  return out;
}

/** The envelope as the receiver sees it: serialized and parsed again. */
function wire(envelope: Envelope): Record<string, unknown> & Envelope {
  return JSON.parse(JSON.stringify(envelope)) as Record<string, unknown> & Envelope;
}

function reasonOf(result: { ok: boolean; reason?: string }): string {
  assert.equal(result.ok, false, 'expected the check to fail');
  return (result as { reason: string }).reason;
}

describe('buildEnvelope', () => {
  test('fills id, range, count, sentAt and a sha256 checksum over JSON.stringify(records)', () => {
    const recs = records(5, 7);
    const env = buildEnvelope(DEVICE, STREAM, EPOCH, recs, SENT_AT);
    const expectedChecksum = `sha256:${createHash('sha256').update(JSON.stringify(recs)).digest('hex')}`;
    assert.deepEqual(env, {
      schema: ENVELOPE_SCHEMA,
      envelopeId: `${DEVICE}/${STREAM}/${EPOCH}/5-7`,
      device: DEVICE,
      stream: STREAM,
      dataSchema: 'elevator.door-cycle/1',
      epoch: EPOCH,
      seqFrom: 5,
      seqTo: 7,
      count: 3,
      sentAt: '2025-01-01T00:00:00.000Z',
      checksum: expectedChecksum,
      records: recs,
    });
    assert.equal(recordsChecksum(recs), expectedChecksum);
  });

  test('refuses records that are not contiguous, naming the break', () => {
    const recs = [...records(1, 2), ...records(4, 4)];
    assert.throws(() => buildEnvelope(DEVICE, STREAM, EPOCH, recs, SENT_AT), {
      name: 'RangeError',
      message: 'envelope records must be contiguous: seq 2 is followed by 4',
    });
  });

  test('refuses records out of order and duplicates', () => {
    assert.throws(() => buildEnvelope(DEVICE, STREAM, EPOCH, [...records(2, 2), ...records(1, 1)], SENT_AT), RangeError);
    assert.throws(() => buildEnvelope(DEVICE, STREAM, EPOCH, [...records(1, 1), ...records(1, 1)], SENT_AT), RangeError);
  });

  test('refuses an empty record list', () => {
    assert.throws(() => buildEnvelope(DEVICE, STREAM, EPOCH, [], SENT_AT), RangeError);
  });
});

describe('checkEnvelope', () => {
  test('accepts what buildEnvelope produced after a JSON round trip', () => {
    const env = buildEnvelope(DEVICE, STREAM, EPOCH, records(1, 50), SENT_AT);
    const result = checkEnvelope(wire(env));
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.deepEqual(result.ok && result.value, env);
  });

  test('accepts a single-record envelope', () => {
    assert.equal(checkEnvelope(wire(buildEnvelope(DEVICE, STREAM, EPOCH, records(9, 9), SENT_AT))).ok, true);
  });

  test('rejects tampered record data with a "checksum:" reason', () => {
    const env = wire(buildEnvelope(DEVICE, STREAM, EPOCH, records(1, 3), SENT_AT));
    (env.records[1].data as { openMs: number }).openMs += 1;
    assert.match(reasonOf(checkEnvelope(env)), /^checksum: envelope says sha256:[0-9a-f]{64}, records hash to sha256:[0-9a-f]{64}$/);
  });

  test('rejects a tampered timestamp with a "checksum:" reason', () => {
    const env = wire(buildEnvelope(DEVICE, STREAM, EPOCH, records(1, 3), SENT_AT));
    env.records[0].time += 1;
    assert.match(reasonOf(checkEnvelope(env)), /^checksum: /);
  });

  test('rejects a count that disagrees with the records with a "count:" reason', () => {
    const env = wire(buildEnvelope(DEVICE, STREAM, EPOCH, records(1, 2), SENT_AT));
    env.count = 3;
    assert.equal(reasonOf(checkEnvelope(env)), 'count: count=3, records=2, range 1-2');
  });

  test('rejects a range that disagrees with the records with a "count:" reason', () => {
    const env = wire(buildEnvelope(DEVICE, STREAM, EPOCH, records(1, 2), SENT_AT));
    env.seqTo = 3;
    assert.match(reasonOf(checkEnvelope(env)), /^count: /);
  });

  test('rejects non-contiguous sequence numbers with a "sequence:" reason', () => {
    const env = wire(buildEnvelope(DEVICE, STREAM, EPOCH, records(1, 3), SENT_AT));
    env.records[2].seq = 4;
    assert.equal(reasonOf(checkEnvelope(env)), 'sequence: records[2].seq is 4, expected 3');
  });

  test('rejects seqTo < seqFrom with a "range:" reason', () => {
    const env = wire(buildEnvelope(DEVICE, STREAM, EPOCH, records(5, 5), SENT_AT));
    env.seqTo = 4;
    assert.equal(reasonOf(checkEnvelope(env)), 'range: seqTo 4 < seqFrom 5');
  });

  test('rejects an extra top-level property with a "schema:" reason', () => {
    const env = wire(buildEnvelope(DEVICE, STREAM, EPOCH, records(1, 1), SENT_AT));
    env.extra = true;
    assert.match(reasonOf(checkEnvelope(env)), /^schema: .*additional properties/);
  });

  test('rejects an extra property inside a record with a "schema:" reason naming the record', () => {
    const env = wire(buildEnvelope(DEVICE, STREAM, EPOCH, records(1, 2), SENT_AT));
    (env.records[1] as unknown as Record<string, unknown>).sneaky = 1;
    assert.match(reasonOf(checkEnvelope(env)), /^schema: \/records\/1 /);
  });

  test('rejects a missing field, a bad checksum format and a non-object with a "schema:" reason', () => {
    const missing = wire(buildEnvelope(DEVICE, STREAM, EPOCH, records(1, 1), SENT_AT));
    delete (missing as Partial<Envelope>).checksum;
    assert.match(reasonOf(checkEnvelope(missing)), /^schema: .*checksum/);
    const badChecksum = wire(buildEnvelope(DEVICE, STREAM, EPOCH, records(1, 1), SENT_AT));
    badChecksum.checksum = 'md5:abc';
    assert.match(reasonOf(checkEnvelope(badChecksum)), /^schema: \/checksum /);
    assert.match(reasonOf(checkEnvelope('not an envelope')), /^schema: /);
    assert.match(reasonOf(checkEnvelope(null)), /^schema: /);
  });
});

describe('checkAck', () => {
  const ack = (patch: Partial<AckCommand> = {}): AckCommand => ({
    schema: ACK_SCHEMA,
    stream: STREAM,
    epoch: EPOCH,
    watermark: 10,
    gaps: [
      [12, 14],
      [20, 20],
    ],
    issuedAt: '2025-01-01T00:00:00.000Z',
    ...patch,
  });

  test('accepts a valid ack and returns it', () => {
    const result = checkAck(ack());
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.deepEqual(result.ok && result.value, ack());
  });

  test('accepts an ack with no gaps and a zero watermark', () => {
    assert.equal(checkAck(ack({ watermark: 0, gaps: [] })).ok, true);
  });

  test('rejects a gap starting at the watermark', () => {
    assert.equal(reasonOf(checkAck(ack({ gaps: [[10, 12]] }))), 'gaps: [10, 12] must satisfy watermark < from <= to');
  });

  test('rejects a gap below the watermark', () => {
    assert.match(reasonOf(checkAck(ack({ gaps: [[3, 4]] }))), /^gaps: \[3, 4\]/);
  });

  test('rejects a gap with from > to', () => {
    assert.match(reasonOf(checkAck(ack({ gaps: [[15, 14]] }))), /^gaps: \[15, 14\]/);
  });

  test('rejects a schema violation with a "schema:" reason', () => {
    assert.match(reasonOf(checkAck({ ...ack(), watermark: -1 })), /^schema: \/watermark /);
    assert.match(reasonOf(checkAck({ ...ack(), gaps: [[12]] })), /^schema: /);
    assert.match(reasonOf(checkAck({ ...ack(), extra: 1 })), /^schema: /);
  });
});

describe('parseJson', () => {
  test('parses a string and a byte payload', () => {
    assert.deepEqual(parseJson('{"a":[1,2]}'), { ok: true, value: { a: [1, 2] } });
    assert.deepEqual(parseJson(new TextEncoder().encode('{"b":"é"}')), { ok: true, value: { b: 'é' } });
  });

  test('reports invalid JSON with the prefix "json: "', () => {
    assert.match(reasonOf(parseJson('{not json')), /^json: \S/);
    assert.match(reasonOf(parseJson(new Uint8Array([0x7b]))), /^json: /);
    assert.match(reasonOf(parseJson('')), /^json: /);
  });
});

describe('envelope payloads on the wire', () => {
  const envelope = () => buildEnvelope(DEVICE, STREAM, EPOCH, records(1, 200), SENT_AT);

  test('JSON at or below the threshold stays JSON; above it is gzip, and both parse back to the same envelope', () => {
    const small = buildEnvelope(DEVICE, STREAM, EPOCH, records(1, 1), SENT_AT);
    const plain = encodeEnvelopePayload(small, 4096);
    assert.equal(isGzip(plain), false);
    assert.deepEqual(plain, Buffer.from(JSON.stringify(small)));
    const big = envelope();
    const packed = encodeEnvelopePayload(big, 4096);
    assert.equal(isGzip(packed), true);
    assert.ok(packed.length * 3 < JSON.stringify(big).length, `similar records compress (${packed.length} vs ${JSON.stringify(big).length} bytes)`);
    for (const payload of [plain, packed]) assert.equal(checkEnvelope((parseEnvelopePayload(payload) as { ok: true; value: unknown }).value).ok, true);
    assert.equal(isGzip(encodeEnvelopePayload(big, null)), false, 'null never compresses');
  });

  test('a gzip payload that expands past the limit is refused as oversized, a corrupt one as gzip, without throwing', () => {
    const bomb = gzipSync(Buffer.alloc(1024 * 1024, 0x20));
    assert.ok(bomb.length < 4096);
    assert.match(reasonOf(parseEnvelopePayload(bomb, 64 * 1024)), /^oversized: gzip payload expands beyond 65536 bytes$/);
    const corrupt = Buffer.from(encodeEnvelopePayload(envelope(), 0));
    corrupt[corrupt.length - 5] ^= 0xff;
    assert.match(reasonOf(parseEnvelopePayload(corrupt)), /^gzip: /);
    assert.match(reasonOf(parseEnvelopePayload(gzipSync('{not json'))), /^json: /);
  });
});

describe('encodeStoredEnvelope', () => {
  test('writes exactly the bytes of JSON.stringify(buildEnvelope(...)) for any stored data, so the checksum verifies', () => {
    const json = fc.jsonValue().map((value) => ({ value }));
    fc.assert(
      fc.property(
        fc.array(fc.record({ time: fc.integer({ min: 0, max: 2 ** 45 }), mono: fc.double({ noNaN: true, noDefaultInfinity: true }), data: json, clock: fc.constantFrom(undefined, null, 'synced', 'unsynced', 'unknown') }), { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.constantFrom(STREAM, 'motor', 'a-stream-without-contract'),
        (items, first, stream) => {
          const stored = items.map((item, i) => ({ seq: first + i, time: item.time, mono: item.mono, dataJson: JSON.stringify(item.data), clock: item.clock }));
          const wire: WireRecord[] = stored.map((r) => ({ seq: r.seq, time: r.time, mono: r.mono, data: JSON.parse(r.dataJson), ...(r.clock ? { clock: r.clock as WireRecord['clock'] } : {}) }));
          const { header, json: text } = encodeStoredEnvelope(DEVICE, stream, EPOCH, stored, SENT_AT);
          assert.equal(text, JSON.stringify(buildEnvelope(DEVICE, stream, EPOCH, wire, SENT_AT)));
          // What the ingest does: parse the text and hash its records again.
          assert.equal(header.checksum, recordsChecksum((JSON.parse(text) as Envelope).records));
        },
      ),
      { numRuns: 300 },
    );
  });

  test('refuses an empty or non-contiguous run, as buildEnvelope does', () => {
    assert.throws(() => encodeStoredEnvelope(DEVICE, STREAM, EPOCH, []), /at least one record/);
    assert.throws(() => encodeStoredEnvelope(DEVICE, STREAM, EPOCH, [{ seq: 1, time: 0, mono: 0, dataJson: '{}' }, { seq: 3, time: 0, mono: 0, dataJson: '{}' }]), /contiguous/);
  });
});
