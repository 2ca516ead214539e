// The CPU backend: tensors are typed arrays in this process, kernels are the plain TypeScript
// functions beside this file, run eagerly. It is the executable spec the GPU backend is tested
// against, and fast enough to run small models (and the 130m ones, slowly) anywhere Node runs.
// Float tensors live in SharedArrayBuffers so that linear() can share work with worker threads.

import { fail } from '../../core/errors.ts';
import { type DType, numel, type Shape, showShape, type Tensor } from '../../core/tensor.ts';
import { CONV_MIN_LENGTH, s4dArrays, s4dConvolution, s4dDims, s4dRecurrent } from '../../ssm/s4d.ts';
import type {
  Backend,
  MambaBlockStepArgs,
  MambaStepArgs,
  S4dArgs,
  SelectiveScanArgs,
  SsdArgs,
} from '../backend.ts';
import { addRmsNormLinearOps, mambaBlockStepOps, mambaStepOps } from '../composedOps.ts';
import { causalConv1d } from './conv1d.ts';
import { CpuTensor, f32, i32, rowsCols } from './cpuTensor.ts';
import { linear } from './matmul.ts';
import { addRmsNorm, gatedRmsNorm } from './norm.ts';
import { selectiveScan } from './selectiveScan.ts';
import { ssdChunked, ssdRecurrent } from './ssd.ts';
import { sharedF32 } from './threads.ts';
import { CpuTraining } from './training.ts';

export class CpuBackend implements Backend {
  readonly name = 'cpu';
  readonly training: CpuTraining = new CpuTraining(this);

  private out(shape: Shape): CpuTensor {
    return new CpuTensor(shape, 'f32', sharedF32(numel(shape)));
  }

  upload(data: Float32Array | Int32Array, shape: Shape): Tensor {
    if (data.length !== numel(shape))
      fail(`cpu backend: ${data.length} values do not fill ${showShape(shape)}`);
    if (data instanceof Int32Array) return new CpuTensor(shape, 'i32', data.slice());
    const copy = sharedF32(data.length);
    copy.set(data);
    return new CpuTensor(shape, 'f32', copy);
  }

  zeros(shape: Shape, dtype: DType = 'f32'): Tensor {
    return dtype === 'f32' ? this.out(shape) : new CpuTensor(shape, 'i32', new Int32Array(numel(shape)));
  }

  zerosTogether(shapes: readonly Shape[]): { parts: Tensor[]; whole: Tensor | null } {
    return { parts: shapes.map((shape) => this.zeros(shape)), whole: null }; // copies of a few arrays are cheap here
  }

  async read(tensor: Tensor): Promise<Float32Array | Int32Array> {
    return (tensor as CpuTensor).data.slice();
  }

  copy(dst: Tensor, src: Tensor): void {
    if (numel(dst.shape) !== numel(src.shape) || dst.dtype !== src.dtype)
      fail(`cpu backend: cannot copy ${showShape(src.shape)} into ${showShape(dst.shape)}`);
    (dst as CpuTensor).data.set((src as CpuTensor).data);
  }

  tidy<T>(fn: () => T): T {
    return fn();
  }

  release(): void {}

  reshape(tensor: Tensor, shape: Shape): Tensor {
    if (numel(shape) !== numel(tensor.shape)) {
      fail(`cpu backend: cannot reshape ${showShape(tensor.shape)} to ${showShape(shape)}`);
    }
    return new CpuTensor(shape, tensor.dtype, (tensor as CpuTensor).data);
  }

  embedding(ids: Tensor, weight: Tensor): Tensor {
    const [, d] = weight.shape;
    const table = f32(weight);
    const index = i32(ids);
    const out = this.out([index.length, d]);
    for (let i = 0; i < index.length; i++)
      out.data.set(table.subarray(index[i] * d, (index[i] + 1) * d), i * d);
    return out;
  }

  linear(x: Tensor, weight: Tensor, bias: Tensor | null): Tensor {
    const [t, k] = rowsCols(x.shape);
    const [n, kw] = weight.shape;
    if (kw !== k)
      fail(`linear: input ${showShape(x.shape)} does not match weight ${showShape(weight.shape)}`);
    const out = this.out([...x.shape.slice(0, -1), n]);
    linear(out.data as Float32Array, f32(x), f32(weight), bias && f32(bias), t, n, k);
    return out;
  }

