// linear() against a naive float64 triple loop on fresh random inputs: many shapes (1s, sizes off
// the kernels' 1×8 / 2×4 tiles and 8-column chunks, both sides of the direct/packed switch at
// m = 12, k = 0, m = 0), with and without bias, on subarray views at odd offsets, single-threaded
// (plain arrays, or MAMBA_TS_THREADS=1) and on the worker pool (SharedArrayBuffer-backed arrays;
// 3 threads so that two workers share the chunks). Each test prints the seed and the largest
// max |diff| / max |ref|. The file exiting at all shows that the idle workers don't hold the process.

import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { linear } from '../../src/backends/cpu/matmul.ts';
import { sharedF32, workerCount } from '../../src/backends/cpu/threads.ts';
import { normal, type Rand, relDiff, rngFor } from '../helpers/random.ts';

const TOL = 1e-6;
process.env['MAMBA_TS_THREADS'] = '3';

type Alloc = (length: number) => Float32Array;
const plain: Alloc = (length) => new Float32Array(length);

/** A random array of `length` at element offset `off` inside a larger one (canary-filled around). */
function view(alloc: Alloc, rand: Rand, length: number, off: number): Float32Array {
  const whole = alloc(length + off + 3).fill(7);
  const v = whole.subarray(off, off + length);
  for (let i = 0; i < length; i++) v[i] = normal(rand);
  return v;
}

function reference(
  x: Float32Array,
  w: Float32Array,
  bias: Float32Array | null,
  m: number,
  n: number,
  k: number,
) {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = bias === null ? 0 : bias[j];
      for (let p = 0; p < k; p++) s += x[i * k + p] * w[j * k + p];
      out[i * n + j] = s;
    }
  }
  return out;
}

/** Runs each [m, n, k] with and without bias, at offset 0 and odd offsets; prints the worst diff. */
function checkShapes(t: TestContext, alloc: Alloc, shapes: number[][]): void {
  const rand = rngFor(t);
  let worst = 0;
  for (const [m, n, k] of shapes) {
    for (const [withBias, off] of [
      [false, 0],
      [true, 0],
      [true, 5],
      [false, 3],
    ] as const) {
      const x = view(alloc, rand, m * k, off);
      const w = view(alloc, rand, n * k, off + 2);
      const bias = withBias ? view(alloc, rand, n, off + 1) : null;
      const out = view(alloc, rand, m * n, off);
      linear(out, x, w, bias, m, n, k);
      const diff = relDiff(Float64Array.from(out), reference(x, w, bias, m, n, k));
      const what = `m=${m} n=${n} k=${k} bias=${withBias} offset=${off}`;
      assert.ok(diff < TOL, `${what}: max rel diff ${diff}`);
      const whole = new Float32Array(out.buffer);
      const at = out.byteOffset >> 2;
      for (const i of [at - 1, at + m * n])
        if (i >= 0) assert.equal(whole[i], 7, `${what}: wrote outside out`);
      worst = Math.max(worst, diff);
    }
  }
  t.diagnostic(`max |diff| / max |ref| = ${worst.toExponential(2)}`);
}

const SMALL = [
  [1, 1, 1],
  [1, 7, 5],
  [1, 9, 16],
  [2, 3, 1],
  [3, 17, 33],
  [4, 4, 4],
  [5, 23, 31],
  [6, 2, 7],
  [7, 80, 48],
  [8, 16, 3],
  [11, 9, 20],
  [12, 13, 17],
  [13, 37, 29],
  [13, 5, 0],
  [1, 80, 1536],
  [33, 100, 65],
];
// Large enough (≥ 2^17 multiply-adds) for the worker pool; odd n, m and k throughout.
const LARGE = [
  [1, 3072, 768],
  [1, 1001, 131],
  [2, 517, 300],
  [3, 80, 1536],
  [4, 257, 129],
  [8, 1536, 48],
  [37, 515, 301],
  [130, 203, 77],
];

test('linear = float64 reference, plain arrays (single-threaded)', (t) => {
  checkShapes(t, plain, [...SMALL, ...LARGE]);
});

test('linear = float64 reference, shared arrays on the worker pool', (t) => {
  checkShapes(t, sharedF32, [...SMALL, ...LARGE]);
  assert.equal(workerCount(), 2, 'the pool should have started two workers');
});

test('linear = float64 reference, shared arrays with MAMBA_TS_THREADS=1', (t) => {
  process.env['MAMBA_TS_THREADS'] = '1';
  try {
    checkShapes(t, sharedF32, LARGE);
  } finally {
    process.env['MAMBA_TS_THREADS'] = '3';
  }
});

test('linear: k = 0 gives the bias, m = 0 and n = 0 write nothing, short arrays throw', () => {
  const out = new Float32Array(6).fill(9);
  linear(out, new Float32Array(0), new Float32Array(0), Float32Array.of(1, 2, 3), 2, 3, 0);
  assert.deepEqual([...out], [1, 2, 3, 1, 2, 3]);
  linear(out.fill(9), new Float32Array(0), new Float32Array(0), null, 2, 3, 0);
  assert.deepEqual([...out], [0, 0, 0, 0, 0, 0]);
  linear(out.fill(9), new Float32Array(0), new Float32Array(12), null, 0, 3, 4);
  linear(out, new Float32Array(8), new Float32Array(0), null, 2, 0, 4);
  assert.deepEqual([...out], [9, 9, 9, 9, 9, 9]);
  assert.throws(() => linear(out, new Float32Array(7), new Float32Array(12), null, 2, 3, 4), RangeError);
});
