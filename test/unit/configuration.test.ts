import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigTree, DEFAULT_VALUE_TIMESTAMP, pointerToPath, resolveConfiguration, willChange, type ConfigPath } from '../../runtime/configuration';
import { DEFAULT_SETTLE_MS, DEFAULT_UPDATE_POLICY_TIMEOUT_SEC, DEFAULT_VALIDATION_TIMEOUT_SEC, formatCreatedOn, parseDeploymentRequest } from '../../runtime/deployment';

const keys = (changes: ConfigPath[]) => changes.map((p) => p.join('/')).sort();

describe('configuration tree with per-key timestamps', () => {
  test('a newer write replaces a value, an older one is ignored, and a container is as new as its newest key', () => {
    const tree = new ConfigTree({ a: { b: 1, c: 2 } }, 100);
    const changes: ConfigPath[] = [];
    tree.update(['a'], { b: 10 }, 'MERGE', 200, changes);
    assert.deepEqual(keys(changes), ['a/b']);
    assert.equal(tree.modtime(['a', 'b']), 200);
    assert.equal(tree.modtime(['a', 'c']), 100);
    assert.equal(tree.modtime(['a']), 200, 'container time is its newest child');
    const stale: ConfigPath[] = [];
    tree.update(['a'], { b: 99, c: 3 }, 'MERGE', 150, stale);
    assert.deepEqual(tree.toJSON(), { a: { b: 10, c: 3 } }, 'b is newer than the write and keeps its value; c is older and takes it');
    assert.deepEqual(keys(stale), ['a/c']);
  });

  test('rewriting the same value moves its time forward without reporting a change', () => {
    const tree = new ConfigTree({ a: 1 }, 100);
    const changes: ConfigPath[] = [];
    tree.update([], { a: 1 }, 'MERGE', 300, changes);
    assert.deepEqual(changes, []);
    assert.equal(tree.modtime(['a']), 300);
  });

  test('REPLACE removes keys the new map lacks; lists are values, replaced whole', () => {
    const tree = new ConfigTree({ keep: { x: 1 }, drop: 2, list: [1, 2, 3] }, 100);
    const changes: ConfigPath[] = [];
    tree.update([], { keep: { x: 1 }, list: [4] }, 'REPLACE', 200, changes);
    assert.deepEqual(tree.toJSON(), { keep: { x: 1 }, list: [4] });
    assert.deepEqual(keys(changes), ['drop', 'list']);
  });

  test('an object written over a leaf replaces it, and the reverse', () => {
    const tree = new ConfigTree({ a: 1, b: { c: 1 } }, 100);
    const changes: ConfigPath[] = [];
    tree.update([], { a: { nested: true }, b: 'flat' }, 'MERGE', 200, changes);
    assert.deepEqual(tree.toJSON(), { a: { nested: true }, b: 'flat' });
    assert.ok(keys(changes).includes('a/nested') && keys(changes).includes('b'));
  });

  test('a snapshot restores values and timestamps and reports what differed', () => {
    const tree = new ConfigTree({ a: 1, b: { c: 2 } }, 100);
    const snapshot = tree.snapshot();
    tree.update([], { a: 5, d: 1 }, 'MERGE', 200, []);
    const changes: ConfigPath[] = [];
    tree.restore(snapshot, changes);
    assert.deepEqual(tree.toJSON(), { a: 1, b: { c: 2 } });
    assert.equal(tree.modtime(['a']), 100);
    assert.deepEqual(keys(changes), ['a', 'd']);
  });

  test('JSON pointers become key paths (RFC 6901 escapes)', () => {
    assert.deepEqual(pointerToPath(''), []);
    assert.deepEqual(pointerToPath('/a~1b/c~0d'), ['a/b', 'c~d']);
    assert.throws(() => pointerToPath('a/b'), /JSON pointer/);
  });
});

