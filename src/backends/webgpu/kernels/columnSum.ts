// WGSL kernel: out (cols) += Σ_rows x (rows, cols), or out = that sum: the bias gradient of
// linear (Σ_t dy), the weight gradients of the norms (Σ_t of per-row products), the sums of
// per-slice partials (conv1d) and of per-row losses (cross-entropy). Deterministic: every column is
// summed in the same order on every run (no atomics).
// Two passes when the rows are many: pass 1, grid (⌈cols/64⌉, S), thread (column, slice s) sums
// rows [s·R, (s+1)·R) in order into partial (S, cols); pass 2, grid (⌈cols/64⌉), sums the S
// partials in slice order into out. With S = 1 the first pass writes out directly.
// Bindings: 0 x (the buffer it views: rows xStride apart from xOffset) · 1 out (the buffer it
// views, from outOffset) read-write · 2 params {rows, cols, rowsPerSlice, xOffset, xStride,
// outOffset, accumulate}.
// Reference: the column sums of CpuTraining (f32; the order of the additions differs).

import { fail } from '../../../core/errors.ts';
import { numel, showShape } from '../../../core/tensor.ts';
import { type GpuTensor, viewOf } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';

/** Pass 1 aims at about `workgroups` workgroups, with slices of at least `minRows` rows. */
export const columnSumTuning = { workgroups: 1024, minRows: 32 };

const wgsl = /* wgsl */ `
struct Params { rows: u32, cols: u32, rowsPerSlice: u32, xOffset: u32, xStride: u32, outOffset: u32, accumulate: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let col = id.x;
  if (col >= params.cols) { return; }
  let r0 = id.y * params.rowsPerSlice;
  let r1 = min(params.rows, r0 + params.rowsPerSlice);
  var acc = 0.0;
  for (var r = r0; r < r1; r++) { acc += x[params.xOffset + r * params.xStride + col]; }
  let at = params.outOffset + id.y * params.cols + col;
  if (params.accumulate != 0u) { acc += out[at]; }
  out[at] = acc;
}`;

const kernel = { name: 'columnSum', wgsl };

/** out (cols) += (or =) the column sums of x viewed as (rows, cols); out is contiguous. */
export function columnSum(be: WebGpuBackend, x: GpuTensor, out: GpuTensor, accumulate: boolean): void {
  if (!out.contiguous) fail(`columnSum: the sums need a whole tensor, not a view of ${showShape(out.shape)}`);
  const cols = x.shape[x.shape.length - 1];
  const rows = numel(x.shape) / cols;
  const groups = Math.ceil(cols / 64);
  const { workgroups, minRows } = columnSumTuning;
  const slices = Math.max(1, Math.min(Math.ceil(workgroups / groups), Math.floor(rows / minRows)));
  const rowsPerSlice = Math.ceil(rows / slices);
  const xv = viewOf(x);
  const ov = viewOf(out);
  if (slices === 1) {
    const params = [rows, cols, rows, xv.offset, xv.stride, ov.offset, accumulate ? 1 : 0];
    be.dispatch(kernel, [xv.base, ov.base], params, [groups, 1]);
    return;
  }
  const used = Math.ceil(rows / rowsPerSlice);
  const partial = be.alloc([used, cols]); // (S, cols)
  be.dispatch(
    kernel,
    [xv.base, partial],
    [rows, cols, rowsPerSlice, xv.offset, xv.stride, 0, 0],
    [groups, used],
  );
  be.dispatch(
    kernel,
    [partial, ov.base],
    [used, cols, used, 0, cols, ov.offset, accumulate ? 1 : 0],
    [groups, 1],
  );
}
