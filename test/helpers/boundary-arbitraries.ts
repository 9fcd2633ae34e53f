/**
 * fast-check generators for the boundary tests: records that honour their data contract, and
 * inputs that do not (malformed JSON, wrong types, huge strings, deep nesting, NaN and Infinity).
 * Each bad generator is built to be invalid by construction, so a test can expect every one of
 * them to be refused and every good one to pass.
 */
import fc from 'fast-check';
import type { SampledRecord } from '../../components/sensor-acquisition/simulator';

const QUALITY = fc.record({
  samples: fc.integer({ min: 1, max: 100_000 }),
  missingSamples: fc.integer({ min: 0, max: 1000 }),
  outOfRangeSamples: fc.integer({ min: 0, max: 1000 }),
  stuckSignals: fc.uniqueArray(fc.constantFrom('positionM', 'velocityMps', 'doorOpening', 'currentA', 'temperatureC', 'vibrationMmS'), { maxLength: 3 }),
});

const finite = (min: number, max: number) => fc.double({ min, max, noNaN: true, noDefaultInfinity: true });

/** A wall-clock time in the last day, so it is neither ancient-looking nor in the future. */
function recentTime(nowMs: number) {
  return fc.integer({ min: nowMs - 86_400_000, max: nowMs - 600_000 });
}

export function validMotor(): fc.Arbitrary<SampledRecord> {
  return fc
    .record({ carState: fc.constantFrom('idle', 'moving', 'door'), currentA: finite(0, 500), temperatureC: finite(-40, 200), vibrationMmS: finite(0, 200) })
    .map((data) => ({ stream: 'motor', priority: 1, data }));
}

export function validRun(nowMs: number, ratedSpeedMps: number): fc.Arbitrary<SampledRecord> {
  return fc
    .record({
      fromFloor: fc.integer({ min: 0, max: 40 }),
      hop: fc.integer({ min: 1, max: 20 }),
      startTime: recentTime(nowMs),
      durationMs: fc.integer({ min: 500, max: 120_000 }),
      peakSpeedMps: finite(0, ratedSpeedMps),
      peakAccelMps2: finite(0, 2),
      peakJerkMps3: finite(0, 5),
      levelingErrorMm: finite(-20, 20),
      quality: QUALITY,
    })
    .map(({ fromFloor, hop, startTime, durationMs, ...rest }) => ({
      stream: 'run',
      priority: 2,
      data: {
        fromFloor,
        toFloor: fromFloor + hop,
        direction: 'up',
        startTime,
        stopTime: startTime + durationMs,
        durationMs,
        distanceM: hop * 3.2,
        ...rest,
      },
    }));
}

export function validDoorCycle(nowMs: number): fc.Arbitrary<SampledRecord> {
  return fc
    .record({
      floor: fc.integer({ min: 0, max: 40 }),
      openStartTime: recentTime(nowMs),
      openingMs: fc.integer({ min: 500, max: 10_000 }),
      dwellMs: fc.integer({ min: 0, max: 60_000 }),
      closingMs: fc.integer({ min: 500, max: 30_000 }),
      reversals: fc.integer({ min: 0, max: 10 }),
      obstructions: fc.integer({ min: 0, max: 10 }),
      quality: QUALITY,
    })
    .map(({ openStartTime, openingMs, dwellMs, closingMs, ...rest }) => ({
      stream: 'door-cycle',
      priority: 2,
      data: {
        openStartTime,
        closeEndTime: openStartTime + openingMs + dwellMs + closingMs,
        openingMs,
        dwellMs,
        closingMs,
        totalMs: openingMs + dwellMs + closingMs,
        doorSpeedMps: Math.round((0.45 / (openingMs / 1000)) * 1000) / 1000,
        ...rest,
      },
    }));
}

export function validRecord(nowMs: number, ratedSpeedMps: number): fc.Arbitrary<SampledRecord> {
  return fc.oneof(validMotor(), validRun(nowMs, ratedSpeedMps), validDoorCycle(nowMs));
}

/** A string of n characters, built once per size: big enough to be "huge", cheap to repeat. */
export function hugeString(): fc.Arbitrary<string> {
  return fc.constantFrom(5_000, 200_000).map((n) => 'x'.repeat(n));
}

/** Objects or arrays nested 50 to 3000 levels deep. */
export function deeplyNested(): fc.Arbitrary<unknown> {
  return fc.tuple(fc.integer({ min: 50, max: 3000 }), fc.boolean()).map(([depth, arrays]) => {
    let value: unknown = arrays ? [1] : { leaf: 1 };
    for (let i = 0; i < depth; i += 1) value = arrays ? [value] : { a: value };
    return value;
  });
}

/** Values a bad sensor or a bad driver produces where a number is due. */
export function badNumber(): fc.Arbitrary<unknown> {
  return fc.oneof(
    fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, null, undefined, '12.5', true, {}, []),
    hugeString(),
    deeplyNested(),
  );
}

/** A valid record with one field broken: a bad value in a field, an unknown field, or a field removed. */
export function brokenRecord(nowMs: number, ratedSpeedMps: number): fc.Arbitrary<SampledRecord> {
  return fc
    .tuple(validRecord(nowMs, ratedSpeedMps), fc.nat(), fc.constantFrom('bad-value', 'extra-field', 'missing-field'), badNumber())
    .map(([record, pick, how, bad]) => {
      const keys = Object.keys(record.data).filter((k) => k !== 'quality' && k !== 'carState' && k !== 'direction');
      const key = keys[pick % keys.length];
      const data: Record<string, unknown> = { ...record.data };
      if (how === 'bad-value') data[key] = bad;
      else if (how === 'extra-field') data[`unexpected_${key}`] = bad ?? 1;
      else delete data[key];
      return { ...record, data };
    });
}

/** Whole records no contract can accept: unknown or non-string streams, data that is not an object. */
export function garbageRecord(): fc.Arbitrary<SampledRecord> {
  return fc
    .record({
      stream: fc.oneof(
        fc.string({ maxLength: 300 }).filter((s) => !['motor', 'run', 'door-cycle', 'raw-sample', 'quarantine'].includes(s)),
        // Names that an object used as a counter map already has: they must count like any other.
        fc.constantFrom('toString', 'constructor', '__proto__', 'hasOwnProperty', 'valueOf'),
        fc.anything(),
        hugeString(),
      ),
      priority: fc.anything(),
      data: fc.oneof(fc.anything(), deeplyNested(), hugeString()),
    })
    .map((record) => record as unknown as SampledRecord);
}

/** Payload bytes that are not a valid message of any contract: broken JSON, wrong shapes, huge, deep. */
export function badPayload(): fc.Arbitrary<Buffer> {
  return fc
    .oneof(
      fc.string({ maxLength: 200 }).map((s) => `{${s}`),
      fc.jsonValue().map((v) => JSON.stringify(v).slice(0, -1) || '{'),
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc.anything().map((v) => JSON.stringify({ schema: v, stream: v, epoch: v, watermark: v, ranges: v })),
      hugeString().map((s) => JSON.stringify({ schema: 'elevator.ack/1', stream: s })),
      deeplyNested().map((v) => JSON.stringify(v)),
      fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes).toString('latin1')),
    )
    .map((text) => Buffer.from(text, 'latin1'));
}
