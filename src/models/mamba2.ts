// The Mamba-2 (SSD) mixer of Mamba2ForCausalLM, as mamba_ssm's Mamba2.forward computes it:
//   in_proj → [z, xBC, Δ]; xBC → causal depthwise conv1d → SiLU → [x, B, C];
//   y = SSD(x, Δ, A, B, C) + D x (Δ = clamp(softplus(Δ + dt_bias)), inside the kernel);
//   gated RMSNorm of y with z, per group of dInner/g channels; out_proj.
// The gated norm follows mamba_ssm (per group), not transformers 5.17 (whole width): they differ
// when n_groups > 1, and checkpoints such as Codestral were trained with the former.

import type { Backend } from '../backends/backend.ts';
import type { Tensor } from '../core/tensor.ts';
import type { Mamba2Config } from './config.ts';
import type { Mixer, Parameters } from './mixer.ts';
import type { LayerState } from './state.ts';

export class Mamba2Mixer implements Mixer {
  private readonly inProj: Tensor; // (dInner + convDim + h, d)
  private readonly inProjBias: Tensor | null; // (dInner + convDim + h)
  private readonly convWeight: Tensor; // (convDim, w)
  private readonly convBias: Tensor | null; // (convDim)
  private readonly dtBias: Tensor; // (h)
  private readonly A: Tensor; // (h)
  private readonly D: Tensor; // (h)
  private readonly normWeight: Tensor; // (dInner)
  private readonly outProj: Tensor; // (d, dInner)
  private readonly outProjBias: Tensor | null; // (d)

  constructor(
    private readonly backend: Backend,
    private readonly config: Mamba2Config,
    p: Parameters,
  ) {
    this.inProj = p.get('in_proj.weight');
    this.inProjBias = p.optional('in_proj.bias');
    this.convWeight = p.convWeight();
    this.convBias = p.optional('conv1d.bias');
    this.dtBias = p.get('dt_bias');
    this.A = p.negExp('A_log');
    this.D = p.get('D');
    this.normWeight = p.get('norm.weight');
    this.outProj = p.get('out_proj.weight');
    this.outProjBias = p.optional('out_proj.bias');
  }

  forward(hidden: Tensor, state: LayerState): Tensor {
    const be = this.backend;
    const c = this.config;
    const dInner = c.intermediateSize;
    const gn = c.nGroups * c.stateSize;
    const zxbcdt = be.linear(hidden, this.inProj, this.inProjBias); // (b, l, dInner + convDim + h)
    const [z, xBC, dt] = be.split(zxbcdt, [dInner, dInner + 2 * gn, c.numHeads]); // (b, l, ·)
    const xBCc = be.causalConv1d(xBC, this.convWeight, this.convBias, state.conv, true); // (b, l, convDim)
    const [x, B, C] = be.split(xBCc, [dInner, gn, gn]); // (b, l, h·p), (b, l, g·n), (b, l, g·n)
    const y = be.ssd({
      x,
      dt,
      dtBias: this.dtBias,
      dtLimit: c.timeStepLimit,
      A: this.A,
      B,
      C,
      D: this.D,
      state: state.ssm,
      chunkSize: c.chunkSize,
    }); // (b, l, h·p)
    const gated = be.gatedRmsNorm(
      y,
      z,
      this.normWeight,
      c.layerNormEpsilon,
      dInner / c.nGroups,
      c.normBeforeGate,
    ); // (b, l, dInner)
    return be.linear(gated, this.outProj, this.outProjBias); // (b, l, d)
  }
}
