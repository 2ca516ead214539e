// Fused inference ops of the Backend interface written as the sequence of the plain ops they fuse
// (as the models run them): the CPU backend's implementation, the reference of the fused WebGPU
// kernels (webgpu/kernels/mambaStep.ts, matvec.ts's norm prologue), and their fallback on shapes
// those kernels do not take.

import type { Tensor } from '../core/tensor.ts';
import type { Backend, MambaStepArgs } from './backend.ts';

/** Backend.mambaStep: Mamba's mixer between in_proj and out_proj, as src/models/mamba.ts runs it. */
export function mambaStepOps(be: Backend, a: MambaStepArgs): Tensor {
  const [dInner, r] = a.dtProj.shape;
  const n = a.A.shape[1];
  const [x, z] = be.split(a.xz, [dInner, dInner]); // (b, 1, dInner) each
  const u = be.causalConv1d(x, a.convWeight, a.convBias, a.convState, true); // (b, 1, dInner)
  const dbc = be.linear(u, a.xProj, null); // (b, 1, R + 2n)
  const [dtLow, B, C] = be.split(dbc, [r, n, n]); // (b, 1, R), (b, 1, n), (b, 1, n)
  const { dtProj: deltaProj, dtBias: deltaBias, A, D, ssmState: state } = a;
  return be.selectiveScan({ u, delta: dtLow, deltaProj, deltaBias, A, B, C, D, z, state }); // (b, 1, dInner)
}

/** Backend.addRmsNormLinear: addRmsNorm, then linear on its normed output. */
export function addRmsNormLinearOps(
  be: Backend,
  x: Tensor,
  residual: Tensor | null,
  normWeight: Tensor,
  eps: number,
  weight: Tensor,
  bias: Tensor | null,
): { residual: Tensor; out: Tensor } {
  const added = be.addRmsNorm(x, residual, normWeight, eps); // (t, k) each
  return { residual: added.residual, out: be.linear(added.normed, weight, bias) }; // (t, k), (t, n)
}
