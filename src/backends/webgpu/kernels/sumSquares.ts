// WGSL kernel: Σ x² over tensors (gradient-norm clipping), deterministic (no atomics): for each
// tensor, G workgroups of 256 threads each take a chunk of ⌈N/G⌉ values (thread i its values
// i, i + 256, …), reduce them in workgroup memory and write one partial into partials at
// outAt + G's index; the partials of every tensor are then summed in order by columnSum.ts.
// Element i of a tensor is (row i / width, column i % width): tensors may be column views.
// Bindings: 0 x (the buffer it views) · 1 partials (P) · 2 params {total, chunk, width, xOffset,
// xStride, outAt}. Grid (G). Reference: CpuTraining.sumOfSquares.

import { numel } from '../../../core/tensor.ts';
import { type GpuTensor, viewOf } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';
import { columnSum } from './columnSum.ts';
import { workgroupReduce } from './workgroupReduce.ts';

/** Values per workgroup (at least), and the most workgroups per tensor. */
export const sumSquaresTuning = { chunk: 4096, maxGroups: 256 };

const wgsl = /* wgsl */ `
struct Params { total: u32, chunk: u32, width: u32, xOffset: u32, xStride: u32, outAt: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;
${workgroupReduce(256)}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  let begin = wg.x * params.chunk;
  let end = min(params.total, begin + params.chunk);
  var acc = 0.0;
  for (var i = begin + lane; i < end; i += 256u) {
    let v = x[params.xOffset + (i / params.width) * params.xStride + i % params.width];
    acc += v * v;
  }
  acc = reduceAll(lane, acc, false);
  if (lane == 0u) { partials[params.outAt + wg.x] = acc; }
}`;

/** Σ of the squares of every value of every tensor: (1). */
export function sumOfSquares(be: WebGpuBackend, tensors: readonly GpuTensor[]): GpuTensor {
  const out = be.alloc([1]); // (1)
  be.tidy(() => {
    const plan = tensors.map((t) => {
      const total = numel(t.shape);
      const groups = Math.max(
        1,
        Math.min(sumSquaresTuning.maxGroups, Math.ceil(total / sumSquaresTuning.chunk)),
      );
      return { t, total, groups, chunk: Math.ceil(total / groups) };
    });
    const partials = be.alloc([
      Math.max(
        1,
        plan.reduce((s, p) => s + p.groups, 0),
      ),
      1,
    ]); // (P, 1)
    if (tensors.length === 0) be.training.zero(partials);
    let at = 0;
    for (const { t, total, groups, chunk } of plan) {
      const v = viewOf(t);
      const width = t.shape[t.shape.length - 1] ?? 1;
      be.dispatch(
        { name: 'sumSquares', wgsl },
        [v.base, partials],
        [total, chunk, width, v.offset, v.stride, at],
        [groups],
      );
      at += groups;
    }
    columnSum(be, partials, out, false);
  });
  return out;
}
