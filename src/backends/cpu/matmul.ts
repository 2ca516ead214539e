// Linear layer for the CPU backend: out (m, n) = x (m, k) · wᵀ + bias, with w (n, k) row-major as
// PyTorch's nn.Linear stores it. Plain TypeScript; sums are carried in doubles (JS numbers) and
// rounded to float32 once, on the store. out must not overlap x, w or bias.
//
// Scheme. x rows and w rows are both contiguous in k, so every kernel is a small register tile of
// dot products over the whole k (no k blocking). x is first copied into a plain JS array of doubles:
// V8 loads those with fewer instructions than typed-array elements (no float32→float64
// conversion, simpler bounds check), ~35% faster in a hot loop. Then, per column chunk:
// - Direct (m < PACK_M, decode): w is read in place, in blocks of DOT_ROWS rows that all m x rows
//   reuse from cache, so it is streamed from memory once. Tiles: 2 x rows × 4 w rows for pairs of
//   rows, 1 x row × 8 w rows for m = 1 or an odd last row (8 accumulators, 1 x load per 8 w loads).
// - Packed (m ≥ PACK_M, prefill): blocks of PACK_ELEMS (L2-sized) w rows are copied into a JS array
//   too, zero-padded to 4-row multiples (x to an even row count), and run by a 2×4 tile over all row
//   pairs: 8 accumulators + 6 operands fit V8's 15 usable xmm registers; 2×4, 4×2 and 3×3 measured
//   best of 1×8…4×4, unrolling over k only hurt. Packing costs ~1.3 ns an element, which the direct
//   tiles win back below m ≈ 12. Scratch (grow-only, per thread): the packed x, twice the size of x.
// Tiles write their sums into `tile`; store() adds the bias and writes the valid corner to out.
// Hot indices are written `(a + b) | 0` so V8 emits int32 adds without overflow checks; each tile
// sees one array type only (hence tile2x4 and tile2x4f32), as polymorphic loads cost ~40%.
// Threads: linear() offers the job to threads.ts, which shares column chunks between the main
// thread and workers that run linearCols; it declines small jobs and weights outside a
// SharedArrayBuffer. Left out: k blocking, transposed or quantized weights.

import { parallelLinear } from './threads.ts';

/** From this many rows on, x and w are packed (prefill); below, w is read in place (decode). */
const PACK_M = 12;
/** w rows per cache block on the direct path. */
const DOT_ROWS = 64;
/** Doubles of packed w per block (768 KiB). */
const PACK_ELEMS = 98304;

let wPack: number[] = [];
let xPack: number[] = [];
const tile = new Float64Array(8);

/**
 * out (m, n) = x (m, k) · wᵀ + bias for row-major float32 arrays (views allowed); `wFresh`: w is an
 * activation used once, not a weight (the worker pool then sends it with the job, see threads.ts).
 */
export function linear(
  out: Float32Array,
  x: Float32Array,
  w: Float32Array,
  bias: Float32Array | null,
  m: number,
  n: number,
  k: number,
  wFresh = false,
): void {
  if (out.length < m * n || x.length < m * k || w.length < n * k || (bias !== null && bias.length < n)) {
    throw new RangeError(`linear: arrays too short for m=${m} n=${n} k=${k}`);
  }
  if (m === 0 || n === 0) return;
  if (!parallelLinear(out, x, w, bias, m, n, k, linearCols, wFresh)) {
    linearCols(out, 0, x, 0, w, 0, bias, 0, m, n, k, n, 0, none);
  }
}

const none = () => -1;

/**
 * One thread's part of linear(): column chunk `first`, then each chunk next() returns until −1;
 * chunk c is columns [c·width, min(n, (c + 1)·width)). Arrays are addressed from element offsets:
 * out[oOff + i·n + j], x[xOff + i·k + p], w[wOff + j·k + p], bias[bOff + j].
 */
