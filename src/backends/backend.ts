// The Backend interface: memory (upload, read, write) and the named kernels that the models are
// written against. A backend owns its tensors; models never touch their memory directly, so the
// same model code runs on the CPU backend (plain TypeScript, the executable spec) and on GPUs.
//
// Kernels enqueue work and return their outputs synchronously; only `read` waits. Recurrent state
// tensors passed to the sequence kernels (conv1d, selectiveScan, ssd) are read as the state before
// the first position and overwritten with the state after the last, so one kernel serves a whole
// prompt (l tokens) and a decoding step (l = 1) alike.
//
// Dimension letters (DESIGN.md): b batch, l length, t = b·l tokens, d model width or channels,
// n state, h heads, p head dim, g groups, k kernel width / reduction length.

import type { DType, Shape, Tensor } from '../core/tensor.ts';
import type { TrainingOps } from './training.ts';

export interface SelectiveScanArgs {
  u: Tensor; // (b, l, d)    input after conv + SiLU
  delta: Tensor; // (b, l, d) Δ before bias and softplus; (b, l, R) when deltaProj is given
  /** Mamba's dt_proj weight (d, R): Δ = delta · deltaProjᵀ first (the backend may fuse it). */
  deltaProj?: Tensor; // (d, R)
  deltaBias: Tensor; // (d)
  A: Tensor; // (d, n)        A = -exp(A_log)
  B: Tensor; // (b, l, n)
  C: Tensor; // (b, l, n)
  D: Tensor; // (d)
  z: Tensor; // (b, l, d)     gate: y · SiLU(z)
  state: Tensor; // (b, d, n) in/out
}

export interface SsdArgs {
  x: Tensor; // (b, l, h·p)
  dt: Tensor; // (b, l, h)     Δ before bias, softplus and clamp
  dtBias: Tensor; // (h)
  dtLimit: readonly [number, number];
  A: Tensor; // (h)            A = -exp(A_log)
  B: Tensor; // (b, l, g·n)
  C: Tensor; // (b, l, g·n)
  D: Tensor; // (h)
  state: Tensor; // (b, h, p, n) in/out
  chunkSize: number; // q
}

export interface Backend {
  readonly name: string;
  /** The backward kernels, loss and optimizer (training.ts). */
  readonly training: TrainingOps;

  upload(data: Float32Array | Int32Array, shape: Shape): Tensor;
  zeros(shape: Shape, dtype?: DType): Tensor;
  /**
   * Zero f32 tensors of `shapes`, made together: where the backend can, as views of one
   * allocation (`whole`), so that `copy(whole, …)` copies them all at once (a model's recurrent
   * state); otherwise separately (`whole` null).
   */
  zerosTogether(shapes: readonly Shape[]): { parts: Tensor[]; whole: Tensor | null };
  read(tensor: Tensor): Promise<Float32Array | Int32Array>;
  /** Several reads at once, where the backend saves by it (WebGPU: one submit and one map). */
  readAll?(tensors: readonly Tensor[]): Promise<Array<Float32Array | Int32Array>>;
  /** dst ← src, both whole tensors of the same size (enqueued like a kernel). */
  copy(dst: Tensor, src: Tensor): void;
  /**
   * Runs `fn`; tensors it creates that are not part of its result are released when it returns
   * (a no-op where a garbage collector frees memory, as on the CPU).
   */
  tidy<T>(fn: () => T): T;
  /**
   * Gives back a tensor made outside any tidy (a step's logits once read) now; a no-op where a
   * garbage collector frees memory.
   */
  release(tensor: Tensor): void;
  /** A tensor with the same data and a new shape of the same size. */
  reshape(tensor: Tensor, shape: Shape): Tensor;

