// Benchmarks only: a preview of the one change src/models/mamba.ts needs to decode through the
// fused Backend.mambaStep. While enabled, MambaMixer.forward at l = 1 runs
//   in_proj → mambaStep (conv, x_proj, dt_proj, scan, gate in one op) → out_proj
// instead of its five ops, so `bench --backend webgpu --fused-preview` can time whole decoding
// steps with the fused kernel before the model calls it. Remove once mamba.ts does this itself.

import type { Backend } from '../backends/backend.ts';
import type { Tensor } from '../core/tensor.ts';
import { MambaMixer } from '../models/mamba.ts';
import type { LayerState } from '../models/state.ts';

/** The mixer's weights, as MambaMixer names its (private) fields. */
interface MixerFields {
  backend: Backend;
  inProj: Tensor; // (2·dInner, d)
  inProjBias: Tensor | null; // (2·dInner)
  convWeight: Tensor; // (dInner, w)
  convBias: Tensor | null; // (dInner)
  xProj: Tensor; // (R + 2n, dInner)
  dtProj: Tensor; // (dInner, R)
  dtBias: Tensor; // (dInner)
  A: Tensor; // (dInner, n)
  D: Tensor; // (dInner)
  outProj: Tensor; // (d, dInner)
  outProjBias: Tensor | null; // (d)
}

const original = MambaMixer.prototype.forward;

function fusedForward(this: MambaMixer, hidden: Tensor, state: LayerState): Tensor {
  if (hidden.shape[1] !== 1) return original.call(this, hidden, state);
  const m = this as unknown as MixerFields;
  const be = m.backend;
  const xz = be.linear(hidden, m.inProj, m.inProjBias); // (b, 1, 2·dInner)
  const y = be.mambaStep({
    xz,
    convWeight: m.convWeight,
    convBias: m.convBias,
    xProj: m.xProj,
    dtProj: m.dtProj,
    dtBias: m.dtBias,
    A: m.A,
    D: m.D,
    convState: state.conv,
    ssmState: state.ssm,
  }); // (b, 1, dInner)
  return be.linear(y, m.outProj, m.outProjBias); // (b, 1, d)
}

/** Routes Mamba decoding steps through mambaStep (true) or back through the model's code (false). */
export function fusedMambaPreview(enable: boolean): void {
  MambaMixer.prototype.forward = enable ? fusedForward : original;
}
