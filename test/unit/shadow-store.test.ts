import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DEFAULT_MAX_DOCUMENT_SIZE_BYTES,
  DELETED_VERSION_RETENTION_MS,
  jsonDepth,
  ShadowConflictError,
  ShadowInvalidRequestError,
  ShadowNotFoundError,
  ShadowStore,
  ShadowStoreCorruptError,
} from '../../runtime/shadow-store';

const THING = 'elevator-0001';
const T0 = Date.UTC(2026, 0, 1, 12, 0, 0); // ms
const S0 = T0 / 1000; // seconds

/** A store on a fresh folder with a clock the test moves (seconds from T0). */
function fixture(options: { maxDocumentSizeBytes?: number } = {}): { store: ShadowStore; root: string; clock: { ms: number }; reopen(): ShadowStore } {
  const root = mkdtempSync(join(tmpdir(), 'shadow-'));
  const clock = { ms: T0 };
  const open = () => new ShadowStore(root, { ...options, now: () => clock.ms });
  return { store: open(), root, clock, reopen: open };
}

function rejects<E extends Error>(fn: () => unknown, type: new (...args: never[]) => E, message?: RegExp): E {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof type, `expected ${type.name}, got ${caught instanceof Error ? `${caught.constructor.name}: ${caught.message}` : String(caught)}`);
  if (message) assert.match((caught as E).message, message);
  return caught as E;
}

/** A JSON object nested `levels` deep as the shadow manager counts levels: {l1: {l2: ... {leaf: 1}}}. */
function nested(levels: number): Record<string, unknown> {
  let value: Record<string, unknown> = { leaf: 1 };
  for (let i = levels - 1; i >= 1; i -= 1) value = { [`l${i}`]: value };
  return value;
}

