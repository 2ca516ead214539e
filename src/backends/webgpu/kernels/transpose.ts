// WGSL kernel: out (cols, rows) = xᵀ for x (rows, cols), which may be a column view. Lets
// linearBackward compute dx = dy·W on the tiled linear kernel (linear.ts, which reduces along the
// contiguous axis of both operands) as linear(dy, Wᵀ).
// A 16×16 workgroup moves a 32×32 tile through workgroup memory (each thread 2×2 values), so that
// both the reads (along x's rows) and the writes (along out's rows) are coalesced.
// Bindings: 0 x (the buffer it views) · 1 out (cols, rows) · 2 params {rows, cols, xOffset, xStride}.
// Grid (⌈cols/32⌉, ⌈rows/32⌉). Reference: the index map out[c·rows + r] = x[r, c].

import { numel } from '../../../core/tensor.ts';
import { type GpuTensor, viewOf } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';

const wgsl = /* wgsl */ `
struct Params { rows: u32, cols: u32, xOffset: u32, xStride: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

var<workgroup> tile: array<array<f32, 33>, 32>; // [row][col] of the tile, padded against bank conflicts

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let r0 = wg.y * 32u;
  let c0 = wg.x * 32u;
  for (var a = 0u; a < 2u; a++) {
    for (var b = 0u; b < 2u; b++) {
      let r = r0 + lid.y + 16u * a;
      let c = c0 + lid.x + 16u * b;
      if (r < params.rows && c < params.cols) {
        tile[lid.y + 16u * a][lid.x + 16u * b] = x[params.xOffset + r * params.xStride + c];
      }
    }
  }
  workgroupBarrier();
  for (var a = 0u; a < 2u; a++) {
    for (var b = 0u; b < 2u; b++) {
      let c = c0 + lid.y + 16u * a; // a row of out
      let r = r0 + lid.x + 16u * b; // a column of out
      if (r < params.rows && c < params.cols) { out[c * params.rows + r] = tile[lid.x + 16u * b][lid.y + 16u * a]; }
    }
  }
}`;

/** xᵀ (cols, rows) of x viewed as (rows, cols) over its last extent. */
export function transpose(be: WebGpuBackend, x: GpuTensor): GpuTensor {
  const cols = x.shape[x.shape.length - 1];
  const rows = numel(x.shape) / cols;
  const out = be.alloc([cols, rows]);
  const v = viewOf(x);
  be.dispatch(
    { name: 'transpose', wgsl },
    [v.base, out],
    [rows, cols, v.offset, v.stride],
    [Math.ceil(cols / 32), Math.ceil(rows / 32)],
  );
  return out;
}
