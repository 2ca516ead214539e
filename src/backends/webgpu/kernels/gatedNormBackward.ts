// WGSL kernel: backward of Mamba-2's gated RMSNorm (norm.ts), per group of `group` channels of a
// row, with r = rsqrt(mean(v²) + eps) and silu'(z) = σ(z)·(1 + z·(1 − σ(z))):
// - norm after the gate: v = y·SiLU(z), out = v·r·w. g = dOut·w, dv = r·g − v·r³·mean(g·v),
//   dy = dv·SiLU(z), dz = dv·y·silu'(z), prod = dOut·v·r.
// - norm before the gate: v = y, out = v·r·w·SiLU(z). g = dOut·SiLU(z)·w, dv as above, dy = dv,
//   dz = dOut·v·r·w·silu'(z), prod = dOut·SiLU(z)·v·r.
// The column sums of prod (columnSum.ts, deterministic) are the weight's gradient.
// One workgroup of 64 threads per (group, row); Σ v² and Σ g·v from tree reductions.
// Bindings: 0 dOut (t, c) · 1 y (t, c) and 2 z (t, c), or the buffers they are column views of
// (rows yStride / zStride apart from yOffset / zOffset) · 3 weight (c) · 4 dy (t, c) · 5 dz (t, c) ·
// 6 prod (t, c) · 7 params {c, group, eps, before, yOffset, yStride, zOffset, zStride,
// rows, rowStride}.
// Grid (rowsX, rowsY, c / group), row = wg.x + wg.y · rowStride (grid.ts rowGrid).
// Reference: CpuTraining.gatedRmsNormBackward.

import { numel } from '../../../core/tensor.ts';
import { type GpuTensor, viewOf } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';
import { columnSum } from './columnSum.ts';
import { rowGrid } from './grid.ts';
import { workgroupReduce } from './workgroupReduce.ts';

const wgsl = /* wgsl */ `
struct Params {
  c: u32, group: u32, eps: f32, before: u32, yOffset: u32, yStride: u32, zOffset: u32, zStride: u32, rows: u32, rowStride: u32,
}
@group(0) @binding(0) var<storage, read> dOut: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> z: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read_write> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dz: array<f32>;
@group(0) @binding(6) var<storage, read_write> prod: array<f32>;
@group(0) @binding(7) var<uniform> params: Params;
${workgroupReduce(64)}

fn sigmoid(v: f32) -> f32 { return 1.0 / (1.0 + exp(-v)); }

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  let row = wg.x + wg.y * params.rowStride;
  if (row >= params.rows) { return; }
  let col0 = wg.z * params.group;
  let base = row * params.c + col0;
  let yBase = params.yOffset + row * params.yStride + col0;
  let zBase = params.zOffset + row * params.zStride + col0;
  let before = params.before != 0u;
  var sumSq = 0.0;
  var dot = 0.0;
  for (var i = lane; i < params.group; i += 64u) {
    let zi = z[zBase + i];
    let gate = zi * sigmoid(zi);
    var v = y[yBase + i];
    var g = dOut[base + i] * weight[col0 + i];
    if (before) { g *= gate; } else { v *= gate; }
    sumSq += v * v;
    dot += g * v;
  }
  sumSq = reduceAll(lane, sumSq, false);
  dot = reduceAll(lane, dot, false);
  let r = inverseSqrt(sumSq / f32(params.group) + params.eps);
  let c = r * r * r * dot / f32(params.group);
  for (var i = lane; i < params.group; i += 64u) {
    let zi = z[zBase + i];
    let s = sigmoid(zi);
    let gate = zi * s;
    let dGate = s * (1.0 + zi * (1.0 - s));
    let yi = y[yBase + i];
    let w = weight[col0 + i];
    let d = dOut[base + i];
    if (before) {
      let dv = r * d * gate * w - yi * c;
      dy[base + i] = dv;
      dz[base + i] = d * yi * r * w * dGate;
      prod[base + i] = d * gate * yi * r;
    } else {
      let v = yi * gate;
      let dv = r * d * w - v * c;
      dy[base + i] = dv * gate;
      dz[base + i] = dv * yi * dGate;
      prod[base + i] = d * v * r;
    }
  }
}`;

/** Returns dy and dz (t, c) and adds the weight's gradient into dWeight (c); dOut dense. */
export function gatedRmsNormBackward(
  be: WebGpuBackend,
  dOut: GpuTensor,
  y: GpuTensor,
  z: GpuTensor,
  weight: GpuTensor,
  eps: number,
  groupSize: number,
  normBeforeGate: boolean,
  dWeight: GpuTensor,
): { dy: GpuTensor; dz: GpuTensor } {
  const c = y.shape[y.shape.length - 1];
  const t = numel(y.shape) / c;
  const dy = be.alloc(y.shape); // (t, c)
  const dz = be.alloc(y.shape); // (t, c)
  be.tidy(() => {
    const prod = be.alloc([t, c]); // (t, c)
    const yv = viewOf(y);
    const zv = viewOf(z);
    const grid = rowGrid(be, t);
    be.dispatch(
      { name: 'gatedRmsNormBackward', wgsl },
      [dOut, yv.base, zv.base, weight, dy, dz, prod],
      [
        c,
        groupSize,
        { f32: eps },
        normBeforeGate ? 1 : 0,
        yv.offset,
        yv.stride,
        zv.offset,
        zv.stride,
        t,
        grid.stride,
      ],
      [...grid.workgroups, c / groupSize],
    );
    columnSum(be, prod, dWeight, true);
  });
  return { dy, dz };
}
