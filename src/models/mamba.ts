// The Mamba (S6) mixer of MambaForCausalLM, as mamba_ssm's Mamba.forward and transformers'
// MambaMixer compute it:
//   in_proj → [x, z]; x → causal depthwise conv1d → SiLU → u; x_proj(u) → [Δ (rank R), B, C];
//   Δ = dt_proj(Δ) (bias added inside the scan, with softplus); selective scan; out_proj.
// The scan takes the low-rank Δ and dt_proj's weight: a backend may fuse the projection into it
// (the WebGPU one does when decoding).
//
// Training: forwardSaving keeps the block's activations (never the expanded state: the scan's
// backward recomputes it) and backward runs the same lines in reverse, op by op.

import type { Backend } from '../backends/backend.ts';
import type { Tensor } from '../core/tensor.ts';
import type { MambaConfig } from './config.ts';
import { flatConv, type Grads, type Mixer, type Parameters } from './mixer.ts';
import type { LayerState } from './state.ts';
import { zeroLayerState } from './state.ts';

interface Saved {
  hidden: Tensor; // (b, l, d)
  x: Tensor; // (b, l, dInner)
  z: Tensor; // (b, l, dInner)
  u: Tensor; // (b, l, dInner)
  dtLow: Tensor; // (b, l, R)
  delta: Tensor; // (b, l, dInner)
  B: Tensor; // (b, l, n)
  C: Tensor; // (b, l, n)
  y: Tensor; // (b, l, dInner)
  h0: Tensor; // (b, dInner, n) the initial SSM state
}

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
    private readonly p: Parameters,
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

  get inProjection(): { weight: Tensor; bias: Tensor | null } {
    return { weight: this.inProj, bias: this.inProjBias };
  }

  forward(hidden: Tensor, state: LayerState): Tensor {
    return this.fromProjection(this.backend.linear(hidden, this.inProj, this.inProjBias), state); // (b, l, d)
  }

  blockStep(
    hidden: Tensor,
    residual: Tensor | null,
    norm: Tensor,
    eps: number,
    state: LayerState,
    whole: boolean,
    next?: LayerState,
  ) {
    // One literal: an object spread here cost ~7 µs per block and step in V8.
    return this.backend.mambaBlockStep({
      hidden,
      residual,
      norm,
      eps,
      inProj: this.inProj,
      inProjBias: this.inProjBias,
      convWeight: this.convWeight,
      convBias: this.convBias,
      xProj: this.xProj,
      dtProj: this.dtProj,
      dtBias: this.dtBias,
      A: this.A,
      D: this.D,
      outProj: this.outProj,
      outProjBias: this.outProjBias,
      convState: state.conv,
      ssmState: state.ssm,
      statesOut: next,
      whole,
    }); // (b, 1, d), (P', b, 1, d)
  }

  fromProjection(xz: Tensor, state: LayerState): Tensor {
    const be = this.backend;
    const { intermediateSize: dInner, stateSize: n, timeStepRank: r } = this.config;
    if (xz.shape[1] === 1) {
      // Decoding: conv, x_proj, dt_proj, scan and gate as one op (fused where the backend can).
      const { convWeight, convBias, xProj, dtProj, dtBias, A, D } = this;
      const y = be.mambaStep({
        xz,
        convWeight,
        convBias,
        xProj,
        dtProj,
        dtBias,
        A,
        D,
        convState: state.conv,
        ssmState: state.ssm,
      }); // (b, 1, dInner)
      return be.linear(y, this.outProj, this.outProjBias); // (b, 1, d)
    }
    const [x, z] = be.split(xz, [dInner, dInner]); // (b, l, dInner) each
    const u = be.causalConv1d(x, this.convWeight, this.convBias, state.conv, true); // (b, l, dInner)
    const dbc = be.linear(u, this.xProj, null); // (b, l, R + 2n)
    const [dtLow, B, C] = be.split(dbc, [r, n, n]); // (b, l, R), (b, l, n), (b, l, n)
    // delta is (b, l, R) here, projected by dtProj (dInner, R) to (b, l, dInner) inside the scan
    const y = be.selectiveScan({ ...this.scanArgs(u, dtLow, B, C, z, state.ssm), deltaProj: this.dtProj }); // (b, l, dInner)
    return be.linear(y, this.outProj, this.outProjBias); // (b, l, d)
  }

  forwardSaving(hidden: Tensor, ssm?: Tensor): { out: Tensor; saved: Saved } {
    const be = this.backend;
    const { intermediateSize: dInner, stateSize: n, timeStepRank: r } = this.config;
    const [b] = hidden.shape;
    const state = zeroLayerState(be, this.config, b); // the scan advances state.ssm
    const h0 = be.zeros(state.ssm.shape); // (b, dInner, n) the initial state, kept for backward
    if (ssm) {
      be.training.accumulate(h0, ssm);
      state.ssm = ssm;
    }
    const xz = be.linear(hidden, this.inProj, this.inProjBias); // (b, l, 2·dInner)
    const [x, z] = be.split(xz, [dInner, dInner]); // (b, l, dInner) each
    const u = be.causalConv1d(x, this.convWeight, this.convBias, state.conv, true); // (b, l, dInner)
    const dbc = be.linear(u, this.xProj, null); // (b, l, R + 2n)
    const [dtLow, B, C] = be.split(dbc, [r, n, n]); // (b, l, R), (b, l, n), (b, l, n)
    const delta = be.linear(dtLow, this.dtProj, null); // (b, l, dInner)
    const y = be.selectiveScan(this.scanArgs(u, delta, B, C, z, state.ssm)); // (b, l, dInner)
    const out = be.linear(y, this.outProj, this.outProjBias); // (b, l, d)
    return { out, saved: { hidden, x, z, u, dtLow, delta, B, C, y, h0 } };
  }

  backward(dOut: Tensor, saved: unknown, grads: Grads): Tensor {
    const be = this.backend;
    const ops = be.training;
    const s = saved as Saved;
    const g = (key: string) => grads.get(this.p.name(key))!;
    const gOpt = (key: string) => grads.get(this.p.name(key)) ?? null;
    const dy = ops.linearBackward(dOut, s.y, this.outProj, {
      weight: g('out_proj.weight'),
      bias: gOpt('out_proj.bias'),
    })!; // (b, l, dInner)
    const scan = ops.selectiveScanBackward(this.scanArgs(s.u, s.delta, s.B, s.C, s.z, s.h0), dy, {
      deltaBias: g('dt_proj.bias'),
      ALog: g('A_log'),
      D: g('D'),
    }); // du, dDelta, dz (b, l, dInner); dB, dC (b, l, n)
    const dDtLow = ops.linearBackward(scan.dDelta, s.dtLow, this.dtProj, {
      weight: g('dt_proj.weight'),
      bias: null,
    })!; // (b, l, R)
    const dDbc = ops.concat([dDtLow, scan.dB, scan.dC]); // (b, l, R + 2n)
    const du = ops.linearBackward(dDbc, s.u, this.xProj, { weight: g('x_proj.weight'), bias: null })!; // (b, l, dInner)
    ops.accumulate(du, scan.du);
    const dx = ops.causalConv1dBackward(du, s.x, this.convWeight, this.convBias, true, {
      weight: flatConv(be, g('conv1d.weight')),
      bias: gOpt('conv1d.bias'),
    }); // (b, l, dInner)
    const dxz = ops.concat([dx, scan.dz]); // (b, l, 2·dInner)
    return ops.linearBackward(dxz, s.hidden, this.inProj, {
      weight: g('in_proj.weight'),
      bias: gOpt('in_proj.bias'),
    })!; // (b, l, d)
  }

  private scanArgs(u: Tensor, delta: Tensor, B: Tensor, C: Tensor, z: Tensor, state: Tensor) {
    return { u, delta, deltaBias: this.dtBias, A: this.A, B, C, D: this.D, z, state };
  }
}
