// The Mamba-2 (SSD) mixer of Mamba2ForCausalLM, as mamba_ssm's Mamba2.forward computes it:
//   in_proj → [z, xBC, Δ]; xBC → causal depthwise conv1d → SiLU → [x, B, C];
//   y = SSD(x, Δ, A, B, C) + D x (Δ = clamp(softplus(Δ + dt_bias)), inside the kernel);
//   gated RMSNorm of y with z, per group of dInner/g channels; out_proj.
// The gated norm follows mamba_ssm (per group), not transformers 5.17 (whole width): they differ
// when n_groups > 1, and checkpoints such as Codestral were trained with the former.

import type { Backend } from '../backends/backend.ts';
import { fail } from '../core/errors.ts';
import type { Tensor } from '../core/tensor.ts';
import type { Mamba2Config } from './config.ts';
import { flatConv, type Grads, type Mixer, type Parameters } from './mixer.ts';
import type { LayerState } from './state.ts';
import { zeroLayerState } from './state.ts';

interface Saved {
  hidden: Tensor; // (b, l, d)
  z: Tensor; // (b, l, dInner)
  xBC: Tensor; // (b, l, convDim)
  dt: Tensor; // (b, l, h)
  x: Tensor; // (b, l, h·p)
  B: Tensor; // (b, l, g·n)
  C: Tensor; // (b, l, g·n)
  y: Tensor; // (b, l, h·p)
  gated: Tensor; // (b, l, dInner)
}

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
    private readonly p: Parameters,
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

  get inProjection(): { weight: Tensor; bias: Tensor | null } {
    return { weight: this.inProj, bias: this.inProjBias };
  }

  forward(hidden: Tensor, state: LayerState): Tensor {
    return this.fromProjection(this.project(hidden), state);
  }

  fromProjection(zxbcdt: Tensor, state: LayerState): Tensor {
    return this.run(zxbcdt, state).out;
  }

  /** Whether the backend's fused step took the last step at this batch size (it writes into next). */
  private readonly fusedAt = new Map<number, boolean>();

  stepsInto(batch: number): boolean {
    return this.fusedAt.get(batch) ?? false;
  }

  blockStep(
    hidden: Tensor,
    residual: Tensor | null,
    norm: Tensor,
    eps: number,
    state: LayerState,
    whole: boolean,
    next?: LayerState,
    squares: Tensor | null = null,
  ): { residual: Tensor; hidden: Tensor; squares: Tensor | null } {
    const be = this.backend;
    const c = this.config;
    // One literal, as MambaMixer.blockStep's (it is recorded once per block and step).
    const fused = be.mamba2BlockStep?.({
      hidden,
      squares,
      residual,
      norm,
      eps,
      inProj: this.inProj,
      inProjBias: this.inProjBias,
      convWeight: this.convWeight,
      convBias: this.convBias,
      dtBias: this.dtBias,
      dtLimit: c.timeStepLimit,
      A: this.A,
      D: this.D,
      gateNorm: this.normWeight,
      normBeforeGate: c.normBeforeGate,
      groups: c.nGroups,
      outProj: this.outProj,
      outProjBias: this.outProjBias,
      convState: state.conv,
      ssmState: state.ssm,
      statesOut: next,
      whole,
    });
    this.fusedAt.set(hidden.shape[1], fused !== null && fused !== undefined);
    if (fused) return fused;
    // The ops: the input must be whole, as they make it (only a backend's fused steps make more).
    const [parts, b, l, d] = hidden.shape;
    if (parts !== 1 || squares)
      fail(`mamba2 blockStep: ${parts} partial sums as input where this backend makes one`);
    if (next) {
      be.copy(next.conv, state.conv);
      be.copy(next.ssm, state.ssm);
    }
    const at = next ?? state;
    const x = be.reshape(hidden, [b, l, d]); // (b, 1, d)
    const added = be.addRmsNormLinear(x, residual, norm, eps, this.inProj, this.inProjBias); // (b, 1, d), (b, 1, ·)
    const out = this.fromProjection(added.out, at); // (b, 1, d)
    return { residual: added.residual, hidden: be.reshape(out, [1, b, l, d]), squares: null }; // (1, b, 1, d)
  }

  forwardSaving(hidden: Tensor, ssm?: Tensor): { out: Tensor; saved: Saved } {
    if (ssm) fail('training from a carried SSM state: only the Mamba (S6) mixer takes one, not Mamba-2');
    const state = zeroLayerState(this.backend, this.config, hidden.shape[0]);
    const { out, ...saved } = this.run(this.project(hidden), state);
    return { out, saved: { hidden, ...saved } };
  }

  private project(hidden: Tensor): Tensor {
    return this.backend.linear(hidden, this.inProj, this.inProjBias); // (b, l, dInner + convDim + h)
  }

  private run(zxbcdt: Tensor, state: LayerState): Omit<Saved, 'hidden'> & { out: Tensor } {
    const be = this.backend;
    const c = this.config;
    const dInner = c.intermediateSize;
    const gn = c.nGroups * c.stateSize;
    const [z, xBC, dt] = be.split(zxbcdt, [dInner, dInner + 2 * gn, c.numHeads]); // (b, l, ·)
    const xBCc = be.causalConv1d(xBC, this.convWeight, this.convBias, state.conv, true); // (b, l, convDim)
    const [x, B, C] = be.split(xBCc, [dInner, gn, gn]); // (b, l, h·p), (b, l, g·n), (b, l, g·n)
    const y = be.ssd(this.ssdArgs(x, dt, B, C, state.ssm)); // (b, l, h·p)
    const gated = be.gatedRmsNorm(
      y,
      z,
      this.normWeight,
      c.layerNormEpsilon,
      dInner / c.nGroups,
      c.normBeforeGate,
    ); // (b, l, dInner)
    const out = be.linear(gated, this.outProj, this.outProjBias); // (b, l, d)
    return { out, z, xBC, dt, x, B, C, y, gated };
  }

  backward(dOut: Tensor, saved: unknown, grads: Grads): Tensor {
    const be = this.backend;
    const ops = be.training;
    const c = this.config;
    const s = saved as Saved;
    const g = (key: string) => grads.get(this.p.name(key))!;
    const gOpt = (key: string) => grads.get(this.p.name(key)) ?? null;
    const state = zeroLayerState(be, c, s.hidden.shape[0]);
    const dGated = ops.linearBackward(dOut, s.gated, this.outProj, {
      weight: g('out_proj.weight'),
      bias: gOpt('out_proj.bias'),
    })!; // (b, l, dInner)
    const norm = ops.gatedRmsNormBackward(
      dGated,
      s.y,
      s.z,
      this.normWeight,
      c.layerNormEpsilon,
      c.intermediateSize / c.nGroups,
      c.normBeforeGate,
      g('norm.weight'),
    ); // dy (b, l, h·p), dz (b, l, dInner)
    const ssd = ops.ssdBackward(this.ssdArgs(s.x, s.dt, s.B, s.C, state.ssm), norm.dy, {
      dtBias: g('dt_bias'),
      ALog: g('A_log'),
      D: g('D'),
    }); // dx (b, l, h·p), ddt (b, l, h), dB and dC (b, l, g·n)
    const dXBCc = ops.concat([ssd.dx, ssd.dB, ssd.dC]); // (b, l, convDim)
    const dXBC = ops.causalConv1dBackward(dXBCc, s.xBC, this.convWeight, this.convBias, true, {
      weight: flatConv(be, g('conv1d.weight')),
      bias: gOpt('conv1d.bias'),
    }); // (b, l, convDim)
    const dZxbcdt = ops.concat([norm.dz, dXBC, ssd.ddt]); // (b, l, dInner + convDim + h)
    return ops.linearBackward(dZxbcdt, s.hidden, this.inProj, {
      weight: g('in_proj.weight'),
      bias: gOpt('in_proj.bias'),
    })!; // (b, l, d)
  }

  private ssdArgs(x: Tensor, dt: Tensor, B: Tensor, C: Tensor, state: Tensor) {
    const c = this.config;
    const { dtBias, A, D } = this;
    return { x, dt, dtBias, dtLimit: c.timeStepLimit, A, B, C, D, state, chunkSize: c.chunkSize };
  }
}
