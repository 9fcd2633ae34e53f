import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_SPOOLER_MAX_BYTES, SpoolFullError, Spooler, type SpooledMessage } from '../../runtime/spooler';

function bytes(n: number, fill = 'x'): Buffer {
  return Buffer.alloc(n, fill);
}

function topics(spooler: Spooler): string[] {
  const seen = new Set<number>();
  const out: string[] = [];
  for (let m = spooler.next(seen); m; m = spooler.next(seen)) {
    seen.add(m.id);
    out.push(m.topic);
  }
  return out;
}

describe('Spooler: configuration', () => {
  test('the default size is the nucleus default of 2.5 MiB (2621440 bytes)', () => {
    assert.equal(DEFAULT_SPOOLER_MAX_BYTES, 2_621_440);
    assert.equal(new Spooler().maxBytes, 2_621_440);
  });

  test('a size that is not > 0 is refused with the value named', () => {
    assert.throws(() => new Spooler(0), { name: 'RangeError', message: 'spooler maxSizeInBytes must be > 0, got 0' });
    assert.throws(() => new Spooler(-1), RangeError);
    assert.throws(() => new Spooler(Number.NaN), RangeError);
  });
});

describe('Spooler: size accounting', () => {
  test('sizeBytes is the sum of payload bytes and length the number of messages', () => {
    const spooler = new Spooler(1000);
    assert.equal(spooler.sizeBytes, 0);
    assert.equal(spooler.length, 0);
    spooler.add('a', bytes(10), 1, false);
    spooler.add('b', bytes(20), 0, false);
    spooler.add('c', bytes(30), 1, true);
    assert.equal(spooler.sizeBytes, 60);
    assert.equal(spooler.length, 3);
  });

  test('payload bytes are counted, not characters: a multi-byte UTF-8 payload counts its bytes', () => {
    const spooler = new Spooler(1000);
    spooler.add('a', Buffer.from('ééé'), 1, false);
    assert.equal(spooler.sizeBytes, 6);
  });

  test('add returns the stored message with increasing ids and the topic, payload, qos and retain given', () => {
    const spooler = new Spooler(1000);
    const payload = Buffer.from('hello');
    const first = spooler.add('dt/a', payload, 1, true);
    const second = spooler.add('dt/b', bytes(1), 0, false);
    assert.deepEqual({ ...first }, { id: first.id, topic: 'dt/a', payload, qos: 1, retain: true });
    assert.ok(second.id > first.id, `ids ${first.id}, ${second.id}`);
  });

  test('remove() frees the message bytes once; removing an unknown or already removed id changes nothing', () => {
    const spooler = new Spooler(1000);
    spooler.add('a', bytes(10), 1, false);
    const b = spooler.add('b', bytes(20), 1, false);
    spooler.add('c', bytes(30), 1, false);
    spooler.remove(b.id);
    assert.equal(spooler.sizeBytes, 40);
    assert.equal(spooler.length, 2);
    assert.deepEqual(topics(spooler), ['a', 'c']);
    spooler.remove(b.id);
    spooler.remove(9999);
    assert.equal(spooler.sizeBytes, 40);
    assert.equal(spooler.length, 2);
  });
});

describe('Spooler: next()', () => {
  test('next() returns the oldest message without removing it', () => {
    const spooler = new Spooler(1000);
    const a = spooler.add('a', bytes(1), 1, false);
    spooler.add('b', bytes(1), 1, false);
    assert.equal(spooler.next(new Set())?.id, a.id);
    assert.equal(spooler.next(new Set())?.id, a.id);
    assert.equal(spooler.length, 2);
  });

  test('next() skips the ids in the skip set (messages in flight) and keeps FIFO order for the rest', () => {
    const spooler = new Spooler(1000);
    const a = spooler.add('a', bytes(1), 1, false);
    const b = spooler.add('b', bytes(1), 0, false);
    const c = spooler.add('c', bytes(1), 1, false);
    assert.equal(spooler.next(new Set([a.id]))?.id, b.id);
    assert.equal(spooler.next(new Set([a.id, b.id]))?.id, c.id);
    assert.equal(spooler.next(new Set([b.id]))?.id, a.id);
    assert.equal(spooler.next(new Set([a.id, b.id, c.id])), undefined);
  });

  test('next() on an empty spool returns undefined', () => {
    assert.equal(new Spooler(10).next(new Set()), undefined);
  });

  test('after remove() of the head, next() returns the following message', () => {
    const spooler = new Spooler(1000);
    const a = spooler.add('a', bytes(1), 1, false);
    const b = spooler.add('b', bytes(1), 1, false);
    spooler.remove(a.id);
    assert.equal(spooler.next(new Set())?.id, b.id);
  });
});

