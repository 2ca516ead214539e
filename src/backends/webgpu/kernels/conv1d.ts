// WGSL kernels: causal depthwise conv1d over the length axis, + bias, optional SiLU, reading and
// advancing the conv state (the last w−1 inputs of each channel); w is a compile-time constant.
// - `walk` (short sequences, decoding): one thread per (batch, channel) walks the whole length
//   with its window in registers and writes the state back. Grid (⌈c/64⌉, b).
// - `parallel` (long sequences): one thread per output (batch, position, channel) reads its w
//   inputs (from the state before position 0); then `shift` (one thread per (batch, channel))
//   writes the new state from the last w−1 inputs. Grids (⌈c/64⌉, l, b) and (⌈c/64⌉, b).
// Bindings: 0 x (b, l, c), or the buffer it is a column view of (rows xStride apart from
// xOffset) · 1 weight (c, w) · 2 bias (c) · 3 state (b, c, w−1) read-write · 4 y (b, l, c) ·
// 5 params {b, l, c, silu, hasBias, xOffset, xStride}.
// Reference: causalConv1d in src/backends/cpu/conv1d.ts.

import { type GpuTensor, viewOf } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';

/** Lengths above this take the parallel form. */
export const convTuning = { walkMaxLength: 32 };

const head = (w: number) => /* wgsl */ `
const W = ${w}u;
struct Params { b: u32, l: u32, c: u32, silu: u32, hasBias: u32, xOffset: u32, xStride: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> state: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

fn xAt(row: u32, ch: u32) -> f32 { return x[params.xOffset + row * params.xStride + ch]; }`;

const walk = (w: number) => /* wgsl */ `${head(w)}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let ch = id.x;
  let bi = id.y;
  if (ch >= params.c) { return; }
  var window: array<f32, W>;
  var taps: array<f32, W>;
  let s0 = (bi * params.c + ch) * (W - 1u);
  for (var j = 0u; j < W - 1u; j++) { window[j] = state[s0 + j]; }
  for (var j = 0u; j < W; j++) { taps[j] = weight[ch * W + j]; }
  var b0 = 0.0;
  if (params.hasBias != 0u) { b0 = bias[ch]; }
  for (var t = 0u; t < params.l; t++) {
    let at = (bi * params.l + t) * params.c + ch;
    window[W - 1u] = xAt(bi * params.l + t, ch);
    var acc = b0;
    for (var j = 0u; j < W; j++) { acc += taps[j] * window[j]; }
    if (params.silu != 0u) { acc = acc / (1.0 + exp(-acc)); }
    y[at] = acc;
    for (var j = 0u; j < W - 1u; j++) { window[j] = window[j + 1u]; }
  }
  for (var j = 0u; j < W - 1u; j++) { state[s0 + j] = window[j]; }
}`;

const parallel = (w: number) => /* wgsl */ `${head(w)}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let ch = id.x;
  let t = id.y;
  let bi = id.z;
  if (ch >= params.c) { return; }
  let s0 = (bi * params.c + ch) * (W - 1u);
  var acc = 0.0;
  if (params.hasBias != 0u) { acc = bias[ch]; }
  for (var j = 0u; j < W; j++) {
    // Tap j sees position t − (W−1) + j; positions before 0 come from the state.
    let pos = i32(t) - i32(W - 1u) + i32(j);
    var v: f32;
    if (pos >= 0) { v = xAt(bi * params.l + u32(pos), ch); }
    else { v = state[s0 + u32(i32(W - 1u) + pos)]; }
    acc += weight[ch * W + j] * v;
  }
  if (params.silu != 0u) { acc = acc / (1.0 + exp(-acc)); }
  y[(bi * params.l + t) * params.c + ch] = acc;
}`;

const shift = (w: number) => /* wgsl */ `${head(w)}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let ch = id.x;
  let bi = id.y;
  if (ch >= params.c) { return; }
  let s0 = (bi * params.c + ch) * (W - 1u);
  // Ascending j reads state[j + l] before anything overwrites it (only when l < W − 1).
  for (var j = 0u; j < W - 1u; j++) {
    let pos = i32(params.l) - i32(W - 1u) + i32(j);
    var v: f32;
    if (pos >= 0) { v = xAt(bi * params.l + u32(pos), ch); }
    else { v = state[s0 + j + params.l]; }
    state[s0 + j] = v;
  }
}`;

const sources = new Map<string, string>();
function source(kind: 'walk' | 'parallel' | 'shift', w: number): string {
  const key = `${kind}${w}`;
  let s = sources.get(key);
  if (s === undefined) {
    s = { walk, parallel, shift }[kind](w);
    sources.set(key, s);
  }
  return s;
}

export function conv1d(
  be: WebGpuBackend,
  x: GpuTensor,
  weight: GpuTensor,
  bias: GpuTensor | null,
  state: GpuTensor,
  silu: boolean,
): GpuTensor {
  const [b, l, c] = x.shape;
  const w = weight.shape[1];
  const y = be.alloc(x.shape);
  const view = viewOf(x);
  const params = [b, l, c, silu ? 1 : 0, bias ? 1 : 0, view.offset, view.stride];
  const buffers = [view.base, weight, bias ?? weight, state, y];
  const groups = Math.ceil(c / 64);
  if (l <= convTuning.walkMaxLength || l > be.limits.maxComputeWorkgroupsPerDimension) {
    be.dispatch({ name: 'conv1dWalk', wgsl: source('walk', w) }, buffers, params, [groups, b]);
    return y;
  }
  be.dispatch({ name: 'conv1d', wgsl: source('parallel', w) }, buffers, params, [groups, l, b]);
  be.dispatch({ name: 'conv1dShift', wgsl: source('shift', w) }, buffers, params, [groups, b]);
  return y;
}
