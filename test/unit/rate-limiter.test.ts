import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RateLimiter } from '../../components/shared/rate-limiter';

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

test('100 permits/s: the first is free, each next one is 10 ms after the previous', () => {
  const c = clock();
  const limiter = new RateLimiter(100, c.now);
  assert.equal(limiter.waitMs(), 0);
  limiter.take(1);
  assert.equal(limiter.waitMs(), 10);
  c.advance(4);
  assert.equal(limiter.waitMs(), 6);
  c.advance(6);
  assert.equal(limiter.waitMs(), 0);
  limiter.take(1);
  assert.equal(limiter.waitMs(), 10);
});

test('a large request is granted at once and the next one pays for it (the nucleus\'s RateLimiter semantics)', () => {
  const c = clock();
  const bytes = new RateLimiter(512 * 1024, c.now);
  assert.equal(bytes.waitMs(), 0);
  bytes.take(256 * 1024);
  assert.equal(bytes.waitMs(), 500, 'half a second of budget was spent ahead');
  c.advance(500);
  assert.equal(bytes.waitMs(), 0);
});

test('idle time stores at most one second of permits, spent as a burst', () => {
  const c = clock();
  const limiter = new RateLimiter(100, c.now);
  c.advance(10_000);
  for (let i = 0; i < 100; i += 1) {
    assert.equal(limiter.waitMs(), 0, `permit ${i} of the stored second`);
    limiter.take(1);
  }
  assert.equal(limiter.waitMs(), 0, 'the 101st is the first beyond the store, granted now and paid for by the next');
  limiter.take(1);
  assert.equal(limiter.waitMs(), 10);
});

test('a rate that is not positive is refused', () => {
  assert.throws(() => new RateLimiter(0), /permitsPerSec must be > 0/);
  assert.throws(() => new RateLimiter(Number.NaN), /permitsPerSec must be > 0/);
});