describe('deployment configuration: RESET, then defaults, then MERGE (KernelConfigResolver)', () => {
  const defaults = { rate: 1, nested: { a: 1, b: 2 }, list: [1, 2] };
  function running(): ConfigTree {
    const tree = new ConfigTree({}, DEFAULT_VALUE_TIMESTAMP);
    tree.update([], defaults, 'MERGE', DEFAULT_VALUE_TIMESTAMP, []);
    tree.update([], { rate: 7, nested: { a: 9, extra: true }, custom: 'x' }, 'MERGE', 1000, []);
    return tree;
  }

  test('MERGE only: existing values stay unless named; new keys are added', () => {
    const proposed = resolveConfiguration(running(), defaults, { MERGE: { nested: { b: 20 }, added: null } }, 2000);
    assert.deepEqual(proposed.toJSON(), { rate: 7, nested: { a: 9, b: 20, extra: true }, list: [1, 2], custom: 'x', added: null });
  });

  test('RESET puts a key back to its default, or removes a key that has none', () => {
    const proposed = resolveConfiguration(running(), defaults, { RESET: ['/rate', '/nested/extra', '/custom'] }, 2000);
    assert.deepEqual(proposed.toJSON(), { rate: 1, nested: { a: 9, b: 2 }, list: [1, 2] });
  });

  test('RESET runs before MERGE, so a reset key can be merged again in the same deployment', () => {
    const proposed = resolveConfiguration(running(), defaults, { RESET: ['/nested'], MERGE: { nested: { b: 5 } } }, 2000);
    assert.deepEqual(proposed.toJSON().nested, { a: 1, b: 5 });
  });

  test('RESET [""] resets the whole configuration to the defaults', () => {
    const proposed = resolveConfiguration(running(), defaults, { RESET: [''] }, 2000);
    assert.deepEqual(proposed.toJSON(), defaults);
  });

  test('a RESET into a list is skipped with a warning: only whole lists can be reset', () => {
    const warnings: string[] = [];
    const proposed = resolveConfiguration(running(), defaults, { RESET: ['/list/0'] }, 2000, warnings);
    assert.deepEqual(proposed.toJSON().list, [1, 2]);
    assert.equal(warnings.length, 1);
  });

  test('new defaults of a new version do not overwrite values set by a deployment; they replace old defaults and fill missing keys', () => {
    const proposed = resolveConfiguration(running(), { rate: 100, nested: { b: 3 }, fresh: 'default' }, undefined, 2000);
    assert.equal(proposed.toJSON().rate, 7, 'set by an earlier MERGE: kept');
    assert.deepEqual(proposed.toJSON().nested, { a: 9, b: 3, extra: true }, 'b was still the old default (timestamp 1): it takes the new one');
    assert.equal(proposed.toJSON().fresh, 'default');
  });

  test('a new component gets its defaults plus MERGE', () => {
    const proposed = resolveConfiguration(undefined, defaults, { MERGE: { rate: 3 } }, 2000);
    assert.deepEqual(proposed.toJSON(), { ...defaults, rate: 3 });
  });

  test('willChange: only a newer, different configuration counts (DynamicComponentConfigurationValidator)', () => {
    const tree = running();
    assert.equal(willChange(tree, tree.toJSON(), 5000), false);
    assert.equal(willChange(tree, { ...tree.toJSON(), rate: 8 }, 5000), true);
    assert.equal(willChange(tree, { ...tree.toJSON(), rate: 8 }, 500), false, 'older than the running configuration');
  });
});

describe('deployment defaults and request checks', () => {
  test('defaults are the nucleus defaults', () => {
    assert.equal(DEFAULT_UPDATE_POLICY_TIMEOUT_SEC, 60);
    assert.equal(DEFAULT_VALIDATION_TIMEOUT_SEC, 20);
    assert.ok(DEFAULT_SETTLE_MS > 0);
  });

  test('createdOn is formatted as the Greengrass CLI formats it, in UTC', () => {
    assert.equal(formatCreatedOn(Date.UTC(2026, 10, 26, 9, 5, 7)), '26-11-2026 09:05:07 UTC');
  });

  test('malformed CreateLocalDeployment requests are refused with the reason', () => {
    assert.throws(() => parseDeploymentRequest({ groupName: 'a:b' }), /colon/);
    assert.throws(() => parseDeploymentRequest({ componentToConfiguration: { X: { MERGE: [] } } }), /MERGE must be an object/);
    assert.throws(() => parseDeploymentRequest({ componentToConfiguration: { X: { RESET: ['a'] } } }), /JSON pointers/);
    assert.throws(() => parseDeploymentRequest({ componentToConfiguration: { X: { UPDATE: {} } } }), /only MERGE and RESET/);
    assert.throws(() => parseDeploymentRequest({ recipeDirectoryPath: '/no/such/dir' }), /not a directory/);
    assert.throws(() => parseDeploymentRequest({ failureHandlingPolicy: 'RETRY' }), /ROLLBACK or DO_NOTHING/);
    assert.deepEqual(parseDeploymentRequest({ rootComponentVersionsToAdd: { A: '1.0.0' }, componentToConfiguration: { A: { RESET: [''] } } }), {
      rootComponentVersionsToAdd: { A: '1.0.0' },
      componentToConfiguration: { A: { MERGE: undefined, RESET: [''] } },
    });
  });
});
