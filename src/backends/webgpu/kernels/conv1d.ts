// WGSL kernel: causal depthwise conv1d over the length axis, + bias, optional SiLU, reading and
// advancing the conv state (the last w−1 inputs of each channel). One thread per (batch, channel)
// walks the whole length with its window in registers (w is a compile-time constant).
// Bindings: 0 x (b, l, c) · 1 weight (c, w) · 2 bias (c) · 3 state (b, c, w−1) read-write ·
// 4 y (b, l, c) · 5 params {b, l, c, silu, hasBias}.
// Reference: causalConv1d in src/backends/cpu/conv1d.ts.

import type { GpuTensor } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';

const wgsl = (w: number) => /* wgsl */ `
const W = ${w}u;
struct Params { b: u32, l: u32, c: u32, silu: u32, hasBias: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> state: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

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
    window[W - 1u] = x[at];
    var acc = b0;
    for (var j = 0u; j < W; j++) { acc += taps[j] * window[j]; }
    if (params.silu != 0u) { acc = acc / (1.0 + exp(-acc)); }
    y[at] = acc;
    for (var j = 0u; j < W - 1u; j++) { window[j] = window[j + 1u]; }
  }
  for (var j = 0u; j < W - 1u; j++) { state[s0 + j] = window[j]; }
}`;

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
  const params = [b, l, c, silu ? 1 : 0, bias ? 1 : 0];
  be.dispatch({ name: 'conv1d', wgsl: wgsl(w) }, [x, weight, bias ?? weight, state, y], params, [
    Math.ceil(c / 64),
    b,
  ]);
  return y;
}
