// Backend.mambaStep as the sequence of the model's own ops (as src/models/mamba.ts runs them for
// any length): the CPU backend's mambaStep, the reference of the fused WebGPU kernel
// (webgpu/kernels/mambaStep.ts), and that kernel's fallback on shapes it does not take.

import type { Tensor } from '../core/tensor.ts';
import type { Backend, MambaStepArgs } from './backend.ts';

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
