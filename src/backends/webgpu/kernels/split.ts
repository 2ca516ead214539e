// WGSL kernel: copies columns [offset, offset + width) of a (rows, c) tensor into a (rows, width)
// tensor: one part of Backend.split. One thread per output element, 256 per workgroup, the grid
// folded into 2-D when it exceeds the per-dimension limit.
// Bindings: 0 x (rows, c) · 1 out (rows, width) · 2 params {total, c, offset, width, stride}.
// Reference: CpuBackend.split.

import { numel } from '../../../core/tensor.ts';
import type { GpuTensor } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';
import { grid1d } from './grid.ts';

const wgsl = /* wgsl */ `
struct Params { total: u32, c: u32, offset: u32, width: u32, stride: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x + id.y * params.stride;
  if (i >= params.total) { return; }
  let row = i / params.width;
  let col = i % params.width;
  out[i] = x[row * params.c + params.offset + col];
}`;

export function split(be: WebGpuBackend, x: GpuTensor, sizes: readonly number[]): GpuTensor[] {
  const c = x.shape[x.shape.length - 1];
  const rows = numel(x.shape) / c;
  let offset = 0;
  return sizes.map((width) => {
    const out = be.alloc([...x.shape.slice(0, -1), width]);
    const { workgroups, stride } = grid1d(be, rows * width, 256);
    be.dispatch({ name: 'split', wgsl }, [x, out], [rows * width, c, offset, width, stride], workgroups);
    offset += width;
    return out;
  });
}
