// WGSL kernel: the S4D parameter gradients from dK̄, added into the gradient buffers. One thread
// per channel c; for each state s, with W = C B̄ and λ = exp(ΔA):
//   dW = Σ_k dK̄_k λᵏ, dλ = W Σ_k dK̄_k k λ^{k−1} (running powers p = λᵏ, q = k λ^{k−1});
//   dC += dW B̄, dB += dW C expm1(ΔA)/A, dΔ = dλ λ A + dW C λ B,
//   dA = dλ λ Δ + dW C B (λ Δ A − expm1(ΔA)) / A², dA_log += dA · A, dlog_dt += Σ_s dΔ Δ;
//   dD += dK̄_0 (Σ_b Σ_t dy u). n is a compile-time constant. Grid (⌈d/64⌉).
// Bindings: 0 dK (d, l) · 1 logDt (d) · 2 A (d, n) · 3 B (d, n) · 4 C (d, n) · 5 gLogDt (d) ·
// 6 gALog (d, n) · 7 gB (d, n) · 8 gC (d, n) · 9 gD (d) (5–9 read-write) · 10 params {l, d}.
// Reference: the parameter loop of s4dBackward in src/ssm/s4d.ts.

import { s4dLanes } from './s4dScan.ts';

export const s4dBackwardParamsSource = (n: number) => /* wgsl */ `
const N = ${n}u;
struct Params { l: u32, d: u32 }
@group(0) @binding(0) var<storage, read> dK: array<f32>;
@group(0) @binding(1) var<storage, read> logDt: array<f32>;
@group(0) @binding(2) var<storage, read> A: array<f32>;
@group(0) @binding(3) var<storage, read> B: array<f32>;
@group(0) @binding(4) var<storage, read> C: array<f32>;
@group(0) @binding(5) var<storage, read_write> gLogDt: array<f32>;
@group(0) @binding(6) var<storage, read_write> gALog: array<f32>;
@group(0) @binding(7) var<storage, read_write> gB: array<f32>;
@group(0) @binding(8) var<storage, read_write> gC: array<f32>;
@group(0) @binding(9) var<storage, read_write> gD: array<f32>;
@group(0) @binding(10) var<uniform> params: Params;
${s4dLanes}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let c = id.x;
  if (c >= params.d) { return; }
  let delta = exp(logDt[c]);
  var dLogDt = 0.0;
  for (var s = 0u; s < N; s++) {
    let i = c * N + s;
    let ab = lane(c, s);
    let lambda = ab.x;
    let a = A[i];
    var dW = 0.0;
    var dLambda = 0.0;
    var p = 1.0;
    var q = 0.0;
    for (var k = 0u; k < params.l; k++) {
      let g = dK[c * params.l + k];
      dW += g * p;
      dLambda += g * q;
      q = q * lambda + p;
      p *= lambda;
    }
    dLambda *= C[i] * ab.y;
    let e = expm1(delta * a);
    let dBbar = dW * C[i];
    gC[i] += dW * ab.y;
    gB[i] += dBbar * e / a;
    let dDelta = dLambda * lambda * a + dBbar * lambda * B[i];
    let dA = dLambda * lambda * delta + dBbar * B[i] * (lambda * delta * a - e) / (a * a);
    dLogDt += dDelta * delta;
    gALog[i] += dA * a;
  }
  gLogDt[c] += dLogDt;
  gD[c] += dK[c * params.l];
}`;
