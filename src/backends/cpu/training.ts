// The TrainingOps of the CPU backend: shape checks and dense outputs here, the math in the files
// beside it (linearBackward.ts, normBackward.ts, conv1dBackward.ts, lossAndAdam.ts, and the scan and
// SSD backward). CPU tensors are always dense (split copies its parts), so views need no care.
// Parameter gradients are added into the given tensors; activation gradients are new tensors.

import { fail } from '../../core/errors.ts';
import { numel, sameShape, showShape, type Tensor } from '../../core/tensor.ts';
import { s4dArrays, s4dBackward, s4dDims } from '../../ssm/s4d.ts';
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
import { causalConv1dBackward } from './conv1dBackward.ts';
import type { CpuBackend } from './cpuBackend.ts';
import { type CpuTensor, f32, i32, rowsCols } from './cpuTensor.ts';
import { linearDw, linearDx } from './linearBackward.ts';
import { adamw, crossEntropy } from './lossAndAdam.ts';
import { addRmsNormBackward, gatedRmsNormBackward } from './normBackward.ts';
import { selectiveScanBackward } from './selectiveScanBackward.ts';
import { ssdBackward } from './ssdBackward.ts';

function sameSize(op: string, a: Tensor, b: Tensor): void {
  if (numel(a.shape) !== numel(b.shape))
    fail(`${op}: ${showShape(a.shape)} and ${showShape(b.shape)} differ in size`);
}

function same(op: string, a: Tensor, b: Tensor): void {
  if (!sameShape(a.shape, b.shape))
    fail(`${op}: shapes ${showShape(a.shape)} and ${showShape(b.shape)} differ`);
}

export class CpuTraining implements TrainingOps {
  constructor(readonly backend: CpuBackend) {}

  zero(t: Tensor): void {
    (t as CpuTensor).data.fill(0);
  }

  accumulate(dst: Tensor, src: Tensor): void {
    sameSize('accumulate', dst, src);
    const d = f32(dst);
    const s = f32(src);
    for (let i = 0; i < d.length; i++) d[i] += s[i];
  }

  concat(parts: readonly Tensor[]): Tensor {
    if (parts.length === 0) fail('concat: no parts');
    const lead = parts[0].shape.slice(0, -1);
    for (const part of parts) {
      if (!sameShape(part.shape.slice(0, -1), lead))
        fail(`concat: part ${showShape(part.shape)} does not match ${showShape(parts[0].shape)}`);
    }
    const widths = parts.map((part) => part.shape[part.shape.length - 1]);
    const c = widths.reduce((a, w) => a + w, 0);
    const rows = numel(lead);
    const out = this.backend.zeros([...lead, c]); // (…, Σ sizes)
    const dst = f32(out); // (rows, c)
    let offset = 0;
    parts.forEach((part, p) => {
      const src = f32(part); // (rows, widths[p])
      const w = widths[p];
      for (let row = 0; row < rows; row++) dst.set(src.subarray(row * w, (row + 1) * w), row * c + offset);
      offset += w;
    });
    return out;
  }

  crossEntropy(logits: Tensor, targets: Tensor, scale: number): { loss: Tensor; dLogits: Tensor } {
    const [t, v] = rowsCols(logits.shape);
    if (numel(targets.shape) !== t)
      fail(
        `crossEntropy: targets ${showShape(targets.shape)} do not match logits ${showShape(logits.shape)}`,
      );
    const dLogits = this.backend.zeros(logits.shape); // (t, v)
    const loss = crossEntropy(f32(dLogits), f32(logits), i32(targets), scale, t, v);
    return { loss: this.backend.upload(Float32Array.of(loss), [1]), dLogits };
  }

  linearBackward(dy: Tensor, x: Tensor, weight: Tensor, grads: LinearGrads, needDx = true): Tensor | null {
    const [t, n] = rowsCols(dy.shape);
    const [tx, k] = rowsCols(x.shape);
    if (tx !== t || !sameShape(weight.shape, [n, k]))
      fail(
        `linearBackward: dy ${showShape(dy.shape)}, x ${showShape(x.shape)}, weight ${showShape(weight.shape)}`,
      );
    same('linearBackward (weight gradient)', grads.weight, weight);
    if (grads.bias !== null && numel(grads.bias.shape) !== n)
      fail(`linearBackward: bias gradient ${showShape(grads.bias.shape)} for ${n} outputs`);
    linearDw(f32(grads.weight), grads.bias && f32(grads.bias), f32(dy), f32(x), t, n, k);
    if (!needDx) return null;
    const dx = this.backend.zeros(x.shape); // (t, k)
    linearDx(f32(dx), f32(dy), f32(weight), t, n, k);
    return dx;
  }

