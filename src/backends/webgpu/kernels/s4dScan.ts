// WGSL kernel: S4D forward in its recurrent form, gated (Backend.s4d on WebGPU). One thread per
// (batch, channel) walks the length with the n state values in registers:
//   λ = exp(ΔA), B̄ = expm1(ΔA)/A · B (Δ = exp(log_dt)), h_t = λ h_{t−1} + B̄ u_t,
//   out_t = (Σ_n C h_t + D u_t) · SiLU(z_t); the state is read as h₀ and left as h_l.
// n is a compile-time constant. Grid (⌈d/64⌉, b).
// Bindings: 0 u (b, l, d) · 1 logDt (d) · 2 A (d, n) · 3 B (d, n) · 4 C (d, n) · 5 D (d) ·
// 6 z (b, l, d) · 7 state (b, d, n) read-write · 8 out (b, l, d) · 9 params {b, l, d}.
// Reference: s4dRecurrent in src/ssm/s4d.ts (which the convolution form equals).

import type { S4dArgs } from '../../backend.ts';
import type { GpuTensor } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';

/** WGSL: λ and B̄ of lane (c, s) and expm1, shared by the S4D kernels (logDt, A, B bound). */
export const s4dLanes = /* wgsl */ `
// expm1 without cancellation (Kahan): (u − 1) · x / log(u) with u = exp(x).
fn expm1(x: f32) -> f32 {
  let u = exp(x);
  if (u == 1.0) { return x; }
  let um = u - 1.0;
  if (um == -1.0) { return -1.0; }
  return um * x / log(u);
}
// (λ, B̄) of channel c, state s: λ = exp(ΔA), B̄ = expm1(ΔA) / A · B.
fn lane(c: u32, s: u32) -> vec2<f32> {
  let i = c * N + s;
  let x = exp(logDt[c]) * A[i];
  return vec2<f32>(exp(x), expm1(x) / A[i] * B[i]);
}`;

const source = (n: number) => /* wgsl */ `
const N = ${n}u;
struct Params { b: u32, l: u32, d: u32 }
@group(0) @binding(0) var<storage, read> u: array<f32>;
@group(0) @binding(1) var<storage, read> logDt: array<f32>;
@group(0) @binding(2) var<storage, read> A: array<f32>;
@group(0) @binding(3) var<storage, read> B: array<f32>;
@group(0) @binding(4) var<storage, read> C: array<f32>;
@group(0) @binding(5) var<storage, read> D: array<f32>;
@group(0) @binding(6) var<storage, read> z: array<f32>;
@group(0) @binding(7) var<storage, read_write> state: array<f32>;
@group(0) @binding(8) var<storage, read_write> out: array<f32>;
@group(0) @binding(9) var<uniform> params: Params;
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
  let s0 = (bi * params.d + c) * N;
  for (var s = 0u; s < N; s++) {
    let ab = lane(c, s);
    lambda[s] = ab.x;
    bbar[s] = ab.y;
    cw[s] = C[c * N + s];
    h[s] = state[s0 + s];
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
    out[at] = y * zt / (1.0 + exp(-zt));
  }
  for (var s = 0u; s < N; s++) { state[s0 + s] = h[s]; }
}`;

const sources = new Map<number, string>();

/** Backend.s4d: u and z dense (b, l, d). */
export function s4dScan(be: WebGpuBackend, args: S4dArgs): GpuTensor {
  const [b, l, d] = args.u.shape;
  const n = args.A.shape[1];
  if (!sources.has(n)) sources.set(n, source(n));
  const out = be.alloc(args.u.shape); // (b, l, d)
  const { u, logDt, A, B, C, D, z, state } = args;
  const buffers = [u, logDt, A, B, C, D, z, state, out] as GpuTensor[];
  be.dispatch({ name: 's4dScan', wgsl: sources.get(n)! }, buffers, [b, l, d], [Math.ceil(d / 64), b]);
  return out;
}
