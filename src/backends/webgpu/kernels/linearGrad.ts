// WGSL kernel: the weight gradient of linear, dW (n, k) += dyᵀ·x = Σ_t dy[t, i] · x[t, j], for
// dy (t, n) and x (t, k) in their own layout (no transposes), either of them a column view.
// Tiled like linear.ts: a 16×16 workgroup computes a T×T tile of dW (T = 128, or 64 when n or k
// is under 128), each thread an (T/16)×(T/16) block in registers: rows i = 4·ty + 64·a + {0..3},
// columns j = 4·tx + 64·b + {0..3}. Per step over t, KT×T tiles of dy and x are staged in
// workgroup memory t-major as vec4 along i and j (dys[kk][i/4], xs[kk][j/4]); both are runs of
// their rows in memory, so the staging loads are coalesced, vec4 when the views allow (V = 4).
// Split over t (the reduction, up to b·l): grid z = S slices of tChunk rows. With S = 1 the tile
// adds into dW; otherwise slice s writes partial sums to scratch (S, n, k) and columnSum.ts adds
// them into dW in slice order (deterministic).
// Bindings: 0 dy (the buffer it views) · 1 x (the buffer it views) · 2 out: dW (n, k) (from
// outOffset) or scratch (S, n, k) · 3 params {t, n, k, tChunk, dyOffset, dyStride, xOffset,
// xStride, outOffset, accumulate} (offsets and strides in V units). Grid (⌈k/T⌉, ⌈n/T⌉, S).
// Reference: linearDw in src/backends/cpu/linearBackward.ts (f32; the order of the additions
// differs).

import { fail } from '../../../core/errors.ts';
import { numel, showShape } from '../../../core/tensor.ts';
import { type GpuTensor, viewOf } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';
import { columnSum } from './columnSum.ts';

const KT = 16;
/**
 * Aim for about `workgroups` workgroups through the split over t, slices of at least `minChunk`
 * rows. 2112 (16 per SM): on the H100 at t = 16384, dW of in_proj (3072 × 768) took 2.9 ms
 * (26 TFLOP/s, as fast as the forward) against 4.9 ms with 132 and 3.0 ms with 1056.
 */
export const linearGradTuning = { workgroups: 2112, minChunk: 256 };
const sources = new Map<string, string>();