describe('ShadowStore: update and get', () => {
  test('the first update creates the shadow at version 1 and get returns state, metadata, version, timestamp', () => {
    const { store, clock } = fixture();
    const response = store.update(THING, '', { state: { reported: { floor: 3, door: { open: false } } }, clientToken: 'abc' });
    assert.deepEqual(response, {
      state: { reported: { floor: 3, door: { open: false } } },
      metadata: { reported: { floor: { timestamp: S0 }, door: { open: { timestamp: S0 } } } },
      version: 1,
      timestamp: S0,
      clientToken: 'abc',
    });
    clock.ms += 5000;
    assert.deepEqual(store.get(THING, ''), {
      state: { reported: { floor: 3, door: { open: false } } },
      metadata: { reported: { floor: { timestamp: S0 }, door: { open: { timestamp: S0 } } } },
      version: 1,
      timestamp: S0 + 5,
    });
  });

  test('a missing shadow is ShadowNotFoundError, and a named shadow is separate from the classic one', () => {
    const { store } = fixture();
    rejects(() => store.get(THING, ''), ShadowNotFoundError, /No shadow found/);
    store.update(THING, 'config', { state: { desired: { speed: 1 } } });
    rejects(() => store.get(THING, ''), ShadowNotFoundError);
    rejects(() => store.get('other-thing', 'config'), ShadowNotFoundError);
    assert.deepEqual(store.get(THING, 'config').state.desired, { speed: 1 });
  });

  test('updates merge: only the fields given change, objects merge key by key, arrays are replaced whole', () => {
    const { store } = fixture();
    store.update(THING, '', { state: { reported: { floor: 1, door: { open: false, sensor: 'ok' }, stops: [1, 2, 3] } } });
    store.update(THING, '', { state: { reported: { floor: 2, door: { open: true }, stops: [4] } } });
    assert.deepEqual(store.get(THING, '').state.reported, { floor: 2, door: { open: true, sensor: 'ok' }, stops: [4] });
    // A value may change type: an object replaces a leaf and a leaf replaces an object.
    store.update(THING, '', { state: { reported: { floor: { number: 2 }, door: 'closed' } } });
    assert.deepEqual(store.get(THING, '').state.reported, { floor: { number: 2 }, door: 'closed', stops: [4] });
  });

  test('a null value deletes its key; an object emptied that way goes too; desired: null deletes the section', () => {
    const { store } = fixture();
    store.update(THING, '', { state: { desired: { a: 1, b: { c: 2, d: 3 }, e: { f: 4 } }, reported: { a: 1 } } });
    store.update(THING, '', { state: { desired: { a: null, b: { c: null }, e: { f: null }, g: { h: null } } } });
    const doc = store.get(THING, '');
    assert.deepEqual(doc.state.desired, { b: { d: 3 } });
    assert.deepEqual(doc.metadata.desired, { b: { d: { timestamp: S0 } } }, 'metadata of deleted leaves goes with them');
    store.update(THING, '', { state: { desired: null } });
    const after = store.get(THING, '');
    assert.equal(after.state.desired, undefined);
    assert.equal(after.metadata.desired, undefined);
    assert.deepEqual(after.state.reported, { a: 1 }, 'the other section is untouched');
    // Deleting every key of a section removes the section as well.
    store.update(THING, '', { state: { reported: { a: null } } });
    assert.deepEqual(store.get(THING, '').state, {});
  });

  test('state: null clears both sections (shadow manager ShadowState.update) and still makes a version', () => {
    const { store } = fixture();
    store.update(THING, '', { state: { desired: { a: 1 }, reported: { a: 2 } } });
    const response = store.update(THING, '', { state: null });
    assert.equal(response.version, 2);
    assert.equal(response.state, null);
    const doc = store.get(THING, '');
    assert.deepEqual(doc.state, {});
    assert.deepEqual(doc.metadata, {});
  });

  test('a "delta" node in the request is ignored, and keys outside state are not stored', () => {
    const { store } = fixture();
    const response = store.update(THING, '', { state: { reported: { a: 1 }, delta: { a: 2 } }, metadata: { x: 1 }, extra: true });
    assert.deepEqual(response.state, { reported: { a: 1 } });
    const doc = store.get(THING, '');
    assert.deepEqual(doc.state, { reported: { a: 1 } });
    assert.deepEqual(Object.keys(doc).sort(), ['metadata', 'state', 'timestamp', 'version']);
  });
});

describe('ShadowStore: delta', () => {
  test('delta holds the desired values reported lacks or differs on, recursively, arrays compared whole', () => {
    const { store } = fixture();
    store.update(THING, '', {
      state: {
        desired: { speed: 2, mode: 'auto', door: { open: true, lock: 'on' }, stops: [1, 2], light: 'on' },
        reported: { speed: 2, mode: 'manual', door: { open: true, lock: 'off' }, stops: [1, 3], extra: 7 },
      },
    });
    assert.deepEqual(store.get(THING, '').state.delta, { mode: 'auto', door: { lock: 'on' }, stops: [1, 2], light: 'on' });
  });

  test('no delta when reported matches desired, when there is no desired, and desired alone is all delta', () => {
    const { store } = fixture();
    store.update(THING, 'a', { state: { desired: { x: { y: [1, { z: 2 }] } }, reported: { x: { y: [1, { z: 2 }] }, w: 1 } } });
    assert.equal('delta' in store.get(THING, 'a').state, false);
    store.update(THING, 'b', { state: { reported: { x: 1 } } });
    assert.equal('delta' in store.get(THING, 'b').state, false);
    store.update(THING, 'c', { state: { desired: { x: 1, y: { z: 2 } } } });
    assert.deepEqual(store.get(THING, 'c').state.delta, { x: 1, y: { z: 2 } });
  });

  test('the delta follows later updates of either section', () => {
    const { store } = fixture();
    store.update(THING, '', { state: { desired: { floor: 5 } } });
    store.update(THING, '', { state: { reported: { floor: 4 } } });
    assert.deepEqual(store.get(THING, '').state.delta, { floor: 5 });
    store.update(THING, '', { state: { reported: { floor: 5 } } });
    assert.equal(store.get(THING, '').state.delta, undefined);
  });
});

