// WGSL kernel: Mamba's fused selective scan. Discretization, recurrence, C contraction, D skip and
// the SiLU(z) gate in one pass; the expanded state never leaves registers: one thread per
// (batch, channel) holds its n states (n is a compile-time constant) and walks the length.
//   Δ = softplus(delta + bias); h = exp(ΔA) h + Δ B_t u; y = (C_t·h + D u) · SiLU(z)
// Bindings: 0 u (b, l, d) · 1 delta (b, l, d) · 2 deltaBias (d) · 3 A (d, n) · 4 B (b, l, n) ·
// 5 C (b, l, n) · 6 D (d) · 7 z (b, l, d) · 8 state (b, d, n) read-write · 9 y (b, l, d) ·
// 10 params {l, d}. Grid: (⌈d/64⌉, b), 64 threads per workgroup.
// Reference: selectiveScan in src/backends/cpu/selectiveScan.ts (and the float64 oracles).

import type { SelectiveScanArgs } from '../../backend.ts';
import type { GpuTensor } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';

const wgsl = (n: number) => /* wgsl */ `
const N = ${n}u;
struct Params { l: u32, d: u32 }
@group(0) @binding(0) var<storage, read> u: array<f32>;
@group(0) @binding(1) var<storage, read> delta: array<f32>;
@group(0) @binding(2) var<storage, read> deltaBias: array<f32>;
@group(0) @binding(3) var<storage, read> A: array<f32>;
@group(0) @binding(4) var<storage, read> B: array<f32>;
@group(0) @binding(5) var<storage, read> C: array<f32>;
@group(0) @binding(6) var<storage, read> D: array<f32>;
@group(0) @binding(7) var<storage, read> z: array<f32>;
@group(0) @binding(8) var<storage, read_write> state: array<f32>;
@group(0) @binding(9) var<storage, read_write> y: array<f32>;
@group(0) @binding(10) var<uniform> params: Params;

fn softplus(v: f32) -> f32 { return select(log(1.0 + exp(v)), v, v > 20.0); }

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let ch = id.x;
  let bi = id.y;
  if (ch >= params.d) { return; }
  var h: array<f32, N>;
  var a: array<f32, N>;
  let s0 = (bi * params.d + ch) * N;
  for (var i = 0u; i < N; i++) { h[i] = state[s0 + i]; a[i] = A[ch * N + i]; }
  let bias = deltaBias[ch];
  let skip = D[ch];
  for (var t = 0u; t < params.l; t++) {
    let row = bi * params.l + t;
    let at = row * params.d + ch;
    let dt = softplus(delta[at] + bias);
    let x = u[at];
    var acc = 0.0;
    for (var i = 0u; i < N; i++) {
      h[i] = exp(dt * a[i]) * h[i] + dt * x * B[row * N + i];
      acc += C[row * N + i] * h[i];
    }
    let g = z[at];
    y[at] = (acc + skip * x) * (g / (1.0 + exp(-g)));
  }
  for (var i = 0u; i < N; i++) { state[s0 + i] = h[i]; }
}`;

export function selectiveScan(be: WebGpuBackend, args: SelectiveScanArgs): GpuTensor {
  const [b, l, d] = args.u.shape;
  const n = args.A.shape[1];
  const y = be.alloc(args.u.shape);
  const { u, delta, deltaBias, A, B, C, D, z, state } = args;
  be.dispatch(
    { name: 'selectiveScan', wgsl: wgsl(n) },
    [u, delta, deltaBias, A, B, C, D, z, state, y],
    [l, d],
    [Math.ceil(d / 64), b],
  );
  return y;
}
