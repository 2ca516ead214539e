// WGSL kernel: one AdamW step in place, as torch.optim.AdamW computes it (decoupled weight decay):
//   g = grad · gradScale; p ← p · (1 − lr·wd); m ← β1·m + (1 − β1)·g; v ← β2·v + (1 − β2)·g²;
//   p ← p − (lr / bc1) · m / (sqrt(v) / sqrt(bc2) + eps), with bc1 = 1 − β1^step, bc2 = 1 − β2^step
// (the bias corrections are computed on the host in float64).
// One thread per value, 256 per workgroup, the grid folded into 2-D past the per-dimension limit.
// Bindings: 0 param (N) · 1 grad (N) · 2 m (N) · 3 v (N), all contiguous · 4 params {total,
// stride, beta1, beta2, eps, decay, stepSize, sqrtBc2, gradScale}.
// Reference: CpuTraining.adamw.

import { fail } from '../../../core/errors.ts';
import { numel } from '../../../core/tensor.ts';
import type { AdamWHyper } from '../../training.ts';
import type { GpuTensor } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';
import { grid1d } from './grid.ts';

const wgsl = /* wgsl */ `
struct Params {
  total: u32, stride: u32, beta1: f32, beta2: f32, eps: f32, decay: f32, stepSize: f32,
  sqrtBc2: f32, gradScale: f32,
}
@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x + id.y * params.stride;
  if (i >= params.total) { return; }
  let g = grad[i] * params.gradScale;
  let p = param[i] * params.decay;
  let mi = params.beta1 * m[i] + (1.0 - params.beta1) * g;
  let vi = params.beta2 * v[i] + (1.0 - params.beta2) * g * g;
  m[i] = mi;
  v[i] = vi;
  param[i] = p - params.stepSize * mi / (sqrt(vi) / params.sqrtBc2 + params.eps);
}`;

export function adamw(
  be: WebGpuBackend,
  param: GpuTensor,
  grad: GpuTensor,
  m: GpuTensor,
  v: GpuTensor,
  hyper: AdamWHyper,
): void {
  const total = numel(param.shape);
  for (const t of [grad, m, v])
    if (numel(t.shape) !== total) fail('adamw: parameter, gradient and moments differ in size');
  const { lr, beta1, beta2, eps, weightDecay, step, gradScale } = hyper;
  const { workgroups, stride } = grid1d(be, total, 256);
  const params = [
    total,
    stride,
    { f32: beta1 },
    { f32: beta2 },
    { f32: eps },
    { f32: 1 - lr * weightDecay },
    { f32: lr / (1 - beta1 ** step) },
    { f32: Math.sqrt(1 - beta2 ** step) },
    { f32: gradScale },
  ];
  const [p, g, mm, vv] = [param, grad, m, v].map((t) => be.dense(t));
  if (p !== param || mm !== m || vv !== v) fail('adamw: parameter and moments must be bindable in place');
  be.dispatch({ name: 'adamw', wgsl }, [p, g, mm, vv], params, workgroups);
}
