// The CPU loss and optimizer: softmax cross-entropy with ignored targets, and PyTorch's AdamW
// update (torch.optim.AdamW, amsgrad off, decoupled weight decay), element by element in float64.

import { fail } from '../../core/errors.ts';
import type { AdamWHyper } from '../training.ts';

/**
 * Returns scale · Σ −log softmax(logits row)[target] over rows whose target is not −1, and writes
 * dLogits = scale · (softmax − onehot(target)) (zero rows where ignored). The log-softmax subtracts
 * the row's maximum first, so large logits do not overflow.
 */
export function crossEntropy(
  dLogits: Float32Array, // (t, v) out
  logits: Float32Array, // (t, v)
  targets: Int32Array, // (t)
  scale: number,
  t: number,
  v: number,
): number {
  let loss = 0;
  for (let row = 0; row < t; row++) {
    const base = row * v;
    const target = targets[row];
    if (target === -1) {
      dLogits.fill(0, base, base + v);
      continue;
    }
    if (target < -1 || target >= v)
      fail(`crossEntropy: target ${target} outside [0, ${v}) (or -1 to ignore)`);
    let max = Number.NEGATIVE_INFINITY;
    for (let i = base; i < base + v; i++) max = Math.max(max, logits[i]);
    let sumExp = 0;
    for (let i = base; i < base + v; i++) {
      const e = Math.exp(logits[i] - max);
      dLogits[i] = e; // one exp per logit: the row is rescaled below
      sumExp += e;
    }
    const logSum = Math.log(sumExp) + max;
    const factor = scale / sumExp;
    for (let i = base; i < base + v; i++) dLogits[i] *= factor;
    loss -= logits[base + target] - logSum;
    dLogits[base + target] = scale * (Math.exp(logits[base + target] - logSum) - 1);
  }
  return scale * loss;
}

/** One AdamW step on param, m and v in place, with grad · gradScale as the gradient. */
export function adamw(
  param: Float32Array,
  grad: Float32Array,
  m: Float32Array,
  v: Float32Array,
  hyper: AdamWHyper,
): void {
  const { lr, beta1, beta2, eps, weightDecay, step, gradScale } = hyper;
  if (!(step >= 1)) fail(`adamw: step ${step} must be 1 or more (it is 1-based)`);
  const decay = 1 - lr * weightDecay;
  const stepSize = lr / (1 - beta1 ** step);
  const rootCorrection = Math.sqrt(1 - beta2 ** step);
  for (let i = 0; i < param.length; i++) {
    const g = grad[i] * gradScale;
    const mi = beta1 * m[i] + (1 - beta1) * g;
    const vi = beta2 * v[i] + (1 - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] * decay - (stepSize * mi) / (Math.sqrt(vi) / rootCorrection + eps);
  }
}
