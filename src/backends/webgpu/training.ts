// The TrainingOps of the webgpu backend: each op records WGSL kernels (kernels/*.ts, each with its
// CPU reference in src/backends/cpu/training.ts) into the backend's command stream, nothing is
// read back. Gradient sums over rows (biases, norm weights, conv taps, the loss, Σ g²) are
// deterministic: partial sums in a fixed order, never float atomics. Temporaries live in a tidy
// scope of their own. Inputs may be views; written parameter gradients must be whole tensors.

import { fail } from '../../core/errors.ts';
import { numel, showShape, type Tensor } from '../../core/tensor.ts';
import { s4dDims } from '../../ssm/s4d.ts';
import type { S4dArgs, SelectiveScanArgs, SsdArgs } from '../backend.ts';
import type {
  AdamWHyper,
  ConvGrads,
  LinearGrads,
  S4dGrads,
  ScanGrads,
  SsdGrads,
  TrainingOps,
} from '../training.ts';
import type { GpuTensor } from './gpuTensor.ts';
import { adamw } from './kernels/adamw.ts';
import { columnSum } from './kernels/columnSum.ts';
import { conv1dBackward } from './kernels/conv1dBackward.ts';
import { crossEntropy } from './kernels/crossEntropy.ts';
import { elementwise } from './kernels/elementwise.ts';
import { embeddingBackward } from './kernels/embeddingBackward.ts';
import { gatedRmsNormBackward } from './kernels/gatedNormBackward.ts';
import { linear } from './kernels/linear.ts';
import { linearGrad } from './kernels/linearGrad.ts';
import { addRmsNormBackward } from './kernels/normBackward.ts';
import { s4dBackward } from './kernels/s4dBackward.ts';
import { selectiveScanBackward } from './kernels/selectiveScanBackward.ts';
import { ssdBackward } from './kernels/ssdBackward.ts';
import { sumOfSquares } from './kernels/sumSquares.ts';
import { transpose } from './kernels/transpose.ts';
import type { WebGpuBackend } from './webgpuBackend.ts';

const gpu = (t: Tensor) => t as GpuTensor;

export class WebGpuTraining implements TrainingOps {
  constructor(readonly backend: WebGpuBackend) {}

  private dense(t: Tensor): GpuTensor {
    return this.backend.dense(gpu(t));
  }

  /** `t` bound as it is, for a kernel that writes it in place. */
  private inPlace(t: Tensor): GpuTensor {
    const d = this.dense(t);
    if (d !== t) fail(`a gradient of ${showShape(t.shape)} is a view that cannot be written in place`);
    return d;
  }

  zero(t: Tensor): void {
    elementwise(this.backend, 'zero', gpu(t), null);
  }

  accumulate(dst: Tensor, src: Tensor): void {
    elementwise(this.backend, 'add', gpu(dst), gpu(src));
  }

  concat(parts: readonly Tensor[]): Tensor {
    if (parts.length === 0) fail('concat: no parts');
    const lead = parts[0].shape.slice(0, -1);
    const sizes = parts.map((p) => p.shape[p.shape.length - 1]);
    for (const p of parts)
      if (p.shape.length !== lead.length + 1 || p.shape.some((e, i) => i < lead.length && e !== lead[i]))
        fail(`concat: part ${showShape(p.shape)} does not match ${showShape(parts[0].shape)}`);
    const out = this.backend.alloc([...lead, sizes.reduce((a, b) => a + b, 0)]); // (…, Σ sizes)
    const views = this.backend.split(out, sizes); // (…, sizes[i]) column views of out
    parts.forEach((p, i) => {
      elementwise(this.backend, 'copy', views[i] as GpuTensor, gpu(p));
    });
    return out;
  }

  crossEntropy(logits: Tensor, targets: Tensor, scale: number): { loss: Tensor; dLogits: Tensor } {
    return crossEntropy(this.backend, this.dense(logits), this.dense(targets), scale);
  }

