// Backward of the CPU linear layer y (t, n) = x (t, k) · Wᵀ + b: dx = dy · W, dW += dyᵀ · x,
// db += Σ_t dy. The two products are most of a training step's time, so both run on the threaded,
// register-tiled linear() of matmul.ts, whose kernels reduce over contiguous rows of both operands:
// dx (t, k) = dy (t, n) · (Wᵀ (k, n))ᵀ and dW (n, k) = dyᵀ (n, t) · (xᵀ (k, t))ᵀ, after a
// cache-blocked transpose of W, dy and x (O(t·(n + k) + n·k) copies against O(t·n·k) work).
// The transposes go to grow-only SharedArrayBuffer scratches (the worker pool reads its right-hand
// operand from a SAB, and registers each one once); dW's product lands in a scratch and is added to
// the gradient, so sums are carried in doubles per dot product as in the forward.

import { linear } from './matmul.ts';
import { sharedF32 } from './threads.ts';

/** Side of the square blocks of the transpose: 32 × 32 floats of source and of destination. */
const BLOCK = 32;

const scratch: Float32Array[] = [sharedF32(0), sharedF32(0), sharedF32(0)];

/** The scratch `slot` with room for `length` values (grown by doubling, never shrunk). */
function room(slot: number, length: number): Float32Array {
  if (scratch[slot].length < length) scratch[slot] = sharedF32(Math.max(length, 2 * scratch[slot].length));
  return scratch[slot].subarray(0, length);
}

/** dst (cols, rows) = srcᵀ for src (rows, cols), row-major, in BLOCK × BLOCK tiles. */
export function transpose(dst: Float32Array, src: Float32Array, rows: number, cols: number): void {
  for (let r0 = 0; r0 < rows; r0 += BLOCK) {
    const r1 = Math.min(rows, r0 + BLOCK);
    for (let c0 = 0; c0 < cols; c0 += BLOCK) {
      const c1 = Math.min(cols, c0 + BLOCK);
      for (let c = c0; c < c1; c++) {
        for (let r = r0; r < r1; r++) dst[c * rows + r] = src[r * cols + c];
      }
    }
  }
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
  const wT = room(0, k * n); // (k, n)
  transpose(wT, w, n, k);
  linear(dx, dy, wT, null, t, k, n);
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
  const dyT = room(0, n * t); // (n, t)
  const xT = room(1, k * t); // (k, t)
  const product = room(2, n * k); // (n, k)
  transpose(dyT, dy, t, n);
  transpose(xT, x, t, k);
  linear(product, dyT, xT, null, n, k, t);
  for (let i = 0; i < n * k; i++) dW[i] += product[i];
  if (db === null) return;
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (let i = j * t; i < (j + 1) * t; i++) s += dyT[i];
    db[j] += s;
  }
}