  embeddingBackward(ids: Tensor, dy: Tensor, dWeight: Tensor): void {
    const [vocab, d] = dWeight.shape;
    const index = i32(ids);
    if (!sameShape(dy.shape.slice(-1), [d]) || numel(dy.shape) !== index.length * d)
      fail(`embeddingBackward: dy ${showShape(dy.shape)} for ${index.length} ids of width ${d}`);
    const src = f32(dy);
    const dst = f32(dWeight);
    for (let i = 0; i < index.length; i++) {
      const id = index[i];
      if (id < 0 || id >= vocab) fail(`embeddingBackward: id ${id} outside [0, ${vocab})`);
      for (let j = 0; j < d; j++) dst[id * d + j] += src[i * d + j];
    }
  }

  addRmsNormBackward(
    dNormed: Tensor,
    dSum: Tensor | null,
    sum: Tensor,
    weight: Tensor,
    eps: number,
    dWeight: Tensor,
  ): Tensor {
    const [t, d] = rowsCols(sum.shape);
    same('addRmsNormBackward', dNormed, sum);
    if (dSum !== null) same('addRmsNormBackward', dSum, sum);
    const dx = this.backend.zeros(sum.shape); // (t, d)
    const [dn, ds, s] = [f32(dNormed), dSum && f32(dSum), f32(sum)];
    addRmsNormBackward(f32(dx), dn, ds, s, f32(weight), eps, f32(dWeight), t, d);
    return dx;
  }

  causalConv1dBackward(
    dy: Tensor,
    x: Tensor,
    weight: Tensor,
    bias: Tensor | null,
    silu: boolean,
    grads: ConvGrads,
  ): Tensor {
    const [b, l, c] = x.shape;
    const [cw, w] = weight.shape;
    same('causalConv1dBackward', dy, x);
    if (cw !== c) fail(`causalConv1dBackward: weight ${showShape(weight.shape)} for ${c} channels`);
    same('causalConv1dBackward (weight gradient)', grads.weight, weight);
    const dx = this.backend.zeros(x.shape); // (b, l, c)
    const [bi, db] = [bias && f32(bias), grads.bias && f32(grads.bias)];
    causalConv1dBackward(f32(dx), f32(dy), f32(x), f32(weight), bi, silu, f32(grads.weight), db, b, l, c, w);
    return dx;
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
    const [t, c] = rowsCols(y.shape);
    same('gatedRmsNormBackward', dOut, y);
    same('gatedRmsNormBackward', z, y);
    if (!(groupSize > 0) || c % groupSize !== 0)
      fail(`gatedRmsNormBackward: group size ${groupSize} does not divide ${c} channels`);
    const dy = this.backend.zeros(y.shape); // (t, c)
    const dz = this.backend.zeros(y.shape); // (t, c)
    const [o, yv, zv, w, dw] = [f32(dOut), f32(y), f32(z), f32(weight), f32(dWeight)];
    gatedRmsNormBackward(f32(dy), f32(dz), o, yv, zv, w, eps, groupSize, normBeforeGate, dw, t, c);
    return { dy, dz };
  }

  sumOfSquares(tensors: readonly Tensor[]): Tensor {
    let sum = 0;
    for (const t of tensors) {
      const data = f32(t);
      for (let i = 0; i < data.length; i++) sum += data[i] * data[i];
    }
    return this.backend.upload(Float32Array.of(sum), [1]);
  }

  adamw(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, hyper: AdamWHyper): void {
    for (const t of [grad, m, v]) sameSize('adamw', param, t);
    adamw(f32(param), f32(grad), f32(m), f32(v), hyper);
  }

  negExp(src: Tensor, dst: Tensor): void {
    sameSize('negExp', dst, src);
    const s = f32(src);
    const d = f32(dst);
    for (let i = 0; i < d.length; i++) d[i] = -Math.exp(s[i]);
  }

  s4dBackward(args: S4dArgs, dOut: Tensor, grads: S4dGrads): { du: Tensor; dz: Tensor } {
    const dims = s4dDims(args);
    same('s4dBackward', dOut, args.u);
    same('s4dBackward (log_dt gradient)', grads.logDt, args.logDt);
    for (const key of ['B', 'C', 'D'] as const) same(`s4dBackward (${key} gradient)`, grads[key], args[key]);
    same('s4dBackward (A_log gradient)', grads.ALog, args.A);
    const [logDt, ALog, B, C, D] = [grads.logDt, grads.ALog, grads.B, grads.C, grads.D].map(f32);
    const { du, dz } = s4dBackward(s4dArrays(args, f32), f32(dOut), { logDt, ALog, B, C, D }, dims);
    return { du: this.backend.upload(du, args.u.shape), dz: this.backend.upload(dz, args.u.shape) }; // (b, l, d) each
  }
}