export function linearCols(
  out: Float32Array,
  oOff: number,
  x: Float32Array,
  xOff: number,
  w: Float32Array,
  wOff: number,
  bias: Float32Array | null,
  bOff: number,
  m: number,
  n: number,
  k: number,
  width: number,
  first: number,
  next: () => number,
): void {
  const rows = m + (m & 1);
  if (xPack.length < rows * k) xPack = doubles(rows * k);
  pack(xPack, x, xOff, k, m, rows);
  for (let c = first; c >= 0; c = next()) {
    const j0 = c * width;
    const j1 = Math.min(n, j0 + width);
    if (m >= PACK_M) packed(out, oOff, xPack, w, wOff, bias, bOff, m, n, k, j0, j1);
    else direct(out, oOff, xPack, w, wOff, bias, bOff, m, n, k, j0, j1);
  }
}

/** Columns [j0, j1) with w read in place, DOT_ROWS w rows at a time for all m rows of X. */
function direct(
  out: Float32Array,
  oOff: number,
  X: number[],
  w: Float32Array,
  wOff: number,
  bias: Float32Array | null,
  bOff: number,
  m: number,
  n: number,
  k: number,
  j0: number,
  j1: number,
): void {
  for (let jb = j0; jb < j1; jb += DOT_ROWS) {
    const je = Math.min(j1, jb + DOT_ROWS);
    for (let i = 0; i < m; i += 2) {
      const rows = Math.min(2, m - i);
      const cols = rows === 2 ? 4 : 8;
      let j = jb;
      for (; j + cols <= je; j += cols) {
        if (rows === 2) tile2x4f32(X, i * k, w, wOff + j * k, k);
        else tile1x8(X, i * k, w, wOff + j * k, k);
        store(out, oOff + i * n + j, n, rows, cols, cols, bias, bOff + j);
      }
      for (let r = i; r < i + rows && j < je; r++) {
        for (let c = j; c < je; c++) {
          let s = bias === null ? 0 : bias[bOff + c];
          for (let p = 0; p < k; p++) s += X[r * k + p] * w[wOff + c * k + p];
          out[oOff + r * n + c] = s;
        }
      }
    }
  }
}

/** Columns [j0, j1) with w packed a block of rows at a time, then 2×4 tiles over all row pairs. */
function packed(
  out: Float32Array,
  oOff: number,
  X: number[],
  w: Float32Array,
  wOff: number,
  bias: Float32Array | null,
  bOff: number,
  m: number,
  n: number,
  k: number,
  j0: number,
  j1: number,
): void {
  const nb = Math.max(4, Math.floor(PACK_ELEMS / Math.max(k, 1) / 4) * 4);
  if (wPack.length < nb * k) wPack = doubles(nb * k);
  const W = wPack;
  for (let jb = j0; jb < j1; jb += nb) {
    const nr = Math.min(nb, j1 - jb);
    pack(W, w, wOff + jb * k, k, nr, Math.ceil(nr / 4) * 4);
    for (let i = 0; i < m; i += 2) {
      const o = oOff + i * n + jb;
      for (let c = 0; c < nr; c += 4) {
        tile2x4(X, i * k, W, c * k, k);
        store(out, o + c, n, Math.min(2, m - i), Math.min(4, nr - c), 4, bias, bOff + jb + c);
      }
    }
  }
}

/** A JS array of `length` numbers with double elements (fill(0.5) fixes the elements kind). */
function doubles(length: number): number[] {
  return new Array<number>(length).fill(0.5);
}

/** Copies `rows` rows of k from a[off…] into `into`, then zero rows up to `padded`. */
function pack(into: number[], a: Float32Array, off: number, k: number, rows: number, padded: number): void {
  const len = rows * k;
  for (let t = 0; t < len; t = (t + 1) | 0) into[t] = a[(off + t) | 0];
  for (let t = len; t < padded * k; t++) into[t] = 0;
}

/** Writes the valid rows × cols corner of `tile` (row stride `stride`) + bias to out[o + r·n + c]. */
function store(
  out: Float32Array,
  o: number,
  n: number,
  rows: number,
  cols: number,
  stride: number,
  bias: Float32Array | null,
  bo: number,
): void {
  for (let r = 0; r < rows; r++) {
    const q = o + r * n;
    if (bias === null) for (let c = 0; c < cols; c++) out[q + c] = tile[r * stride + c];
    else for (let c = 0; c < cols; c++) out[q + c] = tile[r * stride + c] + bias[bo + c];
  }
}

