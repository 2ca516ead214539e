// Helpers shared by the CPU backward of the selective scan and of SSD: shape checks, the derivative of softplus (matching src/nn/activations.ts), and the
// checkpoint interval of the state recomputation.

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

/**
 * Positions between state checkpoints for a sequence of length l: ⌈√l⌉, which minimises the
 * l/K checkpoints plus the K recomputed states of one chunk (2√l states in all).
 */
export function checkpointInterval(l: number): number {
  return Math.max(1, Math.ceil(Math.sqrt(l)));
}
