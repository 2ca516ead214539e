// WGSL kernel: the first pass of the S4D backward (TrainingOps.s4dBackward on WebGPU). One thread
// per (batch, channel) recomputes y = Σ_n C h_t + D u_t from a zero state (the recurrence of
// s4dScan.ts) and writes the gradients through the gate out = y · SiLU(z):
//   dy_t = dOut_t · SiLU(z_t),   dz_t = dOut_t · y_t · σ(z_t) (1 + z_t (1 − σ(z_t))).
// n is a compile-time constant. Grid (⌈d/64⌉, b).
// Bindings: 0 u (b, l, d) · 1 logDt (d) · 2 A (d, n) · 3 B (d, n) · 4 C (d, n) · 5 D (d) ·
// 6 z (b, l, d) · 7 dOut (b, l, d) · 8 dy (b, l, d) · 9 dz (b, l, d) · 10 params {b, l, d}.
// Reference: the dy and dz lines of s4dBackward in src/ssm/s4d.ts.

import { s4dLanes } from './s4dScan.ts';

export const s4dBackwardGateSource = (n: number) => /* wgsl */ `
const N = ${n}u;
struct Params { b: u32, l: u32, d: u32 }
@group(0) @binding(0) var<storage, read> u: array<f32>;
@group(0) @binding(1) var<storage, read> logDt: array<f32>;
@group(0) @binding(2) var<storage, read> A: array<f32>;
@group(0) @binding(3) var<storage, read> B: array<f32>;
@group(0) @binding(4) var<storage, read> C: array<f32>;
@group(0) @binding(5) var<storage, read> D: array<f32>;
@group(0) @binding(6) var<storage, read> z: array<f32>;
@group(0) @binding(7) var<storage, read> dOut: array<f32>;
@group(0) @binding(8) var<storage, read_write> dy: array<f32>;
@group(0) @binding(9) var<storage, read_write> dz: array<f32>;
@group(0) @binding(10) var<uniform> params: Params;
${s4dLanes}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let c = id.x;
  let bi = id.y;
  if (c >= params.d) { return; }
  var lambda: array<f32, N>;
  var bbar: array<f32, N>;
  var cw: array<f32, N>;
  var h: array<f32, N>;
  for (var s = 0u; s < N; s++) {
    let ab = lane(c, s);
    lambda[s] = ab.x;
    bbar[s] = ab.y;
    cw[s] = C[c * N + s];
    h[s] = 0.0;
  }
  for (var t = 0u; t < params.l; t++) {
    let at = (bi * params.l + t) * params.d + c;
    let ut = u[at];
    var y = D[c] * ut;
    for (var s = 0u; s < N; s++) {
      h[s] = lambda[s] * h[s] + bbar[s] * ut;
      y += cw[s] * h[s];
    }
    let zt = z[at];
    let sg = 1.0 / (1.0 + exp(-zt));
    dy[at] = dOut[at] * zt * sg;
    dz[at] = dOut[at] * y * sg * (1.0 + zt * (1.0 - sg));
  }
}`;