describe('ShadowStore: metadata and versions', () => {
  test('metadata: a written leaf gets the update time, untouched leaves keep theirs, arrays get one per element', () => {
    const { store, clock } = fixture();
    store.update(THING, '', { state: { reported: { a: 1, b: { c: 1, d: 1 }, list: ['x', 'y'] } } });
    clock.ms += 60_000;
    const response = store.update(THING, '', { state: { reported: { b: { c: 2 }, e: null } } });
    assert.deepEqual(response.metadata, { reported: { b: { c: { timestamp: S0 + 60 } }, e: { timestamp: S0 + 60 } } }, 'response metadata covers the request, deletions included');
    assert.deepEqual(store.get(THING, '').metadata.reported, {
      a: { timestamp: S0 },
      b: { c: { timestamp: S0 + 60 }, d: { timestamp: S0 } },
      list: [{ timestamp: S0 }, { timestamp: S0 }],
    });
  });

  test('each update adds 1 to the version; a matching version is accepted, a stale one is a conflict and changes nothing', () => {
    const { store } = fixture();
    assert.equal(store.update(THING, '', { state: { reported: { n: 1 } } }).version, 1);
    assert.equal(store.update(THING, '', { state: { reported: { n: 2 } } }).version, 2);
    assert.equal(store.update(THING, '', { state: { reported: { n: 3 } }, version: 2 }).version, 3);
    const conflict = rejects(() => store.update(THING, '', { state: { reported: { n: 99 } }, version: 2 }), ShadowConflictError, /Version conflict/);
    assert.equal(conflict.currentVersion, 3);
    rejects(() => store.update(THING, '', { state: { reported: { n: 99 } }, version: 4 }), ShadowConflictError);
    const doc = store.get(THING, '');
    assert.equal(doc.version, 3);
    assert.deepEqual(doc.state.reported, { n: 3 });
  });

  test('a shadow that does not exist is at version 0: version 0 creates it, any other version conflicts', () => {
    const { store } = fixture();
    rejects(() => store.update(THING, 'new', { state: { reported: { a: 1 } }, version: 1 }), ShadowConflictError);
    rejects(() => store.get(THING, 'new'), ShadowNotFoundError);
    assert.equal(store.update(THING, 'new', { state: { reported: { a: 1 } }, version: 0 }).version, 1);
  });
});

