// WGSL kernel: out (m, n) = x (m, k) · wᵀ + bias, w (n, k) as torch.nn.Linear stores it.
// Tiled: a 16×16 workgroup computes a 64×64 output tile, each thread a 4×4 block in registers;
// x and w tiles of 64×16 are staged in workgroup memory per step over k.
// Bindings: 0 x (m, k) · 1 w (n, k) · 2 bias (n) · 3 out (m, n) · 4 params {m, n, k, hasBias}.
// Grid: (⌈n/64⌉, ⌈m/64⌉). Reference: linear in src/backends/cpu/matmul.ts.

import { fail } from '../../../core/errors.ts';
import { numel, showShape } from '../../../core/tensor.ts';
import type { GpuTensor } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';

const TILE = 64;
const KT = 16;

const wgsl = /* wgsl */ `
const TILE = ${TILE}u;
const KT = ${KT}u;
struct Params { m: u32, n: u32, k: u32, hasBias: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

var<workgroup> xs: array<f32, ${TILE * KT}>; // (TILE rows of x, KT)
var<workgroup> ws: array<f32, ${TILE * KT}>; // (TILE rows of w, KT)

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row0 = wg.y * TILE;
  let col0 = wg.x * TILE;
  let lane = lid.y * 16u + lid.x;
  var acc: array<f32, 16>;
  for (var k0 = 0u; k0 < params.k; k0 += KT) {
    // 256 threads load 64×16 values of each tile: 4 each.
    for (var e = lane; e < TILE * KT; e += 256u) {
      let r = e / KT;
      let kk = k0 + e % KT;
      var xv = 0.0;
      if (row0 + r < params.m && kk < params.k) { xv = x[(row0 + r) * params.k + kk]; }
      xs[e] = xv;
      var wv = 0.0;
      if (col0 + r < params.n && kk < params.k) { wv = w[(col0 + r) * params.k + kk]; }
      ws[e] = wv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < KT; kk++) {
      var xr: array<f32, 4>;
      var wr: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        xr[i] = xs[(lid.y * 4u + i) * KT + kk];
        wr[i] = ws[(lid.x * 4u + i) * KT + kk];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i * 4u + j] += xr[i] * wr[j]; }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + lid.y * 4u + i;
    if (r >= params.m) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let c = col0 + lid.x * 4u + j;
      if (c >= params.n) { continue; }
      var v = acc[i * 4u + j];
      if (params.hasBias != 0u) { v += bias[c]; }
      out[r * params.n + c] = v;
    }
  }
}`;

export function linear(
  be: WebGpuBackend,
  x: GpuTensor,
  weight: GpuTensor,
  bias: GpuTensor | null,
): GpuTensor {
  const k = x.shape[x.shape.length - 1];
  const m = numel(x.shape) / k;
  const [n, kw] = weight.shape;
  if (kw !== k) fail(`linear: input ${showShape(x.shape)} does not match weight ${showShape(weight.shape)}`);
  const out = be.alloc([...x.shape.slice(0, -1), n]);
  be.dispatch(
    { name: 'linear', wgsl },
    [x, weight, bias ?? weight, out],
    [m, n, k, bias ? 1 : 0],
    [Math.ceil(n / TILE), Math.ceil(m / TILE)],
  );
  return out;
}