describe('Spooler: when full (nucleus Spool.addMessage)', () => {
  test('a message that exactly fills the spool is accepted', () => {
    const spooler = new Spooler(100);
    spooler.add('a', bytes(60), 1, false);
    spooler.add('b', bytes(40), 1, false);
    assert.equal(spooler.sizeBytes, 100);
    assert.equal(spooler.counters.rejected, 0);
  });

  test('a new QoS 1 message evicts the oldest QoS 0 message, and only as many as needed', () => {
    const spooler = new Spooler(100);
    spooler.add('q0-old', bytes(30), 0, false);
    spooler.add('q1', bytes(30), 1, false);
    spooler.add('q0-mid', bytes(20), 0, false);
    spooler.add('q0-new', bytes(10), 0, false);
    spooler.add('incoming', bytes(30), 1, false); // needs 20 more bytes: evicting q0-old (30) is enough
    assert.deepEqual(topics(spooler), ['q1', 'q0-mid', 'q0-new', 'incoming']);
    assert.equal(spooler.sizeBytes, 90);
    assert.equal(spooler.counters.evictedQos0, 1);
  });

  test('eviction goes on oldest-first over QoS 0 messages until the new message fits, never touching QoS 1', () => {
    const spooler = new Spooler(100);
    spooler.add('q1-a', bytes(20), 1, false);
    spooler.add('q0-a', bytes(20), 0, false);
    spooler.add('q1-b', bytes(20), 1, false);
    spooler.add('q0-b', bytes(20), 0, false);
    spooler.add('q0-c', bytes(20), 0, false);
    spooler.add('incoming', bytes(45), 0, false); // needs 45: evicts q0-a, q0-b, q0-c (3 x 20)
    assert.deepEqual(topics(spooler), ['q1-a', 'q1-b', 'incoming']);
    assert.equal(spooler.sizeBytes, 85);
    assert.equal(spooler.counters.evictedQos0, 3);
    assert.equal(spooler.counters.rejected, 0);
  });

  test('a QoS 1 publish that does not fit in a spool holding only QoS 1 messages is refused with SpoolFullError naming used and max bytes', () => {
    const spooler = new Spooler(100);
    spooler.add('a', bytes(60), 1, false);
    spooler.add('b', bytes(30), 1, false);
    assert.throws(() => spooler.add('c', bytes(20), 1, false), (error: unknown) => {
      assert.ok(error instanceof SpoolFullError);
      assert.equal(error.message, 'spooler is full (90 of 100 bytes used); message of 20 bytes refused');
      return true;
    });
    assert.equal(spooler.sizeBytes, 90);
    assert.deepEqual(topics(spooler), ['a', 'b']);
    assert.equal(spooler.counters.rejected, 1);
    assert.equal(spooler.counters.spooled, 2);
  });

  test('a QoS 0 publish that does not fit among QoS 1 messages is refused too', () => {
    const spooler = new Spooler(50);
    spooler.add('a', bytes(50), 1, false);
    assert.throws(() => spooler.add('b', bytes(1), 0, false), SpoolFullError);
    assert.equal(spooler.length, 1);
  });

  test('when evicting every QoS 0 message still leaves too little room, those messages stay evicted and the publish is refused (as the nucleus does)', () => {
    const spooler = new Spooler(100);
    spooler.add('q1', bytes(70), 1, false);
    spooler.add('q0', bytes(20), 0, false);
    assert.throws(() => spooler.add('big', bytes(40), 1, false), /70 of 100 bytes used\); message of 40 bytes refused/);
    assert.deepEqual(topics(spooler), ['q1']);
    assert.equal(spooler.sizeBytes, 70);
    assert.equal(spooler.counters.evictedQos0, 1);
    assert.equal(spooler.counters.rejected, 1);
  });

  test('a message larger than the whole spool is refused at once and evicts nothing', () => {
    const spooler = new Spooler(100);
    spooler.add('q0', bytes(10), 0, false);
    assert.throws(() => spooler.add('huge', bytes(101), 1, false), (error: unknown) => {
      assert.ok(error instanceof SpoolFullError);
      assert.equal(error.message, 'message of 101 bytes exceeds the spooler size of 100 bytes');
      return true;
    });
    assert.deepEqual(topics(spooler), ['q0']);
    assert.equal(spooler.counters.evictedQos0, 0);
    assert.equal(spooler.counters.rejected, 1);
  });

  test('counters add up: spooled counts accepted messages, rejected refused ones, evictedQos0 evictions', () => {
    const spooler = new Spooler(10);
    const accepted: SpooledMessage[] = [];
    accepted.push(spooler.add('a', bytes(4), 0, false));
    accepted.push(spooler.add('b', bytes(4), 0, false));
    accepted.push(spooler.add('c', bytes(4), 1, false)); // evicts a
    assert.throws(() => spooler.add('d', bytes(11), 1, false), SpoolFullError);
    accepted.push(spooler.add('e', bytes(6), 1, false)); // evicts b
    assert.throws(() => spooler.add('f', bytes(1), 1, false), SpoolFullError);
    assert.deepEqual(spooler.counters, { spooled: 4, rejected: 2, evictedQos0: 2 });
    assert.equal(accepted.length, 4);
    assert.deepEqual(topics(spooler), ['c', 'e']);
    assert.equal(spooler.sizeBytes, 10);
  });
});
