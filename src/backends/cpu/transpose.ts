// Cache-blocked transpose of a rectangle of a row-major float32 matrix, for the backward of linear
// (linearBackward.ts), which feeds transposed operands to the matmul kernels. transposeCols is one
// thread's part, a set of column chunks, run by the main thread and the workers of threads.ts alike.

/** Side of the square tiles: 32 × 32 floats of source and of destination. */
const TILE = 32;

/**
 * dst[dOff + (c − c0)·(r1 − r0) + (r − r0)] (+)= src[sOff + r·cols + c] for r in [r0, r1) and c in
 * chunks of `width` columns from c0 (chunk i: [c0 + i·width, min(c1, c0 + (i + 1)·width))): chunk
 * `first`, then each one next() returns until −1.
 */
export function transposeCols(
  dst: Float32Array,
  dOff: number,
  src: Float32Array,
  sOff: number,
  cols: number,
  r0: number,
  r1: number,
  c0: number,
  c1: number,
  add: boolean,
  width: number,
  first: number,
  next: () => number,
): void {
  const rows = r1 - r0;
  for (let chunk = first; chunk >= 0; chunk = next()) {
    const ca = c0 + chunk * width;
    const cz = Math.min(c1, ca + width);
    for (let rb = r0; rb < r1; rb += TILE) {
      const re = Math.min(r1, rb + TILE);
      for (let cb = ca; cb < cz; cb += TILE) {
        const ce = Math.min(cz, cb + TILE);
        for (let c = cb; c < ce; c++) {
          const d = dOff + (c - c0) * rows - r0;
          const s = sOff + c;
          if (add) for (let r = rb; r < re; r++) dst[d + r] += src[s + r * cols];
          else for (let r = rb; r < re; r++) dst[d + r] = src[s + r * cols];
        }
      }
    }
  }
}