function wgsl(tile: 64 | 128, vec: 1 | 4): string {
  const key = `${tile}:${vec}`;
  let source = sources.get(key);
  if (source !== undefined) return source;
  const R = tile / 64;
  const V = vec === 4 ? 'vec4<f32>' : 'f32';
  source = /* wgsl */ `
alias V = ${V};
const T = ${tile}u;
const T4 = ${tile / 4}u;
const KT = ${KT}u;
const R = ${R}u;
const VEC = ${vec}u;
struct Params {
  t: u32, n: u32, k: u32, tChunk: u32, dyOffset: u32, dyStride: u32, xOffset: u32, xStride: u32,
  outOffset: u32, accumulate: u32,
}
@group(0) @binding(0) var<storage, read> dy: array<V>;
@group(0) @binding(1) var<storage, read> x: array<V>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

var<workgroup> dys: array<vec4<f32>, ${(tile / 4) * KT}>; // (KT, T/4): dy[t0 + kk, i0 + i] at [kk][i/4][i%4]
var<workgroup> xs: array<vec4<f32>, ${(tile / 4) * KT}>; // (KT, T/4)

fn comp(v: V, c: u32) -> f32 { ${vec === 4 ? 'return v[c];' : 'return v;'} }

// Stages rows [t0, t0 + KT) (zero at t ≥ tEnd) × columns [c0, c0 + T) (zero at ≥ cols) of dy or x.
fn stage(isDy: bool, t0: u32, tEnd: u32, c0: u32, cols: u32, li: u32) {
  for (var e = li; e < KT * T / VEC; e += 256u) {
    let kk = e / (T / VEC);
    let c = (e % (T / VEC)) * VEC; // column offset in the tile
    var v = V(0.0);
    if (t0 + kk < tEnd && c0 + c < cols) {
      if (isDy) { v = dy[params.dyOffset + (t0 + kk) * params.dyStride + (c0 + c) / VEC]; }
      else { v = x[params.xOffset + (t0 + kk) * params.xStride + (c0 + c) / VEC]; }
    }
    for (var q = 0u; q < VEC; q++) {
      if (isDy) { dys[kk * T4 + (c + q) / 4u][(c + q) % 4u] = comp(v, q); }
      else { xs[kk * T4 + (c + q) / 4u][(c + q) % 4u] = comp(v, q); }
    }
  }
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * T; // along n
  let col0 = wg.x * T; // along k
  var acc: array<array<vec4<f32>, R * 4u>, R>; // [b][a*4 + i] = rows (a, i), columns b*64 + 4·tx + 0..3
  let tBegin = wg.z * params.tChunk;
  let tEnd = min(params.t, tBegin + params.tChunk);
  for (var t0 = tBegin; t0 < tEnd; t0 += KT) {
    stage(true, t0, tEnd, row0, params.n, li);
    stage(false, t0, tEnd, col0, params.k, li);
    workgroupBarrier();
    for (var kk = 0u; kk < KT; kk++) {
      var dr: array<vec4<f32>, R>;
      var xr: array<vec4<f32>, R>;
      for (var a = 0u; a < R; a++) {
        dr[a] = dys[kk * T4 + lid.y + 16u * a];
        xr[a] = xs[kk * T4 + lid.x + 16u * a];
      }
      for (var a = 0u; a < R; a++) {
        for (var i = 0u; i < 4u; i++) {
          for (var b = 0u; b < R; b++) { acc[b][a * 4u + i] += dr[a][i] * xr[b]; }
        }
      }
    }
    workgroupBarrier();
  }
  let base = params.outOffset + wg.z * params.n * params.k;
  for (var a = 0u; a < R; a++) {
    for (var i = 0u; i < 4u; i++) {
      let r = row0 + 64u * a + 4u * lid.y + i;
      if (r >= params.n) { continue; }
      for (var b = 0u; b < R; b++) {
        for (var j = 0u; j < 4u; j++) {
          let c = col0 + 64u * b + 4u * lid.x + j;
          if (c >= params.k) { continue; }
          var v = acc[b][a * 4u + i][j];
          if (params.accumulate != 0u) { v += out[base + r * params.k + c]; }
          out[base + r * params.k + c] = v;
        }
      }
    }
  }
}`;
  sources.set(key, source);
  return source;
}

/** dW (n, k) += dyᵀ·x for dy (…, n) and x (…, k); dW contiguous. */
export function linearGrad(be: WebGpuBackend, dy: GpuTensor, x: GpuTensor, dW: GpuTensor): void {
  const [n, k] = dW.shape;
  const t = numel(dy.shape) / n;
  if (dy.shape[dy.shape.length - 1] !== n || numel(x.shape) !== t * k || !dW.contiguous)
    fail(
      `linearGrad: dy ${showShape(dy.shape)} and x ${showShape(x.shape)} do not give dW ${showShape(dW.shape)}`,
    );
  const dv = viewOf(dy);
  const xv = viewOf(x);
  const ov = viewOf(dW);
  const aligned = [n, k, dv.offset, dv.stride, xv.offset, xv.stride].every((e) => e % 4 === 0);
  const vec = aligned ? 4 : 1;
  const tile = n >= 128 && k >= 128 ? 128 : 64;
  const kernel = { name: `linearGrad${tile}x${vec}`, wgsl: wgsl(tile, vec) };
  const grid = [Math.ceil(k / tile), Math.ceil(n / tile)];
  const { workgroups, minChunk } = linearGradTuning;
  const fit = Math.floor(be.limits.maxStorageBufferBindingSize / (n * k * 4)); // slices the scratch can hold
  const want = Math.max(
    1,
    Math.min(Math.ceil(workgroups / (grid[0] * grid[1])), Math.floor(t / minChunk), fit),
  );
  const tChunk = Math.ceil(t / want / KT) * KT;
  const slices = Math.max(1, Math.ceil(t / tChunk));
  const views = [dv.offset / vec, dv.stride / vec, xv.offset / vec, xv.stride / vec];
  if (slices === 1) {
    be.dispatch(kernel, [dv.base, xv.base, ov.base], [t, n, k, t, ...views, ov.offset, 1], grid);
    return;
  }
  be.tidy(() => {
    const scratch = be.alloc([slices, n * k]); // (S, n·k)
    be.dispatch(kernel, [dv.base, xv.base, scratch], [t, n, k, tChunk, ...views, 0, 0], [...grid, slices]);
    columnSum(be, scratch, dW, true);
  });
}