describe('ShadowStore: limits and validation', () => {
  test('the default limit is 8192 bytes of desired plus reported; exactly the limit passes, one byte more is refused', () => {
    const { store } = fixture();
    assert.equal(store.maxDocumentSizeBytes, DEFAULT_MAX_DOCUMENT_SIZE_BYTES);
    assert.equal(DEFAULT_MAX_DOCUMENT_SIZE_BYTES, 8192);
    const overhead = JSON.stringify({ s: '' }).length;
    store.update(THING, 'fits', { state: { reported: { s: 'x'.repeat(8192 - overhead) } } });
    const error = rejects(() => store.update(THING, 'big', { state: { reported: { s: 'x'.repeat(8193 - overhead) } } }), ShadowInvalidRequestError, /exceeds the maximum size/);
    assert.equal(error.httpCode, 413);
    rejects(() => store.get(THING, 'big'), ShadowNotFoundError);
  });

  test('the limit applies to the merged document: two updates that each fit may not fit together', () => {
    const { store } = fixture();
    store.update(THING, '', { state: { desired: { a: 'x'.repeat(5000) } } });
    rejects(() => store.update(THING, '', { state: { reported: { b: 'y'.repeat(5000) } } }), ShadowInvalidRequestError, /exceeds/);
    assert.equal(store.get(THING, '').version, 1);
    assert.equal(store.get(THING, '').state.reported, undefined);
  });

  test('metadata does not count towards the limit', () => {
    const { store } = fixture();
    // 700 keys with 1-digit values: ~6.3 KB of state, whose metadata alone is ~22 KB.
    const reported = Object.fromEntries(Array.from({ length: 700 }, (_, i) => [`k${i}`, 1]));
    assert.ok(JSON.stringify(reported).length < 8192);
    store.update(THING, '', { state: { reported } });
    assert.ok(JSON.stringify(store.get(THING, '').metadata).length > 8192);
  });

  test('the limit is configurable, up to the shadow manager maximum of 30720', () => {
    const { store } = fixture({ maxDocumentSizeBytes: 100 });
    rejects(() => store.update(THING, '', { state: { reported: { s: 'x'.repeat(100) } } }), ShadowInvalidRequestError);
    store.update(THING, '', { state: { reported: { s: 'x'.repeat(50) } } });
    assert.throws(() => new ShadowStore(tmpdir(), { maxDocumentSizeBytes: 30721 }), RangeError);
    assert.equal(new ShadowStore(tmpdir(), { maxDocumentSizeBytes: 30720 }).maxDocumentSizeBytes, 30720);
  });

  test('desired or reported may nest 6 levels, not 7 (arrays count as levels)', () => {
    assert.equal(jsonDepth({ a: 1 }), 1);
    assert.equal(jsonDepth(nested(6)), 6);
    assert.equal(jsonDepth({ a: [[1]] }), 3);
    const { store } = fixture();
    store.update(THING, '', { state: { desired: nested(6), reported: nested(6) } });
    rejects(() => store.update(THING, '', { state: { desired: nested(7) } }), ShadowInvalidRequestError, /too many levels of nesting; maximum is 6/);
    rejects(() => store.update(THING, '', { state: { reported: nested(7) } }), ShadowInvalidRequestError, /maximum is 6/);
    rejects(() => store.update(THING, '', { state: { reported: { a: { b: { c: { d: { e: [[1]] } } } } } } }), ShadowInvalidRequestError, /maximum is 6/);
    assert.equal(store.get(THING, '').version, 1);
  });

  test('malformed requests are ShadowInvalidRequestError with the AWS IoT messages', () => {
    const { store } = fixture();
    const cases: Array<[unknown, RegExp]> = [
      [[], /Invalid JSON/],
      [{ version: 1 }, /Missing required node: state/],
      [{ state: 5 }, /State node must be an object/],
      [{ state: { desired: [1] } }, /Desired node must be an object/],
      [{ state: { reported: 'x' } }, /Reported node must be an object/],
      [{ state: { foo: {} } }, /State contains an invalid node/],
      [{ state: { reported: { a: 1 } }, version: -1 }, /Invalid version/],
      [{ state: { reported: { a: 1 } }, version: 1.5 }, /Invalid version/],
      [{ state: { reported: { a: 1 } }, version: '1' }, /Invalid version/],
      [{ state: { reported: { a: 1 } }, clientToken: 'x'.repeat(65) }, /Invalid clientToken/],
      [{ state: { reported: { a: 1 } }, clientToken: 'é'.repeat(33) }, /Invalid clientToken/],
      [{ state: { reported: { a: 1 } }, clientToken: 7 }, /Invalid clientToken/],
      [{ state: { reported: { list: [1, null] } } }, /arrays can't have null values/],
    ];
    for (const [request, message] of cases) rejects(() => store.update(THING, '', request), ShadowInvalidRequestError, message);
    rejects(() => store.get(THING, ''), ShadowNotFoundError, /No shadow found/);
    // The longest valid clientToken is accepted.
    assert.equal(store.update(THING, '', { state: { reported: { a: 1 } }, clientToken: 'x'.repeat(64) }).clientToken, 'x'.repeat(64));
  });

  test('thing and shadow names follow [a-zA-Z0-9:_-], 128 and 64 characters at most', () => {
    const { store } = fixture();
    const ok = { state: { reported: { a: 1 } } };
    store.update('a:b_c-D9'.padEnd(128, 'x'), 'n:_-0'.padEnd(64, 'y'), ok);
    for (const thing of ['', 'x'.repeat(129), 'a/b', 'a.b', '..', 'a b']) rejects(() => store.update(thing, '', ok), ShadowInvalidRequestError, /ThingName/);
    for (const name of ['x'.repeat(65), 'a/b', '.', '..', 'a.json', '$shadow']) rejects(() => store.update(THING, name, ok), ShadowInvalidRequestError, /ShadowName/);
    rejects(() => store.list('a/b'), ShadowInvalidRequestError, /ThingName/);
  });
});

describe('ShadowStore: delete', () => {
  test('delete answers the deleted version (last + 1); the shadow is gone; a new one continues after it', () => {
    const { store, clock } = fixture();
    store.update(THING, '', { state: { reported: { a: 1 } } });
    store.update(THING, '', { state: { reported: { a: 2 } } });
    clock.ms += 1000;
    assert.deepEqual(store.delete(THING, ''), { version: 3, timestamp: S0 + 1 });
    rejects(() => store.get(THING, ''), ShadowNotFoundError);
    rejects(() => store.delete(THING, ''), ShadowNotFoundError);
    // The stale version conflicts; the deleted version is the one to build on.
    rejects(() => store.update(THING, '', { state: { reported: { b: 1 } }, version: 2 }), ShadowConflictError);
    const recreated = store.update(THING, '', { state: { reported: { b: 1 } }, version: 3 });
    assert.equal(recreated.version, 4);
    const doc = store.get(THING, '');
    assert.deepEqual(doc.state, { reported: { b: 1 } }, 'nothing of the deleted state survives');
    assert.deepEqual(doc.metadata, { reported: { b: { timestamp: S0 + 1 } } });
  });

  test('48 hours after a delete, the name starts again at version 1', () => {
    const { store, clock } = fixture();
    store.update(THING, 'n', { state: { reported: { a: 1 } } });
    store.delete(THING, 'n');
    clock.ms += DELETED_VERSION_RETENTION_MS + 1000;
    assert.equal(store.update(THING, 'n', { state: { reported: { a: 1 } } }).version, 1);
  });

  test('a missing shadow cannot be deleted', () => {
    const { store } = fixture();
    rejects(() => store.delete(THING, 'nothing'), ShadowNotFoundError, /No shadow found/);
  });
});

describe('ShadowStore: list', () => {
  test('lists named shadows sorted, without the classic or deleted ones, in pages with a token until the last', () => {
    const { store } = fixture();
    for (const name of ['delta', 'alpha', 'echo', 'charlie', 'bravo', 'gone']) store.update(THING, name, { state: { reported: { n: name } } });
    store.update(THING, '', { state: { reported: { classic: true } } });
    store.update('other-thing', 'zulu', { state: { reported: { n: 1 } } });
    store.delete(THING, 'gone');

    const first = store.list(THING, 2);
    assert.deepEqual(first.results, ['alpha', 'bravo']);
    assert.ok(first.nextToken);
    const second = store.list(THING, 2, first.nextToken);
    assert.deepEqual(second.results, ['charlie', 'delta']);
    const third = store.list(THING, 2, second.nextToken);
    assert.deepEqual(third.results, ['echo']);
    assert.equal(third.nextToken, undefined, 'no token after the last page');
    assert.deepEqual(store.list(THING).results, ['alpha', 'bravo', 'charlie', 'delta', 'echo'], 'default page size 25');
    const exact = store.list(THING, 5);
    assert.equal(exact.results.length, 5);
    assert.equal(exact.nextToken, undefined, 'a full last page has no token either');
    assert.equal(typeof first.timestamp, 'number');
  });

  test('a token survives changes between pages; a thing without shadows lists nothing', () => {
    const { store } = fixture();
    for (const name of ['a', 'b', 'c', 'd']) store.update(THING, name, { state: { reported: { n: 1 } } });
    const first = store.list(THING, 2);
    store.delete(THING, 'a');
    store.update(THING, 'bb', { state: { reported: { n: 1 } } });
    assert.deepEqual(store.list(THING, 2, first.nextToken).results, ['bb', 'c']);
    assert.deepEqual(store.list('no-such-thing'), { results: [], timestamp: S0 });
  });

  test('pageSize must be 1 to 100, and the token must be one of ours for this thing', () => {
    const { store } = fixture();
    store.update(THING, 'a', { state: { reported: { n: 1 } } });
    store.update(THING, 'b', { state: { reported: { n: 1 } } });
    for (const size of [0, 101, 1.5]) rejects(() => store.list(THING, size), ShadowInvalidRequestError, /pageSize/);
    assert.equal(store.list(THING, 100).results.length, 2);
    rejects(() => store.list(THING, 1, 'garbage!'), ShadowInvalidRequestError, /Invalid nextToken/);
    store.update('other-thing', 'a', { state: { reported: { n: 1 } } });
    store.update('other-thing', 'b', { state: { reported: { n: 1 } } });
    const foreign = store.list('other-thing', 1).nextToken!;
    rejects(() => store.list(THING, 1, foreign), ShadowInvalidRequestError, /Invalid nextToken/);
  });
});

describe('ShadowStore: persistence', () => {
  test('a new ShadowStore on the same folder sees documents, versions, metadata and deletions', () => {
    const { store, root, reopen } = fixture();
    store.update(THING, '', { state: { desired: { a: 1 }, reported: { a: 0 } } });
    store.update(THING, 'named', { state: { reported: { b: [1, 2] } } });
    store.update(THING, 'named', { state: { reported: { c: true } } });
    store.update(THING, 'doomed', { state: { reported: { d: 1 } } });
    store.delete(THING, 'doomed');
    const before = { classic: store.get(THING, ''), named: store.get(THING, 'named') };

    const again = reopen();
    assert.deepEqual(again.get(THING, ''), before.classic);
    assert.deepEqual(again.get(THING, 'named'), before.named);
    assert.equal(again.get(THING, 'named').version, 2);
    rejects(() => again.get(THING, 'doomed'), ShadowNotFoundError);
    assert.equal(again.update(THING, 'doomed', { state: { reported: { d: 2 } } }).version, 3, 'the deleted version survived the restart');
    assert.deepEqual(again.list(THING).results, ['doomed', 'named']);

    // Layout: classic.json, name/<shadow>.json, and no temporary file left behind.
    assert.ok(existsSync(join(root, 'shadows', THING, 'classic.json')));
    assert.deepEqual(readdirSync(join(root, 'shadows', THING, 'name')).sort(), ['doomed.json', 'named.json']);
  });

  test('a named shadow called "classic" does not touch the classic shadow', () => {
    const { store } = fixture();
    store.update(THING, '', { state: { reported: { who: 'classic shadow' } } });
    store.update(THING, 'classic', { state: { reported: { who: 'named classic' } } });
    assert.deepEqual(store.get(THING, '').state.reported, { who: 'classic shadow' });
    assert.deepEqual(store.get(THING, 'classic').state.reported, { who: 'named classic' });
    assert.deepEqual(store.list(THING).results, ['classic']);
  });

  test('a corrupt shadow file is ShadowStoreCorruptError, not a missing shadow', () => {
    const { store, root } = fixture();
    mkdirSync(join(root, 'shadows', THING, 'name'), { recursive: true });
    writeFileSync(join(root, 'shadows', THING, 'name', 'bad.json'), '{"state": ');
    rejects(() => store.get(THING, 'bad'), ShadowStoreCorruptError);
    rejects(() => store.update(THING, 'bad', { state: { reported: { a: 1 } } }), ShadowStoreCorruptError);
  });
});
