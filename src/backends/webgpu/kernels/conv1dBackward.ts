// WGSL kernels: backward of the causal depthwise conv1d (conv1d.ts) from a zero state, in two
// passes (w, the kernel width, is a compile-time constant):
// - `pre` (only with SiLU): recomputes the pre-activation a = bias + Σ_j W[c, j]·x[t − (w−1) + j]
//   and writes da = dy · silu'(a), silu'(a) = σ(a)·(1 + a·(1 − σ(a))). One thread per value,
//   256 per workgroup, grid folded into 2-D (grid.ts). Without SiLU da = dy.
// - `grads`: one thread per (channel, slice of `rows` positions of one sequence) walks its slice:
//   dx[t] = Σ_j W[c, j]·da[t + (w−1) − j] (positions past the end contribute nothing), and sums
//   da[t]·x[t − (w−1) + j] (positions before 0 are the zero state) and da[t] into partials
//   (S, c, w) and (S, c), S = b · slices per sequence, whose column sums (columnSum.ts, in slice
//   order) are added to the weight's and the bias's gradients. Grid (⌈c/64⌉, slices, b).
// Bindings: 0 x (b, l, c), or the buffer it is a column view of (rows xStride apart from xOffset) ·
// 1 weight (c, w) · 2 bias (c) · 3 dy or da (b, l, c) (dense) · then `pre`: 4 da (b, l, c) ·
// 5 params; `grads`: 4 dx (b, l, c) · 5 partialW (S, c, w) · 6 partialB (S, c) · 7 params.
// Params {b, l, c, hasBias, xOffset, xStride, rows, stride}.
// Reference: CpuTraining.causalConv1dBackward.

import { numel } from '../../../core/tensor.ts';
import { type GpuTensor, viewOf } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';
import { columnSum } from './columnSum.ts';
import { grid1d } from './grid.ts';

/** Positions per thread of the `grads` pass. */
export const convBackwardTuning = { rows: 64 };

const head = (w: number) => /* wgsl */ `
const W = ${w}u;
struct Params { b: u32, l: u32, c: u32, hasBias: u32, xOffset: u32, xStride: u32, rows: u32, stride: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;

fn xAt(row: u32, ch: u32) -> f32 { return x[params.xOffset + row * params.xStride + ch]; }`;

const pre = (w: number) => /* wgsl */ `${head(w)}
@group(0) @binding(4) var<storage, read_write> da: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x + id.y * params.stride;
  if (i >= params.b * params.l * params.c) { return; }
  let ch = i % params.c;
  let row = i / params.c; // bi · l + t
  let t = row % params.l;
  var a = 0.0;
  if (params.hasBias != 0u) { a = bias[ch]; }
  for (var j = 0u; j < W; j++) {
    if (t + j >= W - 1u) { a += weight[ch * W + j] * xAt(row + j - (W - 1u), ch); }
  }
  let s = 1.0 / (1.0 + exp(-a));
  da[i] = dy[i] * s * (1.0 + a * (1.0 - s));
}`;

const grads = (w: number) => /* wgsl */ `${head(w)}
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<storage, read_write> partialW: array<f32>;
@group(0) @binding(6) var<storage, read_write> partialB: array<f32>;
@group(0) @binding(7) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let ch = id.x;
  if (ch >= params.c) { return; }
  let bi = id.z;
  let t0 = id.y * params.rows;
  let t1 = min(params.l, t0 + params.rows);
  var taps: array<f32, W>;
  for (var j = 0u; j < W; j++) { taps[j] = weight[ch * W + j]; }
  var accW: array<f32, W>;
  var accB = 0.0;
  for (var t = t0; t < t1; t++) {
    let row = bi * params.l + t;
    var g = 0.0;
    for (var j = 0u; j < W; j++) {
      let src = t + (W - 1u) - j; // the output that input t feeds through tap j
      if (src < params.l) { g += taps[j] * dy[(bi * params.l + src) * params.c + ch]; }
    }
    dx[row * params.c + ch] = g;
    let d = dy[row * params.c + ch];
    accB += d;
    for (var j = 0u; j < W; j++) {
      if (t + j >= W - 1u) { accW[j] += d * xAt(row + j - (W - 1u), ch); }
    }
  }
  let slice = bi * groups.y + id.y;
  for (var j = 0u; j < W; j++) { partialW[(slice * params.c + ch) * W + j] = accW[j]; }
  partialB[slice * params.c + ch] = accB;
}`;

const sources = new Map<string, string>();
function source(kind: 'pre' | 'grads', w: number): string {
  const key = `${kind}${w}`;
  let s = sources.get(key);
  if (s === undefined) {
    s = { pre, grads }[kind](w);
    sources.set(key, s);
  }
  return s;
}

/** dx (b, l, c); adds into gradWeight (c, w) and gradBias (c) (when given). dy dense. */
export function conv1dBackward(
  be: WebGpuBackend,
  dy: GpuTensor,
  x: GpuTensor,
  weight: GpuTensor,
  bias: GpuTensor | null,
  silu: boolean,
  gradWeight: GpuTensor,
  gradBias: GpuTensor | null,
): GpuTensor {
  const [b, l, c] = x.shape;
  const w = weight.shape[1];
  const dx = be.alloc(x.shape); // (b, l, c)
  be.tidy(() => {
    const view = viewOf(x);
    const rows = convBackwardTuning.rows;
    const slices = Math.ceil(l / rows);
    const { workgroups, stride } = grid1d(be, numel(x.shape), 256);
    const params = [b, l, c, bias ? 1 : 0, view.offset, view.stride, rows, stride];
    let da = dy;
    if (silu) {
      da = be.alloc(x.shape); // (b, l, c)
      be.dispatch(
        { name: 'conv1dBackwardPre', wgsl: source('pre', w) },
        [view.base, weight, bias ?? weight, dy, da],
        params,
        workgroups,
      );
    }
    const partialW = be.alloc([b * slices, c * w]); // (S, c·w)
    const partialB = be.alloc([b * slices, c]); // (S, c)
    be.dispatch(
      { name: 'conv1dBackward', wgsl: source('grads', w) },
      [view.base, weight, bias ?? weight, da, dx, partialW, partialB],
      params,
      [Math.ceil(c / 64), slices, b],
    );
    columnSum(be, partialW, gradWeight, true);
    if (gradBias) columnSum(be, partialB, gradBias, true);
  });
  return dx;
}
