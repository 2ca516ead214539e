// The training kernels of a backend: the backward of every model operation, the loss and the
// optimizer update. Models call them from their explicit module backward passes (no per-element
// autograd): each forward op of Backend has its backward here.
//
// Conventions. Gradients of activations are returned as new tensors. Gradients of parameters are
// ADDED into the tensors passed in `grads` (zero them with `zero` before a step), which serves tied
// weights (the LM head and the embeddings share one gradient) and gradient accumulation alike.
// Inputs may be views (the parts of `split`); outputs are dense. Sequence ops start from the state
// passed in their args (read only here; training starts from zeros) and give no state gradient.
// A_log enters the models as A = -exp(A_log): the scan and SSD backward add dA · A to `ALog`.

import type { Tensor } from '../core/tensor.ts';
import type { S4dArgs, SelectiveScanArgs, SsdArgs } from './backend.ts';

export interface LinearGrads {
  weight: Tensor; // (n, k)
  bias: Tensor | null; // (n)
}

export interface ConvGrads {
  weight: Tensor; // (c, w)
  bias: Tensor | null; // (c)
}

export interface ScanGrads {
  deltaBias: Tensor; // (d)
  ALog: Tensor; // (d, n)
  D: Tensor; // (d)
}

export interface SsdGrads {
  dtBias: Tensor; // (h)
  ALog: Tensor; // (h)
  D: Tensor; // (h)
}

export interface S4dGrads {
  logDt: Tensor; // (d)
  ALog: Tensor; // (d, n)
  B: Tensor; // (d, n)
  C: Tensor; // (d, n)
  D: Tensor; // (d)
}

export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step count, for the bias corrections. */
  step: number;
  /** Multiplies the gradient before use (clipping and accumulation scale). */
  gradScale: number;
}

export interface TrainingOps {
  /** Sets every value of `t` to zero, in place. */
  zero(t: Tensor): void;
  /** dst += src, in place (same number of values). */
  accumulate(dst: Tensor, src: Tensor): void;
  /** The backward of split: parts (…, sizes[i]) → (…, Σ sizes), a new dense tensor. */
  concat(parts: readonly Tensor[]): Tensor;
  /**
   * Cross-entropy of logits (t, v) against targets (t) i32, where a target of -1 is ignored:
   * loss (1) = scale · Σ_counted −log softmax(logits)[target], dLogits (t, v) its gradient.
   * Callers pass scale = 1 / (number of counted targets in the whole batch) for the mean.
   */
  crossEntropy(logits: Tensor, targets: Tensor, scale: number): { loss: Tensor; dLogits: Tensor };
  /**
   * Backward of linear (y = x·Wᵀ + b): returns dx = dy·W (t, k) unless `needDx` is false (then
   * null); adds dyᵀ·x (n, k) to grads.weight and Σ_t dy (n) to grads.bias.
   */
  linearBackward(dy: Tensor, x: Tensor, weight: Tensor, grads: LinearGrads, needDx?: boolean): Tensor | null;
  /** Backward of embedding: adds dy (t, d) rows into dWeight (vocab, d) at ids (t). */
  embeddingBackward(ids: Tensor, dy: Tensor, dWeight: Tensor): void;
  /**
   * Backward of addRmsNorm: `sum` (t, d) is the residual' it returned, dNormed the gradient of
   * `normed`, dSum the gradient reaching residual' from later layers (or null). Returns the total
   * gradient of residual' (which is also that of x and of the incoming residual); adds the
   * weight's gradient to dWeight (d).
   */
  addRmsNormBackward(
    dNormed: Tensor,
    dSum: Tensor | null,
    sum: Tensor,
    weight: Tensor,
    eps: number,
    dWeight: Tensor,
  ): Tensor;
  /** Backward of causalConv1d from a zero state: x (b, l, c), dy (b, l, c) → dx (b, l, c). */
  causalConv1dBackward(
    dy: Tensor,
    x: Tensor,
    weight: Tensor,
    bias: Tensor | null,
    silu: boolean,
    grads: ConvGrads,
  ): Tensor;
  /**
   * Backward of selectiveScan with a full-width delta (args.deltaProj absent), recomputing the
   * expanded state (b, l, d, n) instead of reading it from memory.
   */
  selectiveScanBackward(
    args: SelectiveScanArgs,
    dy: Tensor,
    grads: ScanGrads,
  ): { du: Tensor; dDelta: Tensor; dB: Tensor; dC: Tensor; dz: Tensor };
  /** Backward of ssd: dx (b, l, h·p), ddt (b, l, h) (before bias), dB and dC (b, l, g·n). */
  ssdBackward(
    args: SsdArgs,
    dy: Tensor,
    grads: SsdGrads,
  ): { dx: Tensor; ddt: Tensor; dB: Tensor; dC: Tensor };
  /** Backward of gatedRmsNorm: dy and dz (t, c); adds the weight's gradient to dWeight (c). */
  gatedRmsNormBackward(
    dOut: Tensor,
    y: Tensor,
    z: Tensor,
    weight: Tensor,
    eps: number,
    groupSize: number,
    normBeforeGate: boolean,
    dWeight: Tensor,
  ): { dy: Tensor; dz: Tensor };
  /** Σ of the squares of every value of every tensor: (1). */
  sumOfSquares(tensors: readonly Tensor[]): Tensor;
  /** One AdamW update of param in place (decoupled weight decay), with moments m and v. */
  adamw(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, hyper: AdamWHyper): void;
  /** dst = -exp(src): refreshes A from A_log after an update. */
  negExp(src: Tensor, dst: Tensor): void;

  // S4D (appended; optional like Backend.s4d).
  /** Backward of s4d from a zero state (args.state is not read): du and dz (b, l, d). */
  s4dBackward?(args: S4dArgs, dOut: Tensor, grads: S4dGrads): { du: Tensor; dz: Tensor };
}
