// The Mamba (S6) mixer of MambaForCausalLM, as mamba_ssm's Mamba.forward and transformers'
// MambaMixer compute it:
//   in_proj → [x, z]; x → causal depthwise conv1d → SiLU → u; x_proj(u) → [Δ (rank R), B, C];
//   Δ = dt_proj(Δ) (bias added inside the scan, with softplus); selective scan; out_proj.
// The scan takes the low-rank Δ and dt_proj's weight: a backend may fuse the projection into it
// (the WebGPU one does when decoding).

import type { Backend } from '../backends/backend.ts';
import type { Tensor } from '../core/tensor.ts';
import type { MambaConfig } from './config.ts';
import type { Mixer, Parameters } from './mixer.ts';
import type { LayerState } from './state.ts';

export class MambaMixer implements Mixer {
  private readonly inProj: Tensor; // (2·dInner, d)
  private readonly inProjBias: Tensor | null; // (2·dInner)
  private readonly convWeight: Tensor; // (dInner, w)
  private readonly convBias: Tensor | null; // (dInner)
  private readonly xProj: Tensor; // (R + 2n, dInner)
  private readonly dtProj: Tensor; // (dInner, R)
  private readonly dtBias: Tensor; // (dInner)
  private readonly A: Tensor; // (dInner, n)
  private readonly D: Tensor; // (dInner)
  private readonly outProj: Tensor; // (d, dInner)
  private readonly outProjBias: Tensor | null; // (d)

  constructor(
    private readonly backend: Backend,
    private readonly config: MambaConfig,
    p: Parameters,
  ) {
    this.inProj = p.get('in_proj.weight');
    this.inProjBias = p.optional('in_proj.bias');
    this.convWeight = p.convWeight();
    this.convBias = p.optional('conv1d.bias');
    this.xProj = p.get('x_proj.weight');
    this.dtProj = p.get('dt_proj.weight');
    this.dtBias = p.get('dt_proj.bias');
    this.A = p.negExp('A_log');
    this.D = p.get('D');
    this.outProj = p.get('out_proj.weight');
    this.outProjBias = p.optional('out_proj.bias');
  }

  forward(hidden: Tensor, state: LayerState): Tensor {
    const be = this.backend;
    const { intermediateSize: dInner, stateSize: n, timeStepRank: r } = this.config;
    const xz = be.linear(hidden, this.inProj, this.inProjBias); // (b, l, 2·dInner)
    const [x, z] = be.split(xz, [dInner, dInner]); // (b, l, dInner) each
    const u = be.causalConv1d(x, this.convWeight, this.convBias, state.conv, true); // (b, l, dInner)
    const dbc = be.linear(u, this.xProj, null); // (b, l, R + 2n)
    const [dtLow, B, C] = be.split(dbc, [r, n, n]); // (b, l, R), (b, l, n), (b, l, n)
    const y = be.selectiveScan({
      u,
      delta: dtLow, // (b, l, R), projected by dtProj (dInner, R) to (b, l, dInner)
      deltaProj: this.dtProj,
      deltaBias: this.dtBias,
      A: this.A,
      B,
      C,
      D: this.D,
      z,
      state: state.ssm,
    }); // (b, l, dInner)
    return be.linear(y, this.outProj, this.outProjBias); // (b, l, d)
  }
}
