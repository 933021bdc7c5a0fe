// What both differential suites share: the seed (TSGI_DIFF_SEED, else the clock; printed so a
// failure replays with `TSGI_DIFF_SEED=<seed> npx vitest run test/differential`), the case
// counts (times TSGI_DIFF_SCALE), byte generators, and the fuzzer-style mutation of a stream.
import fc from "fast-check";

export const seed = Number(process.env.TSGI_DIFF_SEED ?? Date.now() % 0x7fffffff);
const scale = Number(process.env.TSGI_DIFF_SCALE ?? 1);

/** Prints the seed and the total, and returns fast-check's parameters for a property. */
export function differentialRuns(name: string, runs: Record<string, number>): (numRuns: number) => { seed: number; numRuns: number } {
  const total = Object.values(runs).reduce((a, b) => a + b, 0) * scale;
  console.log(`${name} differential: seed ${seed}, ${total} cases`);
  return (numRuns) => ({ seed, numRuns: numRuns * scale });
}

/** A byte string: one char per byte, as the decoders deliver params. */
export const byteString = (maxLength: number) => fc.string({ unit: fc.nat(255).map((c) => String.fromCharCode(c)), maxLength });
export const bytes = (maxLength: number) => fc.uint8Array({ maxLength });

/** One to four mutations for `mutate`. */
export const mutationsArb = fc.array(fc.record({ kind: fc.nat(3), pos: fc.nat(), value: fc.nat(255) }), { minLength: 1, maxLength: 4 });

/** Flips, inserts and deletes a few bytes, the way a fuzzer mutates a seed input. */
export function mutate(stream: Buffer, ops: { kind: number; pos: number; value: number }[]): Buffer {
  let out = Buffer.from(stream);
  for (const { kind, pos, value } of ops) {
    const p = out.length === 0 ? 0 : pos % (out.length + (kind === 1 ? 1 : 0));
    if (kind === 0 && out.length > 0) out[p] = out[p]! ^ (value || 1);
    else if (kind === 1) out = Buffer.concat([out.subarray(0, p), Buffer.from([value]), out.subarray(p)]);
    else if (kind === 2 && out.length > 0) out = Buffer.concat([out.subarray(0, p), out.subarray(p + 1)]);
    else if (kind === 3 && out.length > 0) out[p] = value;
  }
  return out;
}
