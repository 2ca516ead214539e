// The Mamba block with an S4D layer in place of the selective scan: the Mamba paper's "Mamba
// architecture with an S4 layer" (Table 1), config ssm_layer "s4d":
//   in_proj → [x, z]; x → causal depthwise conv1d → SiLU → u; y = S4D(u) + D u; y · SiLU(z);
//   out_proj.
// S4D (src/ssm/s4d.ts) is time-invariant: Δ = exp(log_dt), B and C are per-channel parameters
// (dInner, n), not functions of u, so x_proj and dt_proj are gone. A = -exp(A_log) starts where
// Mamba's does (S4D-Real, A_log = log(1…n)) and the state (b, dInner, n) has Mamba's shape.
// The backend picks S4D's form: on the CPU the FFT convolution for training and long prompts and
// the recurrence for decoding; on WebGPU the recurrence forward and direct correlations backward.

import type { Backend, S4dArgs } from '../backends/backend.ts';
import { fail } from '../core/errors.ts';
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
  y: Tensor; // (b, l, dInner)
}

export class S4dMixer implements Mixer {
  private readonly inProj: Tensor; // (2·dInner, d)
  private readonly inProjBias: Tensor | null; // (2·dInner)
  private readonly convWeight: Tensor; // (dInner, w)
  private readonly convBias: Tensor | null; // (dInner)
  private readonly logDt: Tensor; // (dInner)
  private readonly A: Tensor; // (dInner, n)
  private readonly B: Tensor; // (dInner, n)
  private readonly C: Tensor; // (dInner, n)
  private readonly D: Tensor; // (dInner)
  private readonly outProj: Tensor; // (d, dInner)
  private readonly outProjBias: Tensor | null; // (d)

  constructor(
    private readonly backend: Backend,
    private readonly config: MambaConfig,
    private readonly p: Parameters,
  ) {
    if (!backend.s4d)
      fail(`the ${backend.name} backend has no S4D kernel yet (ssm_layer "s4d"): use the cpu backend`);
    this.inProj = p.get('in_proj.weight');
    this.inProjBias = p.optional('in_proj.bias');
    this.convWeight = p.convWeight();
    this.convBias = p.optional('conv1d.bias');
    this.logDt = p.get('log_dt');
    this.A = p.negExp('A_log');
    this.B = p.get('B');
    this.C = p.get('C');
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

  fromProjection(xz: Tensor, state: LayerState): Tensor {
    const be = this.backend;
    const dInner = this.config.intermediateSize;
    const [x, z] = be.split(xz, [dInner, dInner]); // (b, l, dInner) each
    const u = be.causalConv1d(x, this.convWeight, this.convBias, state.conv, true); // (b, l, dInner)
    const y = be.s4d!(this.s4dArgs(u, z, state.ssm)); // (b, l, dInner)
    return be.linear(y, this.outProj, this.outProjBias); // (b, l, d)
  }

  forwardSaving(hidden: Tensor, ssm?: Tensor): { out: Tensor; saved: Saved } {
    if (ssm) fail('training from a carried SSM state: only the Mamba (S6) mixer takes one, not S4D');
    const be = this.backend;
    const dInner = this.config.intermediateSize;
    const state = zeroLayerState(be, this.config, hidden.shape[0]);
    const xz = be.linear(hidden, this.inProj, this.inProjBias); // (b, l, 2·dInner)
    const [x, z] = be.split(xz, [dInner, dInner]); // (b, l, dInner) each
    const u = be.causalConv1d(x, this.convWeight, this.convBias, state.conv, true); // (b, l, dInner)
    const y = be.s4d!(this.s4dArgs(u, z, state.ssm)); // (b, l, dInner)
    const out = be.linear(y, this.outProj, this.outProjBias); // (b, l, d)
    return { out, saved: { hidden, x, z, u, y } };
  }

  backward(dOut: Tensor, saved: unknown, grads: Grads): Tensor {
    const be = this.backend;
    const ops = be.training;
    if (!ops.s4dBackward) fail(`the ${be.name} backend has no S4D backward yet: train on the cpu backend`);
    const s = saved as Saved;
    const g = (key: string) => grads.get(this.p.name(key))!;
    const gOpt = (key: string) => grads.get(this.p.name(key)) ?? null;
    const dy = ops.linearBackward(dOut, s.y, this.outProj, {
      weight: g('out_proj.weight'),
      bias: gOpt('out_proj.bias'),
    })!; // (b, l, dInner)
    const state = zeroLayerState(be, this.config, s.hidden.shape[0]); // training starts from zeros
    const { du, dz } = ops.s4dBackward(this.s4dArgs(s.u, s.z, state.ssm), dy, {
      logDt: g('log_dt'),
      ALog: g('A_log'),
      B: g('B'),
      C: g('C'),
      D: g('D'),
    }); // (b, l, dInner) each
    const dx = ops.causalConv1dBackward(du, s.x, this.convWeight, this.convBias, true, {
      weight: flatConv(be, g('conv1d.weight')),
      bias: gOpt('conv1d.bias'),
    }); // (b, l, dInner)
    const dxz = ops.concat([dx, dz]); // (b, l, 2·dInner)
    return ops.linearBackward(dxz, s.hidden, this.inProj, {
      weight: g('in_proj.weight'),
      bias: gOpt('in_proj.bias'),
    })!; // (b, l, d)
  }

  private s4dArgs(u: Tensor, z: Tensor, state: Tensor): S4dArgs {
    return { u, logDt: this.logDt, A: this.A, B: this.B, C: this.C, D: this.D, z, state };
  }
}