  /**
   * dx = dy·W runs on the forward's tiled matmul (kernels/linear.ts, which reduces along the
   * contiguous axis of both operands) as linear(dy, Wᵀ), after a transpose of W (n·k values, small
   * against the t·n·k multiply-adds); dyᵀ·x on its own tiled kernel (linearGrad.ts), split over t.
   */
  linearBackward(dy: Tensor, x: Tensor, weight: Tensor, grads: LinearGrads, needDx = true): Tensor | null {
    const be = this.backend;
    const [n, k] = weight.shape;
    const t = numel(dy.shape) / n;
    if (dy.shape[dy.shape.length - 1] !== n || x.shape[x.shape.length - 1] !== k || numel(x.shape) !== t * k)
      fail(
        `linearBackward: dy ${showShape(dy.shape)}, x ${showShape(x.shape)} and weight ${showShape(weight.shape)} disagree`,
      );
    return be.tidy(() => {
      linearGrad(be, gpu(dy), gpu(x), this.inPlace(grads.weight));
      if (grads.bias) columnSum(be, gpu(dy), gpu(grads.bias), true);
      if (!needDx) return null;
      const dx = linear(be, gpu(dy), transpose(be, this.dense(weight)), null); // (t, k)
      return be.reshape(dx, [...dy.shape.slice(0, -1), k]);
    });
  }

  embeddingBackward(ids: Tensor, dy: Tensor, dWeight: Tensor): void {
    if (numel(ids.shape) === 0) return;
    embeddingBackward(this.backend, this.dense(ids), gpu(dy), this.inPlace(dWeight));
  }

  addRmsNormBackward(
    dNormed: Tensor,
    dSum: Tensor | null,
    sum: Tensor,
    weight: Tensor,
    eps: number,
    dWeight: Tensor,
  ): Tensor {
    return addRmsNormBackward(
      this.backend,
      this.dense(dNormed),
      dSum && this.dense(dSum),
      this.dense(sum),
      this.dense(weight),
      eps,
      gpu(dWeight),
    );
  }

  causalConv1dBackward(
    dy: Tensor,
    x: Tensor,
    weight: Tensor,
    bias: Tensor | null,
    silu: boolean,
    grads: ConvGrads,
  ): Tensor {
    return conv1dBackward(
      this.backend,
      this.dense(dy),
      gpu(x),
      this.dense(weight),
      bias && this.dense(bias),
      silu,
      gpu(grads.weight),
      grads.bias && gpu(grads.bias),
    );
  }

  selectiveScanBackward(
    args: SelectiveScanArgs,
    dy: Tensor,
    grads: ScanGrads,
  ): { du: Tensor; dDelta: Tensor; dB: Tensor; dC: Tensor; dz: Tensor } {
    return selectiveScanBackward(this.backend, args, dy, grads);
  }

  ssdBackward(
    args: SsdArgs,
    dy: Tensor,
    grads: SsdGrads,
  ): { dx: Tensor; ddt: Tensor; dB: Tensor; dC: Tensor } {
    return ssdBackward(this.backend, args, dy, grads);
  }

  gatedRmsNormBackward(
    dOut: Tensor,
    y: Tensor,
    z: Tensor,
    weight: Tensor,
    eps: number,
    groupSize: number,
    normBeforeGate: boolean,
    dWeight: Tensor,
  ): { dy: Tensor; dz: Tensor } {
    const c = y.shape[y.shape.length - 1];
    if (c % groupSize !== 0)
      fail(`gatedRmsNormBackward: ${c} channels do not split into groups of ${groupSize}`);
    return gatedRmsNormBackward(
      this.backend,
      this.dense(dOut),
      gpu(y),
      gpu(z),
      this.dense(weight),
      eps,
      groupSize,
      normBeforeGate,
      gpu(dWeight),
    );
  }

  sumOfSquares(tensors: readonly Tensor[]): Tensor {
    return sumOfSquares(this.backend, tensors.map(gpu));
  }

  adamw(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, hyper: AdamWHyper): void {
    adamw(this.backend, gpu(param), gpu(grad), gpu(m), gpu(v), hyper);
  }

  negExp(src: Tensor, dst: Tensor): void {
    elementwise(this.backend, 'negExp', gpu(dst), gpu(src));
  }

  s4dBackward(args: S4dArgs, dOut: Tensor, grads: S4dGrads): { du: Tensor; dz: Tensor } {
    s4dDims(args);
    if (numel(dOut.shape) !== numel(args.u.shape))
      fail(`s4dBackward: dOut ${showShape(dOut.shape)} for u ${showShape(args.u.shape)}`);
    const be = this.backend;
    const dense = { ...args, u: be.dense(gpu(args.u)), z: be.dense(gpu(args.z)) };
    return s4dBackward(be, dense, be.dense(gpu(dOut)), grads);
  }
}
