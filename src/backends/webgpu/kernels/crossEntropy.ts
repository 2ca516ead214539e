// WGSL kernel: cross-entropy of logits (t, v) against targets (t) (a target outside [0, v), such
// as -1, is ignored): per row, lse = log Σ exp(logits), rowLoss = scale · (lse − logits[target])
// and dLogits = scale · (softmax − onehot(target)), both zero for an ignored row. The loss (1) is
// the sum of rowLoss (columnSum.ts, deterministic).
// One workgroup of 256 threads per row, each thread a strided slice of the vocabulary; the row's
// max and Σ exp come from tree reductions in workgroup memory (three reads of the row in all).
// Bindings: 0 logits (t, v) · 1 targets (t) i32 · 2 dLogits (t, v) · 3 rowLoss (t) ·
// 4 params {t, v, scale, rowsX}. Grid (rowsX, ⌈t/rowsX⌉): row = wg.x + wg.y · rowsX.
// Reference: CpuTraining.crossEntropy (f32 here; the order of the additions differs).

import { fail } from '../../../core/errors.ts';
import { showShape } from '../../../core/tensor.ts';
import type { GpuTensor } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';
import { columnSum } from './columnSum.ts';
import { workgroupReduce } from './workgroupReduce.ts';

const wgsl = /* wgsl */ `
struct Params { t: u32, v: u32, scale: f32, rowsX: u32 }
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<i32>;
@group(0) @binding(2) var<storage, read_write> dLogits: array<f32>;
@group(0) @binding(3) var<storage, read_write> rowLoss: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

${workgroupReduce(256)}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  let row = wg.x + wg.y * params.rowsX;
  if (row >= params.t) { return; } // uniform across the workgroup
  let base = row * params.v;
  var m = -3.0e38;
  for (var i = lane; i < params.v; i += 256u) { m = max(m, logits[base + i]); }
  m = reduceAll(lane, m, true);
  var s = 0.0;
  for (var i = lane; i < params.v; i += 256u) { s += exp(logits[base + i] - m); }
  s = reduceAll(lane, s, false);
  let label = targets[row];
  let counted = label >= 0 && u32(label) < params.v;
  var scale = 0.0;
  if (counted) { scale = params.scale; }
  let inv = 1.0 / s;
  for (var i = lane; i < params.v; i += 256u) {
    var g = exp(logits[base + i] - m) * inv;
    if (counted && i == u32(label)) { g -= 1.0; }
    dLogits[base + i] = scale * g;
  }
  if (lane == 0u) {
    var loss = 0.0;
    if (counted) { loss = params.scale * (m + log(s) - logits[base + u32(label)]); }
    rowLoss[row] = loss;
  }
}`;

export function crossEntropy(
  be: WebGpuBackend,
  logits: GpuTensor,
  targets: GpuTensor,
  scale: number,
): { loss: GpuTensor; dLogits: GpuTensor } {
  const [t, v] = logits.shape;
  if (
    logits.shape.length !== 2 ||
    targets.shape.length !== 1 ||
    targets.shape[0] !== t ||
    targets.dtype !== 'i32'
  )
    fail(
      `crossEntropy: logits ${showShape(logits.shape)} need i32 targets (${t}), got ${showShape(targets.shape)}`,
    );
  const dLogits = be.alloc([t, v]); // (t, v)
  const loss = be.alloc([1]); // (1)
  be.tidy(() => {
    const rowLoss = be.alloc([t, 1]); // (t, 1)
    const rowsX = Math.min(t, be.limits.maxComputeWorkgroupsPerDimension);
    be.dispatch(
      { name: 'crossEntropy', wgsl },
      [logits, targets, dLogits, rowLoss],
      [t, v, { f32: scale }, rowsX],
      [rowsX, Math.ceil(t / rowsX)],
    );
    columnSum(be, rowLoss, loss, false);
  });
  return { loss, dLogits };
}
