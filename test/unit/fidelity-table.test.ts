/**
 * runtime/README.md "Fidelity to the nucleus" names, per row, the tests that show the runtime's
 * behaviour. A renamed or deleted test would leave the table claiming something nothing checks;
 * this test reads the table and the test sources and fails on every name it cannot find.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../helpers/runtime-fixture';

interface Citation {
  file: string;
  name: string;
  raw: boolean;
}

interface Row {
  behaviour: string;
  citations: Citation[];
}

function fidelityRows(readme: string): Row[] {
  const start = readme.indexOf('## Fidelity to the nucleus');
  const end = readme.indexOf('\n## ', start + 1);
  assert.ok(start >= 0 && end > start, 'runtime/README.md has a "Fidelity to the nucleus" section');
  const rows: Row[] = [];
  for (const line of readme.slice(start, end).split('\n')) {
    if (!line.startsWith('| **')) continue;
    const cells = line.split(' | ');
    const behaviour = cells[0].replace(/^\| /, '');
    const testCell = cells[cells.length - 1];
    const citations: Citation[] = [];
    let file: string | undefined;
    // `i/x` or `u/x` names a file; each quoted name after it is a test (or describe) in that file.
    for (const match of testCell.matchAll(/\b([iu])\/([\w-]+)|“([^”]+)”( \(\*raw\*)?/g)) {
      if (match[1]) file = join('test', match[1] === 'i' ? 'integration' : 'unit', `${match[2]}.test.ts`);
      else if (file) citations.push({ file, name: match[3], raw: match[4] !== undefined });
    }
    rows.push({ behaviour, citations });
  }
  return rows;
}

const rows = fidelityRows(readFileSync(join(PROJECT_ROOT, 'runtime', 'README.md'), 'utf8'));

test('the fidelity table has its 44 rows: one per behaviour issue 4 lists, and the IoT connection\'s pacing', () => {
  assert.equal(rows.length, 44, rows.map((r) => r.behaviour).join('\n'));
});

test('every test the fidelity table names exists under that name in that file', () => {
  const missing: string[] = [];
  for (const row of rows) {
    for (const citation of row.citations) {
      const path = join(PROJECT_ROOT, citation.file);
      const source = existsSync(path) ? readFileSync(path, 'utf8') : '';
      // A test name is a string literal in the source, in any of the three quote styles, with
      // its own quote character escaped.
      const quoted = ["'", '"', '`'].some((q) => source.includes(`${q}${citation.name.replaceAll(q, `\\${q}`)}${q}`));
      if (!quoted) missing.push(`${row.behaviour}: ${citation.file} “${citation.name}”`);
    }
  }
  assert.deepEqual(missing, [], 'names in runtime/README.md with no such test');
});

test('every row names at least one integration test that goes through the SDK client (not a raw-frame test)', () => {
  const without = rows.filter((row) => !row.citations.some((c) => c.file.includes('integration') && !c.raw)).map((row) => row.behaviour);
  assert.deepEqual(without, []);
});