  /** (t) i32 ids, (v, d) table → (t, d). Ids are checked by the caller. */
  embedding(ids: Tensor, weight: Tensor): Tensor;
  /** (t, k) · (n, k)ᵀ + bias (n) → (t, n): the layout of torch.nn.Linear. */
  linear(x: Tensor, weight: Tensor, bias: Tensor | null): Tensor;
  /** Splits the last axis: (…, c) → [(…, sizes[0]), (…, sizes[1]), …], Σ sizes = c. */
  split(x: Tensor, sizes: readonly number[]): Tensor[];
  /** residual' = x + residual (or x alone), normed = RMSNorm(residual') · weight. */
  addRmsNorm(
    x: Tensor,
    residual: Tensor | null,
    weight: Tensor,
    eps: number,
  ): { residual: Tensor; normed: Tensor };
  /** Causal depthwise conv over l: x (b, l, c), weight (c, w), bias (c), state (b, c, w-1) in/out. */
  causalConv1d(x: Tensor, weight: Tensor, bias: Tensor | null, state: Tensor, silu: boolean): Tensor;
  /** Mamba's fused S6 scan: Δ = softplus(delta + bias), y = (C·h + D u) · SiLU(z) → (b, l, d). */
  selectiveScan(args: SelectiveScanArgs): Tensor;
  /** Mamba-2's chunked SSD: y = SSD(x, Δ, A, B, C) + D x → (b, l, h·p). */
  ssd(args: SsdArgs): Tensor;
  /** Mamba-2's gated RMSNorm over groups of `groupSize` channels: (t, c), (t, c) → (t, c). */
  gatedRmsNorm(
    y: Tensor,
    z: Tensor,
    weight: Tensor,
    eps: number,
    groupSize: number,
    normBeforeGate: boolean,
  ): Tensor;

  // Inference ops (appended; decoding reads back token ids only).
  /** Index of the largest value of each row, the first one on ties: (…, c) f32 → (…) i32. */
  argmax(x: Tensor): Tensor;
  /**
   * Mamba's mixer between in_proj and out_proj for one token per sequence (decoding), fused where
   * the backend can: conv1d + SiLU → u; x_proj(u) → [Δ (rank R), B, C]; Δ = dt_proj(Δ); selective
   * scan with the D skip and the SiLU(z) gate → y (b, 1, dInner). Both states advance, in place or
   * into statesOut.
   */
  mambaStep(args: MambaStepArgs): Tensor;
  /**
   * addRmsNorm, then linear on its normed output, fused where the backend can (decoding: the
   * projection normalises its own input): residual' = x + residual (or x), out = RMSNorm(residual')
   * · normWeight · weightᵀ + bias → (t, n). The returned residual may be the given one, updated.
   */
  addRmsNormLinear(
    x: Tensor,
    residual: Tensor | null,
    normWeight: Tensor,
    eps: number,
    weight: Tensor,
    bias: Tensor | null,
  ): { residual: Tensor; out: Tensor };
  /**
   * A whole Mamba block for one token per sequence (decoding), fused where the backend can:
   * residual' = Σ_p hidden[p] + residual (or Σ_p hidden[p]); the mixer's output out_proj(mambaStep(
   * in_proj(RMSNorm(residual') · norm))) comes back as P' partial sums (P', b, 1, d) whose sum is
   * the output, so that a backend may leave out_proj's reduction over dInner to the next block's
   * norm (the WebGPU one does at small batches); `whole` asks for P' = 1 (before the final norm).
   * Both states advance, in place or into statesOut.
   */
  mambaBlockStep(args: MambaBlockStepArgs): { residual: Tensor; hidden: Tensor };
  /**
   * A whole Mamba-2 block for one token per sequence, fused where the backend can, else null (the
   * mixer then runs its ops): residual' = scale · Σ_p hidden[p] + residual, where `squares` (from
   * the previous block's step) gives scale = rsqrt(Σ_p squares[p] / dInner + eps), else 1; the
   * output comes back as P' partial sums with the squares of its own gated norm (its scale left to
   * the next block), or with `whole` as one tensor and no squares. Both states advance, in place
   * or into statesOut.
   */
  mamba2BlockStep?(
    args: Mamba2BlockStepArgs,
  ): { residual: Tensor; hidden: Tensor; squares: Tensor | null } | null;

