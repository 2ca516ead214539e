// WGSL kernel: S4D's convolution kernel K̄ (d, l), K̄[c, k] = Σ_n C B̄ λᵏ with λᵏ = exp(k Δ A)
// (λ, B̄ by exact ZOH). One thread per (position k, channel c). n is a compile-time constant.
// Grid (⌈l/64⌉, d).
// Bindings: 0 logDt (d) · 1 A (d, n) · 2 B (d, n) · 3 C (d, n) · 4 K (d, l) · 5 params {l, d}.
// Reference: kernelSpectrum's first loop in src/ssm/s4d.ts (s4dKernelRef in float64).

import { s4dLanes } from './s4dScan.ts';

export const s4dKernelSource = (n: number) => /* wgsl */ `
const N = ${n}u;
struct Params { l: u32, d: u32 }
@group(0) @binding(0) var<storage, read> logDt: array<f32>;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read> C: array<f32>;
@group(0) @binding(4) var<storage, read_write> K: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;
${s4dLanes}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let k = id.x;
  let c = id.y;
  if (k >= params.l) { return; }
  let delta = exp(logDt[c]);
  var acc = 0.0;
  for (var s = 0u; s < N; s++) {
    acc += C[c * N + s] * lane(c, s).y * exp(f32(k) * delta * A[c * N + s]);
  }
  K[c * params.l + k] = acc;
}`;
