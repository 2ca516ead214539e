// WGSL kernel: backward of addRmsNorm (normed = s · r · w with r = rsqrt(mean(s²) + eps), s the
// residual sum). Per row: g = dNormed · w, dS = r·g − s · r³ · mean(g·s) (+ dSum, the gradient
// reaching s from later layers), and prod = dNormed · s · r, whose column sums (columnSum.ts,
// deterministic) are the weight's gradient.
// One workgroup of 64 threads per row, each thread a strided slice of the d channels; Σ s² and
// Σ g·s come from tree reductions in workgroup memory.
// Bindings: 0 dNormed (t, d) · 1 dSum (t, d) (any buffer when absent) · 2 sum (t, d) · 3 weight (d) ·
// 4 dS (t, d) · 5 prod (t, d) · 6 params {t, d, hasDSum, eps, rowsX}. Grid (rowsX, ⌈t/rowsX⌉).
// Reference: CpuTraining.addRmsNormBackward.

import { numel } from '../../../core/tensor.ts';
import type { GpuTensor } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';
import { columnSum } from './columnSum.ts';
import { workgroupReduce } from './workgroupReduce.ts';

const wgsl = /* wgsl */ `
struct Params { t: u32, d: u32, hasDSum: u32, eps: f32, rowsX: u32 }
@group(0) @binding(0) var<storage, read> dNormed: array<f32>;
@group(0) @binding(1) var<storage, read> dSum: array<f32>;
@group(0) @binding(2) var<storage, read> sum: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read_write> dS: array<f32>;
@group(0) @binding(5) var<storage, read_write> prod: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;
${workgroupReduce(64)}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  let row = wg.x + wg.y * params.rowsX;
  if (row >= params.t) { return; } // uniform across the workgroup
  let base = row * params.d;
  var sumSq = 0.0;
  var dot = 0.0;
  for (var i = lane; i < params.d; i += 64u) {
    let s = sum[base + i];
    sumSq += s * s;
    dot += dNormed[base + i] * weight[i] * s;
  }
  sumSq = reduceAll(lane, sumSq, false);
  dot = reduceAll(lane, dot, false);
  let r = inverseSqrt(sumSq / f32(params.d) + params.eps);
  let c = r * r * r * dot / f32(params.d);
  for (var i = lane; i < params.d; i += 64u) {
    let s = sum[base + i];
    let dn = dNormed[base + i];
    var v = r * dn * weight[i] - s * c;
    if (params.hasDSum != 0u) { v += dSum[base + i]; }
    dS[base + i] = v;
    prod[base + i] = dn * s * r;
  }
}`;

/** Returns dS (t, d) and adds Σ_t dNormed · s · r into dWeight (d); inputs dense. */
export function addRmsNormBackward(
  be: WebGpuBackend,
  dNormed: GpuTensor,
  dSum: GpuTensor | null,
  sum: GpuTensor,
  weight: GpuTensor,
  eps: number,
  dWeight: GpuTensor,
): GpuTensor {
  const d = sum.shape[sum.shape.length - 1];
  const t = numel(sum.shape) / d;
  const dS = be.alloc(sum.shape); // (t, d)
  be.tidy(() => {
    const prod = be.alloc([t, d]); // (t, d)
    const rowsX = Math.min(t, be.limits.maxComputeWorkgroupsPerDimension);
    be.dispatch(
      { name: 'addRmsNormBackward', wgsl },
      [dNormed, dSum ?? dNormed, sum, weight, dS, prod],
      [t, d, dSum ? 1 : 0, { f32: eps }, rowsX],
      [rowsX, Math.ceil(t / rowsX)],
    );
    columnSum(be, prod, dWeight, true);
  });
  return dS;
}
