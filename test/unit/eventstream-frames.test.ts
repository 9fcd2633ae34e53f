import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { EventStreamCodec } from '@smithy/eventstream-codec';
import { fromUtf8, toUtf8 } from '@smithy/util-utf8';
import { FLAG_CONNECTION_ACCEPTED, FLAG_TERMINATE_STREAM, FrameSplitter, MessageType, decodeFrame, encodeFrame } from '../../runtime/eventstream-server';

const MAX_FRAME_BYTES = 16 * 1024 * 1024;

function sampleFrames(): Buffer[] {
  return [
    encodeFrame({ type: MessageType.Connect, streamId: 0, headers: { ':version': '0.1.0' }, payload: JSON.stringify({ authToken: 'token-1' }) }),
    encodeFrame({ type: MessageType.ApplicationMessage, streamId: 1, headers: { operation: 'aws.greengrass#PublishToTopic' }, payload: Buffer.from([0, 1, 2, 255]) }),
    encodeFrame({ type: MessageType.Ping, streamId: 0 }),
    encodeFrame({ type: MessageType.ApplicationMessage, flags: FLAG_TERMINATE_STREAM, streamId: 7, payload: 'x'.repeat(300) }),
  ];
}

/** A prelude whose total-length field says `total`; the rest does not matter for the splitter. */
function preludeClaiming(total: number): Buffer {
  const prelude = Buffer.alloc(12);
  prelude.writeUInt32BE(total, 0);
  return prelude;
}

describe('encodeFrame / decodeFrame', () => {
  test('a round trip keeps :message-type, :message-flags and :stream-id as int32 values, string headers and the payload', () => {
    const payload = Buffer.from(JSON.stringify({ topic: 'a/b', message: { jsonMessage: { message: { x: 1 } } } }));
    const bytes = encodeFrame({
      type: MessageType.ApplicationMessage,
      flags: FLAG_TERMINATE_STREAM,
      streamId: 42,
      headers: { operation: 'aws.greengrass#PublishToTopic', 'service-model-type': 'aws.greengrass#PublishToTopicRequest', ':content-type': 'application/json' },
      payload,
    });
    const frame = decodeFrame(bytes);
    assert.equal(frame.type, MessageType.ApplicationMessage);
    assert.equal(frame.flags, FLAG_TERMINATE_STREAM);
    assert.equal(frame.streamId, 42);
    assert.deepEqual(frame.headers, {
      ':message-type': MessageType.ApplicationMessage,
      ':message-flags': FLAG_TERMINATE_STREAM,
      ':stream-id': 42,
      operation: 'aws.greengrass#PublishToTopic',
      'service-model-type': 'aws.greengrass#PublishToTopicRequest',
      ':content-type': 'application/json',
    });
    assert.ok(Buffer.isBuffer(frame.payload));
    assert.deepEqual(frame.payload, payload);
  });

  test('the three protocol headers are encoded with the int32 header type (type byte 4)', () => {
    const bytes = encodeFrame({ type: MessageType.ConnectAck, flags: FLAG_CONNECTION_ACCEPTED, streamId: 0 });
    // Headers follow the 12-byte prelude: name length (1), name, type (1), value.
    let offset = 12;
    const headersEnd = 12 + bytes.readUInt32BE(4);
    const seen: Record<string, { type: number; value: number }> = {};
    while (offset < headersEnd) {
      const nameLength = bytes.readUInt8(offset);
      const name = bytes.subarray(offset + 1, offset + 1 + nameLength).toString('utf8');
      const type = bytes.readUInt8(offset + 1 + nameLength);
      assert.equal(type, 4, `${name} has header type ${type}`);
      seen[name] = { type, value: bytes.readInt32BE(offset + 2 + nameLength) };
      offset += 2 + nameLength + 4;
    }
    assert.deepEqual(seen, {
      ':message-type': { type: 4, value: MessageType.ConnectAck },
      ':message-flags': { type: 4, value: FLAG_CONNECTION_ACCEPTED },
      ':stream-id': { type: 4, value: 0 },
    });
  });

  test('a frame without flags, headers or payload decodes with flags 0 and an empty payload', () => {
    const frame = decodeFrame(encodeFrame({ type: MessageType.PingResponse, streamId: 0 }));
    assert.equal(frame.type, MessageType.PingResponse);
    assert.equal(frame.flags, 0);
    assert.equal(frame.streamId, 0);
    assert.equal(frame.payload.length, 0);
  });

  test('a string payload is sent as its UTF-8 bytes', () => {
    const frame = decodeFrame(encodeFrame({ type: MessageType.ApplicationMessage, streamId: 3, payload: 'héllo' }));
    assert.deepEqual(frame.payload, Buffer.from('héllo', 'utf8'));
  });

  test('the total-length field of an encoded frame equals its byte length', () => {
    for (const bytes of sampleFrames()) assert.equal(bytes.readUInt32BE(0), bytes.length);
  });

  test('decodeFrame throws when a payload byte is flipped (message CRC)', () => {
    const bytes = Buffer.from(encodeFrame({ type: MessageType.ApplicationMessage, streamId: 1, payload: 'important payload' }));
    assert.doesNotThrow(() => decodeFrame(bytes));
    bytes[bytes.length - 4 - 3] ^= 0x01; // a payload byte: the last 4 bytes are the message CRC
    assert.throws(() => decodeFrame(bytes), /checksum|crc/i);
  });

  test('decodeFrame throws when a prelude byte is flipped (prelude CRC)', () => {
    const bytes = Buffer.from(encodeFrame({ type: MessageType.ApplicationMessage, streamId: 1, payload: 'x' }));
    bytes[5] ^= 0x01; // headers length
    assert.throws(() => decodeFrame(bytes));
  });

  test('decodeFrame refuses a valid frame that lacks :message-type and :stream-id', () => {
    const codec = new EventStreamCodec(toUtf8, fromUtf8);
    const bytes = Buffer.from(codec.encode({ headers: { operation: { type: 'string', value: 'x' } }, body: new Uint8Array(0) }));
    assert.throws(() => decodeFrame(bytes), /:message-type and :stream-id/);
  });
});

