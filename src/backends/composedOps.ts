// Fused inference ops of the Backend interface written as the sequence of the plain ops they fuse
// (as the models run them): the CPU backend's implementation, the reference of the fused WebGPU
// kernels (webgpu/kernels/mambaStep.ts, matvec.ts's norm prologue), and their fallback on shapes
// those kernels do not take.

import { fail } from '../core/errors.ts';
import type { Tensor } from '../core/tensor.ts';
import type { Backend, MambaBlockStepArgs, MambaStepArgs } from './backend.ts';

/** Backend.mambaStep: Mamba's mixer between in_proj and out_proj, as src/models/mamba.ts runs it. */
export function mambaStepOps(be: Backend, a: MambaStepArgs): Tensor {
  const [dInner, r] = a.dtProj.shape;
  const n = a.A.shape[1];
  if (a.statesOut) {
    // Out of place: the ops below advance states in place, so they run on copies.
    be.copy(a.statesOut.conv, a.convState);
    be.copy(a.statesOut.ssm, a.ssmState);
    return mambaStepOps(be, {
      ...a,
      convState: a.statesOut.conv,
      ssmState: a.statesOut.ssm,
      statesOut: undefined,
    });
  }
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

/**
 * Backend.mambaBlockStep: the block's norm and in_proj (addRmsNormLinear), mambaStep and out_proj,
 * as CausalLM.step runs them on a mixer without it. The output is one partial sum (P' = 1); the
 * input must be one too (only a backend's own fused steps make more, and they take them back).
 */
export function mambaBlockStepOps(be: Backend, a: MambaBlockStepArgs): { residual: Tensor; hidden: Tensor } {
  const [parts, b, l, d] = a.hidden.shape;
  if (parts !== 1) fail(`mambaBlockStep: ${parts} partial sums as input where this backend makes one`);
  const hidden = be.reshape(a.hidden, [b, l, d]); // (b, 1, d)
  const added = be.addRmsNormLinear(hidden, a.residual, a.norm, a.eps, a.inProj, a.inProjBias); // (b, 1, d), (b, 1, 2·dInner)
  const y = be.mambaStep({ ...a, xz: added.out }); // (b, 1, dInner)
  const out = be.linear(y, a.outProj, a.outProjBias); // (b, 1, d)
  return { residual: added.residual, hidden: be.reshape(out, [1, b, l, d]) }; // (b, 1, d), (1, b, 1, d)
}
