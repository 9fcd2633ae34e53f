/**
 * The hand-written interfaces in components/shared/envelope.ts and the types generated from the
 * JSON Schemas (components/shared/contracts.generated.ts) must describe the same messages. The
 * assertions below are checked by the compiler: a disagreement fails the build (tsc) and with it
 * `npm test`. Where a pair is known not to agree, the difference itself is pinned, so it can
 * neither grow unnoticed nor be fixed without this file being tightened to full equality.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { AckCommand, BackfillRequest, Envelope, EpochReport, LossReport, WireRecord } from '../../components/shared/envelope';
import type { AckV1, BackfillV1, EnvelopeV1, EpochV1, LossV1 } from '../../components/shared/contracts.generated';

const PROJECT_ROOT = join(__dirname, '..', '..', '..');

/** true only if A and B are the same type (not merely assignable: optional and extra keys count). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Expect<T extends true> = T;
type Not<T extends boolean> = T extends true ? false : true;
/** Each assignable to the other: weaker than Equal, used only where Equal cannot see through. */
type Mutual<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type AcceptsEmpty<T> = [] extends T ? true : false;

/**
 * The record type inside a generated envelope (the schema writes it inline). Taken from the first
 * tuple element: [number] would give a union of the head's and the rest's (identical) types, which
 * Equal does not treat as the same type as either.
 */
type WireRecordV1 = EnvelopeV1['records'][0];

// Pairs that agree in full.
export const ackAgrees: Expect<Equal<AckCommand, AckV1>> = true;
export const epochReportAgrees: Expect<Equal<EpochReport, EpochV1>> = true;

// Envelope: everything agrees (dataSchema included) except records.
export const envelopeAgreesExceptRecords: Expect<Equal<Omit<Envelope, 'records'>, Omit<EnvelopeV1, 'records'>>> = true;
export const envelopeDiffers: Expect<Not<Equal<Envelope, EnvelopeV1>>> = true;
// Difference 1: the schema has minItems 1, so the generated records is a non-empty tuple; the
// interface allows an empty array (buildEnvelope throws on one at run time instead).
export const envelopeRecordsHandWritten: Expect<Equal<Envelope['records'], WireRecord[]>> = true;
// (Mutual, not Equal: the generator writes the head and the rest element as two identical but
// separate inline types, which the compiler's identity check does not unify.)
export const envelopeRecordsGenerated: Expect<Mutual<EnvelopeV1['records'], [WireRecordV1, ...WireRecordV1[]]>> = true;
export const envelopeRecordsMayBeEmpty: Expect<AcceptsEmpty<Envelope['records']>> = true;
export const envelopeV1RecordsNeverEmpty: Expect<Not<AcceptsEmpty<EnvelopeV1['records']>>> = true;

// WireRecord: everything agrees except clock.
export const wireRecordAgreesExceptClock: Expect<Equal<Omit<WireRecord, 'clock'>, Omit<WireRecordV1, 'clock'>>> = true;
// Difference 2: the schema enumerates clock, the interface takes any string.
export const wireRecordClockHandWritten: Expect<Equal<WireRecord['clock'], string | undefined>> = true;
export const wireRecordClockGenerated: Expect<Equal<WireRecordV1['clock'], 'synced' | 'unsynced' | 'unknown' | undefined>> = true;

// Backfill and loss: everything agrees except ranges.
type Pair = [number, number];
export const backfillAgreesExceptRanges: Expect<Equal<Omit<BackfillRequest, 'ranges'>, Omit<BackfillV1, 'ranges'>>> = true;
export const lossAgreesExceptRanges: Expect<Equal<Omit<LossReport, 'ranges'>, Omit<LossV1, 'ranges'>>> = true;
// Difference 3: minItems 1 again; the schema's ranges are never empty, the interfaces' may be.
export const backfillRangesHandWritten: Expect<Equal<BackfillRequest['ranges'], Pair[]>> = true;
export const backfillRangesGenerated: Expect<Equal<BackfillV1['ranges'], [Pair, ...Pair[]]>> = true;
export const lossRangesHandWritten: Expect<Equal<LossReport['ranges'], Pair[]>> = true;
export const lossRangesGenerated: Expect<Equal<LossV1['ranges'], [Pair, ...Pair[]]>> = true;

/** Each hand-written interface, the generated type it is compared with, and that type's schema. */
const PAIRS = [
  { handWritten: 'Envelope', generated: 'EnvelopeV1', schema: 'envelope.v1.schema.json' },
  { handWritten: 'WireRecord', generated: 'EnvelopeV1', schema: 'envelope.v1.schema.json' },
  { handWritten: 'AckCommand', generated: 'AckV1', schema: 'ack.v1.schema.json' },
  { handWritten: 'BackfillRequest', generated: 'BackfillV1', schema: 'backfill.v1.schema.json' },
  { handWritten: 'LossReport', generated: 'LossV1', schema: 'loss.v1.schema.json' },
  { handWritten: 'EpochReport', generated: 'EpochV1', schema: 'epoch.v1.schema.json' },
];

test('every hand-written contract interface in envelope.ts is compared with the type generated from its schema', () => {
  const envelopeSource = readFileSync(join(PROJECT_ROOT, 'components', 'shared', 'envelope.ts'), 'utf8');
  const generatedSource = readFileSync(join(PROJECT_ROOT, 'components', 'shared', 'contracts.generated.ts'), 'utf8');
  const schemaFiles = readdirSync(join(PROJECT_ROOT, 'components', 'shared', 'schemas'));
  const declared = [...envelopeSource.matchAll(/^export interface (\w+)/gm)].map((m) => m[1]).sort();
  assert.deepEqual(declared, PAIRS.map((p) => p.handWritten).sort(), 'an interface was added to or removed from envelope.ts: add or remove its type assertions here');
  for (const pair of PAIRS) {
    assert.ok(generatedSource.includes(`export interface ${pair.generated} {`), `contracts.generated.ts declares ${pair.generated}`);
    assert.ok(schemaFiles.includes(pair.schema), `${pair.schema} exists`);
  }
});
