// WGSL kernel: one element-wise op over a tensor that may be a column view (the parts of split),
// writing into another that may be one too. The op is a compile-time constant:
//   zero:   dst = 0             (TrainingOps.zero)
//   copy:   dst = src           (TrainingOps.concat writes each part into a column view of its result)
//   add:    dst += src          (TrainingOps.accumulate)
//   negExp: dst = -exp(src)     (TrainingOps.negExp: A from A_log)
// One thread per element, 256 per workgroup, the grid folded into 2-D past the per-dimension limit
// (grid.ts). Element i is (row i / width, column i % width) of both tensors (one row of all the
// values when both are contiguous, so that shapes with the same number of values match).
// Bindings: 0 dst (the buffer it views) read-write · 1 src (the buffer it views; absent for zero) ·
// last params {total, width, stride, dstOffset, dstStride, srcOffset, srcStride}.
// Reference: the loops of CpuTraining's zero, accumulate, concat and negExp.

import { fail } from '../../../core/errors.ts';
import { numel, showShape } from '../../../core/tensor.ts';
import { type GpuTensor, viewOf } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';
import { grid1d } from './grid.ts';

export type ElementOp = 'zero' | 'copy' | 'add' | 'negExp';

const expressions: Record<ElementOp, string> = {
  zero: '0.0',
  copy: 'src[s]',
  add: 'dst[d] + src[s]',
  negExp: '-exp(src[s])',
};

function wgsl(op: ElementOp): string {
  const hasSrc = op !== 'zero';
  return /* wgsl */ `
struct Params { total: u32, width: u32, stride: u32, dstOffset: u32, dstStride: u32, srcOffset: u32, srcStride: u32 }
@group(0) @binding(0) var<storage, read_write> dst: array<f32>;
${hasSrc ? '@group(0) @binding(1) var<storage, read> src: array<f32>;' : ''}
@group(0) @binding(${hasSrc ? 2 : 1}) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x + id.y * params.stride;
  if (i >= params.total) { return; }
  let row = i / params.width;
  let col = i % params.width;
  let d = params.dstOffset + row * params.dstStride + col;
  let s = params.srcOffset + row * params.srcStride + col;
  dst[d] = ${expressions[op]};
}`;
}

const sources = new Map<ElementOp, string>();

/** dst ← op(dst, src) element by element; dst and src may be views (src ignored for zero). */
export function elementwise(be: WebGpuBackend, op: ElementOp, dst: GpuTensor, src: GpuTensor | null): void {
  const total = numel(dst.shape);
  // Rows of the last extent, or one row of every value when both are single runs of memory.
  const flat = dst.contiguous && (src === null || src.contiguous);
  const width = flat ? total : dst.shape[dst.shape.length - 1];
  if (src !== null && (numel(src.shape) !== total || (!flat && src.shape[src.shape.length - 1] !== width)))
    fail(`${op}: ${showShape(src.shape)} does not match ${showShape(dst.shape)}`);
  if (total === 0) return;
  let source = sources.get(op);
  if (source === undefined) {
    source = wgsl(op);
    sources.set(op, source);
  }
  const d = viewOf(dst);
  const s = src === null ? null : viewOf(src);
  if (s !== null && s.base.buffer === d.base.buffer) fail(`${op}: source and destination share a buffer`);
  const { workgroups, stride } = grid1d(be, total, 256);
  be.dispatch(
    { name: op, wgsl: source },
    s === null ? [d.base] : [d.base, s.base],
    [total, width, stride, d.offset, d.stride, s?.offset ?? 0, s?.stride ?? 0],
    workgroups,
  );
}
