// Backward of the CPU linear layer y (t, n) = x (t, k) · Wᵀ + b: dx = dy · W, dW += dyᵀ · x,
// db += Σ_t dy. The two products are most of a training step's time, so both run on the threaded,
// register-tiled linear() of matmul.ts, whose kernels reduce over contiguous rows of both operands:
// dx (t, k) = dy (t, n) · (Wᵀ (k, n))ᵀ and dW (n, k) = dyᵀ (n, t) · (xᵀ (k, t))ᵀ, after cache-blocked
// transposes (O(t·(n + k) + n·k) copies against O(t·n·k) work), which the worker pool shares out too
// (run alone they cost ~25% of the LM head's backward on 16 threads).
// Blocks. Each product runs in blocks of at most T_BLOCK tokens and N_BLOCK outputs, so that the
// scratches and the per-thread packed copies of linear() stay bounded when t or n is large (the LM
// head has n = vocab): dW sums its token blocks, dx its output blocks (the reduction of dy · W),
// adding each block's float32 product (sums inside a block carried in doubles, as in the forward).
// Scratches are grow-only SharedArrayBuffers (the worker pool reads its right-hand operand from a
// SAB and registers each one once).

import { linear } from './matmul.ts';
import { parallelTranspose, sharedF32 } from './threads.ts';
import { transposeCols } from './transpose.ts';

/** Tokens and outputs per block of the products (packed left operand ≤ 32 MiB of doubles). */
const T_BLOCK = 2048;
const N_BLOCK = 2048;

const scratch: Float32Array[] = [sharedF32(0), sharedF32(0), sharedF32(0)];

/** The scratch `slot` with room for `length` values (grown by doubling, never shrunk). */
function room(slot: number, length: number): Float32Array {
  if (scratch[slot].length < length) scratch[slot] = sharedF32(Math.max(length, 2 * scratch[slot].length));
  return scratch[slot].subarray(0, length);
}

const none = () => -1;

/** dst (c1 − c0, r1 − r0) = src[r0:r1, c0:c1]ᵀ for a row-major src with `cols` columns (or += when `add`). */
function transpose(
  dst: Float32Array,
  src: Float32Array,
  cols: number,
  r0: number,
  r1: number,
  c0: number,
  c1: number,
  add = false,
) {
  if (!parallelTranspose(dst, src, cols, r0, r1, c0, c1, add, transposeCols)) {
    transposeCols(dst, 0, src, 0, cols, r0, r1, c0, c1, add, c1 - c0, 0, none);
  }
}

/** src[r0:r1, c0:c1] as a dense (r1 − r0, c1 − c0) array: a view when it spans all columns. */
function block(
  slot: number,
  src: Float32Array,
  cols: number,
  r0: number,
  r1: number,
  c0: number,
  c1: number,
) {
  if (c0 === 0 && c1 === cols) return src.subarray(r0 * cols, r1 * cols);
  const width = c1 - c0;
  const dst = room(slot, (r1 - r0) * width);
  for (let r = r0; r < r1; r++) dst.set(src.subarray(r * cols + c0, r * cols + c1), (r - r0) * width);
  return dst;
}

/**
 * into (r, c) = a (r, s) · b (c, s)ᵀ, or += when `add`. linear() copies its left operand whole into
 * every thread and shares out the columns, so the operand with fewer rows goes left: for r > c it
 * computes intoᵀ = b · aᵀ and transposes that into place (threaded when the arrays are shared).
 */
function product(
  into: Float32Array,
  a: Float32Array,
  b: Float32Array,
  r: number,
  c: number,
  s: number,
  add: boolean,
) {
  if (r > c) {
    const swapped = room(2, c * r); // (c, r)
    linear(swapped, b, a, null, c, r, s, true); // a: dy's rows, fresh
    transpose(into, swapped, r, 0, c, 0, r, add);
  } else if (add) {
    const sum = room(2, r * c); // (r, c)
    linear(sum, a, b, null, r, c, s);
    for (let i = 0; i < r * c; i++) into[i] += sum[i];
  } else linear(into, a, b, null, r, c, s);
}

/** dx (t, k) = dy (t, n) · w (n, k). */
export function linearDx(
  dx: Float32Array,
  dy: Float32Array,
  w: Float32Array,
  t: number,
  n: number,
  k: number,
): void {
  if (n === 0) dx.fill(0, 0, t * k);
  for (let j0 = 0; j0 < n; j0 += N_BLOCK) {
    const j1 = Math.min(n, j0 + N_BLOCK);
    const wT = room(0, k * (j1 - j0)); // (k, j1 − j0)
    transpose(wT, w, k, j0, j1, 0, k);
    for (let t0 = 0; t0 < t; t0 += T_BLOCK) {
      const t1 = Math.min(t, t0 + T_BLOCK);
      const dyB = block(1, dy, n, t0, t1, j0, j1); // (t1 − t0, j1 − j0)
      product(dx.subarray(t0 * k, t1 * k), dyB, wT, t1 - t0, k, j1 - j0, j0 > 0);
    }
  }
}

/** dW (n, k) += dyᵀ · x and, when given, db (n) += Σ_t dy, for dy (t, n) and x (t, k). */
export function linearDw(
  dW: Float32Array,
  db: Float32Array | null,
  dy: Float32Array,
  x: Float32Array,
  t: number,
  n: number,
  k: number,
): void {
  for (let t0 = 0; t0 < t; t0 += T_BLOCK) {
    const t1 = Math.min(t, t0 + T_BLOCK);
    const tb = t1 - t0;
    const xT = room(0, k * tb); // (k, tb)
    transpose(xT, x, k, t0, t1, 0, k);
    for (let j0 = 0; j0 < n; j0 += N_BLOCK) {
      const j1 = Math.min(n, j0 + N_BLOCK);
      const dyT = room(1, (j1 - j0) * tb); // (j1 − j0, tb)
      transpose(dyT, dy, n, t0, t1, j0, j1);
      product(dW.subarray(j0 * k, j1 * k), dyT, xT, j1 - j0, k, tb, true);
      if (db === null) continue;
      for (let j = j0; j < j1; j++) {
        let s = 0;
        for (let i = (j - j0) * tb; i < (j - j0 + 1) * tb; i++) s += dyT[i];
        db[j] += s;
      }
    }
  }
}
