// WGSL kernel: copies a column view (Backend.split's parts are views: rows of `width` values
// starting at element `offset` of a buffer, `rowStride` apart) into a dense (rows, width) tensor,
// for the kernels that do not read views themselves (WebGpuBackend.dense). One thread per output
// element, 256 per workgroup, the grid folded into 2-D when it exceeds the per-dimension limit.
// Bindings: 0 x (the view's whole buffer) · 1 out (rows, width) · 2 params {total, rowStride,
// offset, width, stride}.
// Reference: CpuBackend.split (which copies every part).

import { numel } from '../../../core/tensor.ts';
import { type GpuTensor, viewOf } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';
import { grid1d } from './grid.ts';

const wgsl = /* wgsl */ `
struct Params { total: u32, rowStride: u32, offset: u32, width: u32, stride: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x + id.y * params.stride;
  if (i >= params.total) { return; }
  let row = i / params.width;
  let col = i % params.width;
  out[i] = x[params.offset + row * params.rowStride + col];
}`;

export function copyView(be: WebGpuBackend, t: GpuTensor): GpuTensor {
  const width = t.shape[t.shape.length - 1];
  const total = numel(t.shape);
  const out = be.alloc(t.shape, t.dtype);
  const { base, offset, stride: rowStride } = viewOf(t);
  const { workgroups, stride } = grid1d(be, total, 256);
  be.dispatch({ name: 'copyView', wgsl }, [base, out], [total, rowStride, offset, width, stride], workgroups);
  return out;
}
