// WGSL pieces shared by the tiled kernels of the chunked SSD backward (ssdBackwardChunked.ts), on
// top of the forward's tiles (ssdTiles.ts: 256 threads, each a 4·RM × 4·RN block of a TM × TN
// output tile in `acc`): visiting the accumulators with their row and column, scaling rows, and the
// product of a chunk's rows with its state.

import { mma, stageSlab } from './ssdTiles.ts';

/** Runs `body` for every accumulator value v[j] of the thread, at rows `row`, columns `col`. */
export const eachAcc = (row: string, col: string, body: string) => /* wgsl */ `
  for (var a = 0u; a < RM; a++) {
    for (var i = 0u; i < 4u; i++) {
      let ${row} = m0 + rowOf(a, i, ty);
      for (var bb = 0u; bb < RN; bb++) {
        let v = acc[(a * 4u + i) * RN + bb];
        for (var j = 0u; j < 4u; j++) {
          let ${col} = n0 + colOf(bb, j, tx);
          ${body}
        }
      }
    }
  }`;

/** Multiplies every accumulator row by `factor`, an expression of `row` (clamped to len − 1). */
export const scaleRows = (row: string, factor: string) => /* wgsl */ `
  for (var a = 0u; a < RM; a++) {
    for (var i = 0u; i < 4u; i++) {
      let ${row} = min(m0 + rowOf(a, i, ty), len - 1u);
      let f = ${factor};
      for (var bb = 0u; bb < RN; bb++) { acc[(a * 4u + i) * RN + bb] *= f; }
    }
  }`;

/**
 * acc += a (len × p) · state (p × n): the chunk's rows of `a` (b, l, h, p) times its state `state`
 * (b, K, h, p, n), for the tile at (m0, n0); after chunkRows (row, sAt).
 */
export function stateProduct(rm: number, rn: number, a: string, state: string): string {
  return /* wgsl */ `
  for (var k0 = 0u; k0 < params.p; k0 += KT) {
${stageSlab(
  'As',
  rm,
  'k',
  'let pi = k0 + k;',
  `let r = m0 + m + i; if (r < len && pi < params.p) { v[i] = ${a}[((row + r) * h + hh) * params.p + pi]; }`,
)}
${stageSlab(
  'Bs',
  rn,
  'm',
  'let pi = k0 + k;',
  `let ni = n0 + m + i; if (pi < params.p && ni < params.n) { v[i] = ${state}[sAt + pi * params.n + ni]; }`,
)}
    ${mma}
  }`;
}