describe('FrameSplitter', () => {
  test('returns a single whole frame pushed in one chunk', () => {
    const [frame] = sampleFrames();
    const splitter = new FrameSplitter();
    const out = splitter.push(frame);
    assert.equal(out.length, 1);
    assert.deepEqual(out[0], frame);
  });

  test('reassembles a frame split at every byte boundary', () => {
    const frame = sampleFrames()[1];
    for (let cut = 1; cut < frame.length; cut += 1) {
      const splitter = new FrameSplitter();
      assert.deepEqual(splitter.push(frame.subarray(0, cut)), [], `cut at ${cut}`);
      const out = splitter.push(frame.subarray(cut));
      assert.equal(out.length, 1, `cut at ${cut}`);
      assert.deepEqual(out[0], frame, `cut at ${cut}`);
      assert.equal(decodeFrame(out[0]).streamId, 1);
    }
  });

  test('reassembles frames fed one byte at a time', () => {
    const frames = sampleFrames();
    const stream = Buffer.concat(frames);
    const splitter = new FrameSplitter();
    const out: Buffer[] = [];
    for (let i = 0; i < stream.length; i += 1) out.push(...splitter.push(stream.subarray(i, i + 1)));
    assert.deepEqual(out, frames);
  });

  test('returns several frames from one chunk, in order', () => {
    const frames = sampleFrames();
    const out = new FrameSplitter().push(Buffer.concat(frames));
    assert.equal(out.length, frames.length);
    assert.deepEqual(out, frames);
    assert.deepEqual(
      out.map((b) => decodeFrame(b).type),
      [MessageType.Connect, MessageType.ApplicationMessage, MessageType.Ping, MessageType.ApplicationMessage],
    );
  });

  test('keeps a trailing partial frame for the next chunk', () => {
    const frames = sampleFrames();
    const stream = Buffer.concat(frames);
    const firstTwo = frames[0].length + frames[1].length;
    const splitter = new FrameSplitter();
    const out1 = splitter.push(stream.subarray(0, firstTwo + 5));
    assert.deepEqual(out1, frames.slice(0, 2));
    const out2 = splitter.push(stream.subarray(firstTwo + 5));
    assert.deepEqual(out2, frames.slice(2));
  });

  test('rejects a total length below 16 bytes (prelude plus message CRC)', () => {
    assert.throws(() => new FrameSplitter().push(preludeClaiming(15)), /frame length 15 is outside 16\.\.16777216/);
    assert.throws(() => new FrameSplitter().push(preludeClaiming(0)), /frame length 0 /);
  });

  test('accepts the smallest legal total length of 16 bytes', () => {
    assert.deepEqual(new FrameSplitter().push(preludeClaiming(16)), []);
  });

  test('rejects a total length above 16 MiB before buffering it', () => {
    assert.throws(() => new FrameSplitter().push(preludeClaiming(MAX_FRAME_BYTES + 1)), /frame length 16777217 is outside 16\.\.16777216/);
    assert.throws(() => new FrameSplitter().push(preludeClaiming(0xffffffff)), /outside/);
  });

  test('accepts a total length of exactly 16 MiB and waits for the rest', () => {
    assert.deepEqual(new FrameSplitter().push(preludeClaiming(MAX_FRAME_BYTES)), []);
  });

  test('checks the length of a frame that follows a complete one in the same chunk', () => {
    const [frame] = sampleFrames();
    assert.throws(() => new FrameSplitter().push(Buffer.concat([frame, preludeClaiming(3)])), /frame length 3 /);
  });
});