  // S4D ops (appended; optional: the CPU and WebGPU backends have them).
  /**
   * The gated S4D layer (time-invariant diagonal SSM, src/ssm/s4d.ts): y = (K̄ * u + D u) · SiLU(z)
   * → (b, l, d); the backend picks the form (CPU: FFT convolution for long inputs, else the recurrence).
   */
  s4d?(args: S4dArgs): Tensor;
}

export interface S4dArgs {
  u: Tensor; // (b, l, d)
  logDt: Tensor; // (d)      Δ = exp(log_dt)
  A: Tensor; // (d, n)       A = -exp(A_log)
  B: Tensor; // (d, n)
  C: Tensor; // (d, n)
  D: Tensor; // (d)
  z: Tensor; // (b, l, d)    gate: y · SiLU(z)
  state: Tensor; // (b, d, n) in/out
}

export interface MambaStepArgs {
  xz: Tensor; // (b, 1, 2·dInner)  in_proj's output: [x, z]
  convWeight: Tensor; // (dInner, w)
  convBias: Tensor | null; // (dInner)
  xProj: Tensor; // (R + 2n, dInner)
  dtProj: Tensor; // (dInner, R)
  dtBias: Tensor; // (dInner)
  A: Tensor; // (dInner, n)    A = -exp(A_log)
  D: Tensor; // (dInner)
  convState: Tensor; // (b, dInner, w-1) in/out
  ssmState: Tensor; // (b, dInner, n) in/out
  /**
   * Where the advanced states go, if not back into convState and ssmState (which are then only
   * read): decoding keeps the state before a step without copying it (double buffering).
   */
  statesOut?: { conv: Tensor; ssm: Tensor };
}

export interface Mamba2BlockStepArgs {
  hidden: Tensor; // (P, b, 1, d)  the block's input as P partial sums
  squares: Tensor | null; // (P, b)  their gated norm's squares (see mamba2BlockStep), or null
  residual: Tensor | null; // (b, 1, d)  null in the first block
  norm: Tensor; // (d)  the block's RMSNorm weight
  eps: number; // of both norms
  inProj: Tensor; // (dInner + convDim + h, d): [z, xBC, Δ]
  inProjBias: Tensor | null; // (dInner + convDim + h)
  convWeight: Tensor; // (convDim, w)
  convBias: Tensor | null; // (convDim)
  dtBias: Tensor; // (h)
  dtLimit: readonly [number, number];
  A: Tensor; // (h)  A = -exp(A_log)
  D: Tensor; // (h)
  gateNorm: Tensor; // (dInner)  the gated RMSNorm's weight
  normBeforeGate: boolean;
  groups: number; // of B, C and the gated norm
  outProj: Tensor; // (d, dInner)
  outProjBias: Tensor | null; // (d)
  convState: Tensor; // (b, convDim, w-1) in/out
  ssmState: Tensor; // (b, h, p, n) in/out
  statesOut?: { conv: Tensor; ssm: Tensor }; // as MambaStepArgs'
  whole: boolean; // return the output as one tensor (P' = 1), without squares
}

export interface MambaBlockStepArgs extends Omit<MambaStepArgs, 'xz'> {
  hidden: Tensor; // (P, b, 1, d)  the block's input as P partial sums
  residual: Tensor | null; // (b, 1, d)  null in the first block
  norm: Tensor; // (d)  the block's RMSNorm weight
  eps: number;
  inProj: Tensor; // (2·dInner, d)
  inProjBias: Tensor | null; // (2·dInner)
  outProj: Tensor; // (d, dInner)
  outProjBias: Tensor | null; // (d)
  whole: boolean; // return the output as one tensor (P' = 1)
}
