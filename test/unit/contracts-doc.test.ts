/**
 * docs/CONTRACTS.md promises a section with an example for every message. This test holds it to
 * that: every schema file has a section naming it, and each section's example passes its schema
 * (record data also passes the domain checks, and the envelope's checksum is right).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkEnvelope } from '../../components/shared/envelope';
import { checkRecord, DEFAULT_DOMAIN_LIMITS, RECORD_KINDS } from '../../components/shared/records';
import { compileValidator } from '../../components/shared/validation';
import { PROJECT_ROOT } from '../helpers/runtime-fixture';

const SCHEMA_DIR = join('components', 'shared', 'schemas');
const doc = readFileSync(join(PROJECT_ROOT, 'docs', 'CONTRACTS.md'), 'utf8');

/** Each "Schema: `<path>`" line, with the first ```json block after it. */
function documentedExamples(): Map<string, unknown> {
  const examples = new Map<string, unknown>();
  for (const match of doc.matchAll(/^Schema: `([^`]+)`\n[\s\S]*?```json\n([\s\S]*?)\n```/gm)) {
    examples.set(match[1], JSON.parse(match[2]));
  }
  return examples;
}

const examples = documentedExamples();
const schemaFiles = readdirSync(join(PROJECT_ROOT, SCHEMA_DIR)).filter((f) => f.endsWith('.schema.json'));

test('every schema file has a section with an example in docs/CONTRACTS.md', () => {
  const missing = schemaFiles.filter((f) => !examples.has(`${SCHEMA_DIR}/${f}`));
  assert.deepEqual(missing, []);
  assert.ok(schemaFiles.length >= 12, `found ${schemaFiles.length} schema files`);
});

test('every example passes its schema; record examples pass the domain checks too', () => {
  for (const [path, example] of examples) {
    const schema = JSON.parse(readFileSync(join(PROJECT_ROOT, path), 'utf8')) as object;
    const checked = compileValidator(schema)(structuredClone(example));
    assert.ok(checked.ok, `${path}: ${checked.ok ? '' : checked.reason}`);
    const stream = [...RECORD_KINDS.values()].find((k) => path.endsWith(`/${k.stream}.v1.schema.json`))?.stream;
    if (stream) {
      // Example times are from 2026-11-26; judge them as of a moment after that.
      const result = checkRecord(stream, example, DEFAULT_DOMAIN_LIMITS, Date.parse('2026-11-27T00:00:00Z'));
      assert.ok(result.ok, `${path}: ${result.ok ? '' : result.reason}`);
    }
  }
});

test('the envelope example is a real envelope: its checksum and sequence range check out', () => {
  const envelope = examples.get(`${SCHEMA_DIR}/envelope.v1.schema.json`);
  const checked = checkEnvelope(envelope);
  assert.ok(checked.ok, checked.ok ? '' : checked.reason);
});

test('every schema the table at the top names has a section, and every stream in records.ts is in the table', () => {
  for (const kind of RECORD_KINDS.values()) assert.match(doc, new RegExp(`\\| \`${kind.dataSchema.replace('.', '\\.').replace('/', '\\/')}\` \\|`), `${kind.dataSchema} in the table`);
});
