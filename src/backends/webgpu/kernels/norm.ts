// WGSL kernels for the normalisations (references: addRmsNorm and gatedRmsNorm in
// src/backends/cpu/norm.ts).
// - addRmsNorm: residual += x (or residual = x), out = residual · rsqrt(mean(residual²) + eps) · w.
//   One workgroup of 64 threads per row (row = wg.x + wg.y · rowStride: grid.ts's rowGrid folds
//   more rows than one grid dimension holds); each thread sums a strided slice, a tree reduction in
//   workgroup memory gives the row's sum of squares.
//   Bindings: 0 x (t, d) · 1 residual (t, d) read-write · 2 weight (d) · 3 out (t, d) ·
//   4 params {d, add, eps, rows, rowStride}.
// - gatedRmsNorm: per group of g channels of a row, v = y·SiLU(z) (or y), out = v · rsqrt(mean(v²) +
//   eps) · w (· SiLU(z) when the norm comes before the gate). One workgroup per (row, group): grid
//   (rowsX, rowsY, c / group), row = wg.x + wg.y · rowStride.
//   Bindings: 0 y (t, c) · 1 z (t, c), or the buffer it is a column view of (rows zStride apart
//   from zOffset) · 2 weight (c) · 3 out (t, c) ·
//   4 params {c, group, eps, before, zOffset, zStride, rows, rowStride}.

import { numel } from '../../../core/tensor.ts';
import { type GpuTensor, viewOf } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';
import { rowGrid } from './grid.ts';

const reduce = /* wgsl */ `
var<workgroup> partial: array<f32, 64>;
fn sumAll(lane: u32, value: f32) -> f32 {
  partial[lane] = value;
  workgroupBarrier();
  for (var step = 32u; step > 0u; step = step / 2u) {
    if (lane < step) { partial[lane] += partial[lane + step]; }
    workgroupBarrier();
  }
  return partial[0];
}
fn silu(v: f32) -> f32 { return v / (1.0 + exp(-v)); }`;

const addRmsNormWgsl = /* wgsl */ `
struct Params { d: u32, add: u32, eps: f32, rows: u32, rowStride: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> residual: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
${reduce}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  let row = wg.x + wg.y * params.rowStride;
  if (row >= params.rows) { return; }
  let base = row * params.d;
  var sumSq = 0.0;
  for (var i = lane; i < params.d; i += 64u) {
    var v = x[base + i];
    if (params.add != 0u) { v += residual[base + i]; }
    residual[base + i] = v;
    sumSq += v * v;
  }
  let scale = inverseSqrt(sumAll(lane, sumSq) / f32(params.d) + params.eps);
  for (var i = lane; i < params.d; i += 64u) { out[base + i] = residual[base + i] * scale * weight[i]; }
}`;

const gatedWgsl = /* wgsl */ `
struct Params { c: u32, group: u32, eps: f32, before: u32, zOffset: u32, zStride: u32, rows: u32, rowStride: u32 }
@group(0) @binding(0) var<storage, read> y: array<f32>;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
${reduce}

fn gated(i: u32, zi: u32) -> f32 {
  if (params.before != 0u) { return y[i]; }
  return y[i] * silu(z[zi]);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  let row = wg.x + wg.y * params.rowStride;
  if (row >= params.rows) { return; }
  let col0 = wg.z * params.group;
  let base = row * params.c + col0;
  let zBase = params.zOffset + row * params.zStride + col0;
  var sumSq = 0.0;
  for (var i = lane; i < params.group; i += 64u) { let v = gated(base + i, zBase + i); sumSq += v * v; }
  let scale = inverseSqrt(sumAll(lane, sumSq) / f32(params.group) + params.eps);
  for (var i = lane; i < params.group; i += 64u) {
    var v = gated(base + i, zBase + i) * scale * weight[col0 + i];
    if (params.before != 0u) { v *= silu(z[zBase + i]); }
    out[base + i] = v;
  }
}`;

export function addRmsNorm(
  be: WebGpuBackend,
  x: GpuTensor,
  residual: GpuTensor | null,
  weight: GpuTensor,
  eps: number,
): { residual: GpuTensor; normed: GpuTensor } {
  const d = x.shape[x.shape.length - 1];
  const rows = numel(x.shape) / d;
  const sum = residual ?? be.alloc(x.shape);
  const normed = be.alloc(x.shape);
  const grid = rowGrid(be, rows);
  be.dispatch(
    { name: 'addRmsNorm', wgsl: addRmsNormWgsl },
    [x, sum, weight, normed],
    [d, residual ? 1 : 0, { f32: eps }, rows, grid.stride],
    grid.workgroups,
  );
  return { residual: sum, normed };
}

export function gatedRmsNorm(
  be: WebGpuBackend,
  y: GpuTensor,
  z: GpuTensor,
  weight: GpuTensor,
  eps: number,
  groupSize: number,
  normBeforeGate: boolean,
): GpuTensor {
  const c = y.shape[y.shape.length - 1];
  const rows = numel(y.shape) / c;
  const out = be.alloc(y.shape);
  const zv = viewOf(z);
  const grid = rowGrid(be, rows);
  const params = [
    c,
    groupSize,
    { f32: eps },
    normBeforeGate ? 1 : 0,
    zv.offset,
    zv.stride,
    rows,
    grid.stride,
  ];
  const buffers = [y, zv.base, weight, out];
  be.dispatch({ name: 'gatedRmsNorm', wgsl: gatedWgsl }, buffers, params, [
    ...grid.workgroups,
    c / groupSize,
  ]);
  return out;
}
