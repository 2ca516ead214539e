// Helpers shared by the CPU backward of the selective scan and of SSD: shape checks, the derivative
// of softplus (matching src/nn/activations.ts), the checkpoint interval of the state recomputation,
// and the in-order sum of the lane jobs' per-chunk partial sums.

import { fail } from '../../core/errors.ts';
import { type Shape, sameShape, showShape, type Tensor } from '../../core/tensor.ts';

/** Fails with one line unless `t` has exactly `shape`. */
export function expectShape(where: string, name: string, t: Tensor, shape: Shape): void {
  if (!sameShape(t.shape, shape))
    fail(`${where}: ${name} is ${showShape(t.shape)}, expected ${showShape(shape)}`);
}

/** d softplus(x) / dx = σ(x); 1 above 20, where softplus returns x itself. */
export function softplusGrad(x: number): number {
  return x > 20 ? 1 : 1 / (1 + Math.exp(-x));
}

/** State values of one lane a backward may keep at once (64 KiB of doubles: stays in cache). */
const STATE_BUDGET = 1 << 13;

/**
 * Positions between state checkpoints for a sequence of length l whose state has `size` values:
 * all l when l + 1 states fit STATE_BUDGET (the forward then runs once: no checkpoint pass), else
 * ⌈√l⌉, which minimises the l/K checkpoints plus the K recomputed states of one chunk (2√l states
 * in all). The recomputed states are the same bits either way.
 */
export function checkpointInterval(l: number, size: number): number {
  if ((l + 1) * size <= STATE_BUDGET) return Math.max(1, l);
  return Math.max(1, Math.ceil(Math.sqrt(l)));
}

/**
 * Chunks of a backward lane job over `lanes` lanes of `state` state values each (channels: n,
 * heads: p·n) whose dB and dC have `width` values per position (n, g·n): at most one chunk per 32
 * states over width, so that the two per-chunk partial sums of one batch row stay ≤ 1/16 of the
 * l · lanes · state values of the expanded state the backward never stores.
 */
export function partialChunks(lanes: number, state: number, width: number): number {
  return Math.max(1, Math.floor((lanes * state) / (32 * width)));
}

/** out[i] = Σ_c parts[c·size + i] over `chunks` chunks in order, summed in doubles. */
export function sumChunks(out: Float32Array, parts: Float64Array, chunks: number, size: number): void {
  for (let i = 0; i < size; i++) {
    let s = 0;
    for (let c = 0, j = i; c < chunks; c++, j += size) s += parts[j];
    out[i] = s;
  }
}