/** tile[r·4 + c] = X row (x0/k + r) · W row (w0/k + c), r < 2, c < 4: the packed tile. */
function tile2x4(X: number[], x0: number, W: number[], w0: number, k: number): void {
  const x1 = (x0 + k) | 0;
  const w1 = (w0 + k) | 0;
  const w2 = (w1 + k) | 0;
  const w3 = (w2 + k) | 0;
  let s00 = 0;
  let s01 = 0;
  let s02 = 0;
  let s03 = 0;
  let s10 = 0;
  let s11 = 0;
  let s12 = 0;
  let s13 = 0;
  for (let p = 0; p < k; p = (p + 1) | 0) {
    const a0 = X[(x0 + p) | 0];
    const a1 = X[(x1 + p) | 0];
    const b0 = W[(w0 + p) | 0];
    const b1 = W[(w1 + p) | 0];
    const b2 = W[(w2 + p) | 0];
    const b3 = W[(w3 + p) | 0];
    s00 += a0 * b0;
    s01 += a0 * b1;
    s02 += a0 * b2;
    s03 += a0 * b3;
    s10 += a1 * b0;
    s11 += a1 * b1;
    s12 += a1 * b2;
    s13 += a1 * b3;
  }
  tile[0] = s00;
  tile[1] = s01;
  tile[2] = s02;
  tile[3] = s03;
  tile[4] = s10;
  tile[5] = s11;
  tile[6] = s12;
  tile[7] = s13;
}

/** tile2x4 reading W in place from float32 (a copy, so that each stays monomorphic for V8). */
function tile2x4f32(X: number[], x0: number, W: Float32Array, w0: number, k: number): void {
  const x1 = (x0 + k) | 0;
  const w1 = (w0 + k) | 0;
  const w2 = (w1 + k) | 0;
  const w3 = (w2 + k) | 0;
  let s00 = 0;
  let s01 = 0;
  let s02 = 0;
  let s03 = 0;
  let s10 = 0;
  let s11 = 0;
  let s12 = 0;
  let s13 = 0;
  for (let p = 0; p < k; p = (p + 1) | 0) {
    const a0 = X[(x0 + p) | 0];
    const a1 = X[(x1 + p) | 0];
    const b0 = W[(w0 + p) | 0];
    const b1 = W[(w1 + p) | 0];
    const b2 = W[(w2 + p) | 0];
    const b3 = W[(w3 + p) | 0];
    s00 += a0 * b0;
    s01 += a0 * b1;
    s02 += a0 * b2;
    s03 += a0 * b3;
    s10 += a1 * b0;
    s11 += a1 * b1;
    s12 += a1 * b2;
    s13 += a1 * b3;
  }
  tile[0] = s00;
  tile[1] = s01;
  tile[2] = s02;
  tile[3] = s03;
  tile[4] = s10;
  tile[5] = s11;
  tile[6] = s12;
  tile[7] = s13;
}

/** tile[c] = X row x0/k · w row (w0/k + c), c < 8: the decode tile, 8 float32 w rows per x load. */
function tile1x8(X: number[], x0: number, w: Float32Array, w0: number, k: number): void {
  const r1 = (w0 + k) | 0;
  const r2 = (r1 + k) | 0;
  const r3 = (r2 + k) | 0;
  const r4 = (r3 + k) | 0;
  const r5 = (r4 + k) | 0;
  const r6 = (r5 + k) | 0;
  const r7 = (r6 + k) | 0;
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let s4 = 0;
  let s5 = 0;
  let s6 = 0;
  let s7 = 0;
  for (let p = 0; p < k; p = (p + 1) | 0) {
    const a = X[(x0 + p) | 0];
    s0 += a * w[(w0 + p) | 0];
    s1 += a * w[(r1 + p) | 0];
    s2 += a * w[(r2 + p) | 0];
    s3 += a * w[(r3 + p) | 0];
    s4 += a * w[(r4 + p) | 0];
    s5 += a * w[(r5 + p) | 0];
    s6 += a * w[(r6 + p) | 0];
    s7 += a * w[(r7 + p) | 0];
  }
  tile[0] = s0;
  tile[1] = s1;
  tile[2] = s2;
  tile[3] = s3;
  tile[4] = s4;
  tile[5] = s5;
  tile[6] = s6;
  tile[7] = s7;
}
