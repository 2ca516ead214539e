// Test helpers for the reference oracles and for kernels tested against them: a seeded random
// source (fresh seed each run, SEED=<n> replays one), relative comparisons that record and print
// the largest difference, and slicing along the length axis.

import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import type { TestContext } from 'node:test';

export const SEED = process.env.SEED ? Number(process.env.SEED) : randomInt(2 ** 31);
export const TOL = 1e-12; // relative to the largest magnitude of the expected array
export const WRONG = 1e-4; // a wrong variant must differ by more than this (≫ TOL)

export type Rand = () => number;

/** mulberry32, seeded from SEED and the test's name so that each test replays alone. */
export function rngFor(t: TestContext): Rand {
  let s = SEED;
  for (const ch of t.name) s = Math.imul(s ^ ch.charCodeAt(0), 0x9e3779b1) >>> 0;
  t.diagnostic(`SEED=${SEED}`);
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let r = Math.imul(s ^ (s >>> 15), 1 | s);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

export const uniform = (rand: Rand, lo: number, hi: number) => lo + (hi - lo) * rand();

export function normal(rand: Rand): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

export function array(len: number, draw: () => number): Float64Array {
  return Float64Array.from({ length: len }, draw);
}

/** max |got − want| / max |want| (absolute when want is all zeros). */
export function relDiff(got: ArrayLike<number>, want: ArrayLike<number>): number {
  assert.equal(got.length, want.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    assert.ok(Number.isFinite(got[i]), `non-finite value at ${i}`);
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

/** Records comparisons of one test and reports the largest difference seen. */
export function tracker(t: TestContext) {
  let worst = 0;
  let worstLabel = '';
  let wrongest = Number.POSITIVE_INFINITY;
  t.after(() => {
    if (worstLabel) t.diagnostic(`largest relative difference ${worst.toExponential(2)} (${worstLabel})`);
    if (wrongest < Number.POSITIVE_INFINITY)
      t.diagnostic(`smallest wrong-variant miss ${wrongest.toExponential(2)}`);
  });
  return {
    close(label: string, got: Float64Array, want: Float64Array): void {
      const d = relDiff(got, want);
      if (d >= worst) [worst, worstLabel] = [d, label];
      assert.ok(d <= TOL, `${label}: relative difference ${d} > ${TOL} (SEED=${SEED})`);
    },
    far(label: string, got: Float64Array, want: Float64Array): void {
      const d = relDiff(got, want);
      wrongest = Math.min(wrongest, d);
      assert.ok(d > WRONG, `${label}: wrong variant only ${d} away (SEED=${SEED})`);
    },
  };
}

/** Rows [t0, t1) along l of a (b, l, inner) array, as a (b, t1 − t0, inner) array. */
export function sliceL(arr: Float64Array, b: number, l: number, t0: number, t1: number): Float64Array {
  const inner = arr.length / (b * l);
  const out = new Float64Array(b * (t1 - t0) * inner); // (b, t1 − t0, inner)
  for (let bi = 0; bi < b; bi++)
    out.set(arr.subarray((bi * l + t0) * inner, (bi * l + t1) * inner), bi * (t1 - t0) * inner);
  return out;
}