  split(x: Tensor, sizes: readonly number[]): Tensor[] {
    const [t, c] = rowsCols(x.shape);
    const src = f32(x);
    let offset = 0;
    return sizes.map((size) => {
      const part = this.out([...x.shape.slice(0, -1), size]);
      const dst = part.data as Float32Array;
      for (let row = 0; row < t; row++) {
        dst.set(src.subarray(row * c + offset, row * c + offset + size), row * size);
      }
      offset += size;
      return part;
    });
  }

  addRmsNorm(x: Tensor, residual: Tensor | null, weight: Tensor, eps: number) {
    const [t, d] = rowsCols(x.shape);
    const sum = residual ?? this.out(x.shape);
    const normed = this.out(x.shape);
    addRmsNorm(f32(normed), f32(sum), f32(x), residual !== null, f32(weight), eps, t, d);
    return { residual: sum, normed };
  }

  causalConv1d(x: Tensor, weight: Tensor, bias: Tensor | null, state: Tensor, silu: boolean): Tensor {
    const [b, l, c] = x.shape;
    const y = this.out(x.shape);
    causalConv1d(f32(y), f32(x), f32(weight), bias && f32(bias), f32(state), silu, b, l, c, weight.shape[1]);
    return y;
  }

  selectiveScan(args: SelectiveScanArgs): Tensor {
    const [b, l, d] = args.u.shape;
    const n = args.A.shape[1];
    const y = this.out(args.u.shape);
    const { u, deltaBias, A, B, C, D, z, state } = args;
    const delta = args.deltaProj ? this.linear(args.delta, args.deltaProj, null) : args.delta; // (b, l, d)
    selectiveScan(
      {
        y: f32(y),
        u: f32(u),
        delta: f32(delta),
        deltaBias: f32(deltaBias),
        A: f32(A),
        B: f32(B),
        C: f32(C),
        D: f32(D),
        z: f32(z),
        state: f32(state),
      },
      b,
      l,
      d,
      n,
    );
    return y;
  }

  ssd(args: SsdArgs): Tensor {
    const [b, l, hp] = args.x.shape;
    const [, h, p, n] = args.state.shape;
    const g = args.B.shape[2] / n;
    if (h * p !== hp)
      fail(`ssd: x ${showShape(args.x.shape)} does not match state ${showShape(args.state.shape)}`);
    const y = this.out(args.x.shape);
    const { x, dt, dtBias, A, B, C, D, state } = args;
    (l === 1 ? ssdRecurrent : ssdChunked)(
      {
        y: f32(y),
        x: f32(x),
        dt: f32(dt),
        dtBias: f32(dtBias),
        A: f32(A),
        B: f32(B),
        C: f32(C),
        D: f32(D),
        state: f32(state),
      },
      { b, l, h, p, g, n, q: args.chunkSize, dtMin: args.dtLimit[0], dtMax: args.dtLimit[1] },
    );
    return y;
  }

  gatedRmsNorm(
    y: Tensor,
    z: Tensor,
    weight: Tensor,
    eps: number,
    groupSize: number,
    normBeforeGate: boolean,
  ) {
    const [t, c] = rowsCols(y.shape);
    const out = this.out(y.shape);
    gatedRmsNorm(f32(out), f32(y), f32(z), f32(weight), eps, groupSize, normBeforeGate, t, c);
    return out;
  }

  argmax(x: Tensor): Tensor {
    const [t, c] = rowsCols(x.shape);
    const values = f32(x);
    const ids = new Int32Array(t); // (…)
    for (let row = 0; row < t; row++) {
      const at = row * c;
      let best = at;
      for (let i = at + 1; i < at + c; i++) if (values[i] > values[best]) best = i;
      ids[row] = best - at;
    }
    return new CpuTensor(x.shape.slice(0, -1), 'i32', ids);
  }

  mambaStep(args: MambaStepArgs): Tensor {
    return mambaStepOps(this, args);
  }

  mambaBlockStep(args: MambaBlockStepArgs): { residual: Tensor; hidden: Tensor } {
    return mambaBlockStepOps(this, args);
  }

  addRmsNormLinear(
    x: Tensor,
    residual: Tensor | null,
    normWeight: Tensor,
    eps: number,
    weight: Tensor,
    bias: Tensor | null,
  ) {
    return addRmsNormLinearOps(this, x, residual, normWeight, eps, weight, bias);
  }

  s4d(args: S4dArgs): Tensor {
    const dims = s4dDims(args);
    const out = this.out(args.u.shape); // (b, l, d)
    const form = dims.l >= CONV_MIN_LENGTH ? s4dConvolution : s4dRecurrent;
    form(f32(out), f32(args.state), s4dArrays(args, f32), dims);
    return out;
  }
}
