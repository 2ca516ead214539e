// WGSL kernel `scanBackwardReduce`: the deterministic sums that finish the scan and SSD backward.
//   out[r·C + c] (+)= scale[r·C + c] · Σ_m src[r·rowStride + m·mStride + offset + c]
// for r < rows, m < M, c < C (scale only when `scaled`, += only when `accumulate`): per-lane-block
// partials of dB, dC, dΔ; per-chunk partials of dA, dD; dδ over positions for the bias. A thread
// sums a slice of mPer consecutive m in order; when few outputs have a long M (the bias: d
// outputs, M = b·l) a first dispatch writes the sums of ⌈M/mPer⌉ slices (slices, rows, C) and a
// second one sums those: the same order every run. Thread (slice, r, c), grid 1-D (grid1d).
// Bindings: 0 src · 1 scale (rows, C) (any buffer when not scaled) · 2 out (slices, rows, C) rw
// · 3 params {rows, M, C, rowStride, mStride, offset, accumulate, scaled, total, gridStride, mPer}.

import type { GpuTensor } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';
import { grid1d } from './grid.ts';

const reduceWgsl = /* wgsl */ `
struct Params { rows: u32, M: u32, C: u32, rowStride: u32, mStride: u32, offset: u32,
  accumulate: u32, scaled: u32, total: u32, gridStride: u32, mPer: u32 }
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> scale: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let e = id.x + id.y * params.gridStride;
  if (e >= params.total) { return; }
  let outputs = params.rows * params.C;
  let rc = e % outputs;
  let start = (rc / params.C) * params.rowStride + params.offset + rc % params.C;
  let m0 = (e / outputs) * params.mPer;
  let m1 = min(m0 + params.mPer, params.M);
  var s = 0.0;
  for (var m = m0; m < m1; m++) { s += src[start + m * params.mStride]; }
  if (params.scaled != 0u) { s *= scale[e]; }
  if (params.accumulate != 0u) { s += out[e]; }
  out[e] = s;
}`;

export interface ReduceShape {
  rows: number;
  M: number;
  C: number;
  /** Elements between consecutive r (default M·C) and consecutive m (default C). */
  rowStride?: number;
  mStride?: number;
  /** Where column 0 lies after the (r, m) start. */
  offset?: number;
  /** out += instead of out =. */
  accumulate?: boolean;
  /** Multiplies each sum by scale's value at the same place (dA · A for the A_log gradient). */
  scale?: GpuTensor;
}

/** Outputs below which a long M is cut into slices, and the slice length then. */
const FEW_OUTPUTS = 65536;
const SLICE = 64;

export function reduce(be: WebGpuBackend, src: GpuTensor, out: GpuTensor, s: ReduceShape): void {
  const outputs = s.rows * s.C;
  if (outputs < FEW_OUTPUTS && s.M > 2 * SLICE) {
    const slices = Math.ceil(s.M / SLICE);
    const mid = be.alloc([slices, s.rows, s.C]);
    const first = { ...s, accumulate: false, scale: undefined };
    dispatch(be, src, mid, first, SLICE, slices * outputs);
    reduce(be, mid, out, { ...s, M: slices, rowStride: s.C, mStride: outputs, offset: 0 });
    be.release(mid);
    return;
  }
  dispatch(be, src, out, s, s.M, outputs);
}

function dispatch(
  be: WebGpuBackend,
  src: GpuTensor,
  out: GpuTensor,
  s: ReduceShape,
  mPer: number,
  total: number,
) {
  const { workgroups, stride } = grid1d(be, total, 256);
  be.dispatch(
    { name: 'scanBackwardReduce', wgsl: reduceWgsl },
    [src, s.scale ?? src, out],
    [
      s.rows,
      s.M,
      s.C,
      s.rowStride ?? s.M * s.C,
      s.mStride ?? s.C,
      s.offset ?? 0,
      s.accumulate ? 1 : 0,
      s.scale ? 1 : 0,
      total,
      stride,
      mPer,
    ],
    workgroups,
  );
}
