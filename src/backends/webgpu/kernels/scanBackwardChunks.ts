// WGSL kernels: the chunk-boundary passes of the scan and SSD backward (scanBackwardPasses.ts).
// The length is cut into K chunks of LC positions (the last may be partial); per (batch, lane)
// only the K states entering the chunks and the K state gradients leaving them reach memory.
// 1. `scanBackwardLocal`: thread (b, chunk, lane), its N states in registers, from zero:
//    forward over the chunk → S_c, the chunk's end state, and ΣΔ over the chunk;
//    backward over the chunk (g ← exp(Δ_t A)(g + dout_t C_t)) → G_c, the gradient that the
//    chunk's own outputs send to the state entering it. Grid (⌈lanes/64⌉, K, b).
// 2. `scanBackwardCarry`: thread (b, lane, state i): forward over the chunks,
//    h ← exp(A ΣΔ_c) h + S_c starting from the initial state, S_c overwritten with the state
//    entering chunk c; then backward, x ← exp(A ΣΔ_c) x + G_c starting from 0, G_c overwritten
//    with the gradient reaching chunk c's end state from later chunks. Grid 1-D over b·lanes·N.
//    (exp(A ΣΔ) replaces the product of the exp(Δ_t A): equal up to f32 rounding, as in the
//    forward kernel selectiveScan.ts.)
// Bindings: 0..8 the inputs (scanBackwardHeader.ts) · 9 S (b, K, lanes, N) · 10 G (b, K, lanes, N)
// · 11 ΣΔ (b, K, lanes) · carry only: 12 state (b, lanes, N), the initial state (read only) ·
// then the params. Reference: the CPU twins src/backends/cpu/selectiveScanBackward.ts and
// ssdBackward.ts (same gradients, summed in another order).

import { inputsWgsl } from './scanBackwardHeader.ts';

const outputs = /* wgsl */ `
@group(0) @binding(9) var<storage, read_write> S: array<f32>;
@group(0) @binding(10) var<storage, read_write> G: array<f32>;
@group(0) @binding(11) var<storage, read_write> sumDt: array<f32>;`;

export function localWgsl(n: number, ssd: boolean, lc: number): string {
  return /* wgsl */ `${inputsWgsl(n, ssd)}${outputs}
@group(0) @binding(12) var<uniform> params: Params;
const LC = ${lc}u;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let lane = id.x;
  let c = id.y;
  let bi = id.z;
  let lanes = params.H * params.P;
  if (lane >= lanes) { return; }
  var a: array<f32, N>;
  var h: array<f32, N>;
  var g: array<f32, N>;
  for (var i = 0u; i < N; i++) { a[i] = aAt(lane, i); }
  let t0 = c * LC;
  let t1 = min(t0 + LC, params.l);
  var sum = 0.0;
  for (var t = t0; t < t1; t++) {
    let row = bi * params.l + t;
    let dl = deltaAt(row, lane).x;
    let dx = dl * u[row * lanes + lane];
    let bc = bcAt(row, lane);
    sum += dl;
    let e0 = headDecay(dl, a[0]);
    for (var i = 0u; i < N; i++) { h[i] = decayAt(e0, dl, a[i]) * h[i] + dx * B[bc + i]; }
  }
  for (var t = t1; t > t0; t--) {
    let row = bi * params.l + t - 1u;
    let dl = deltaAt(row, lane).x;
    let dout = doutAt(row, lane);
    let bc = bcAt(row, lane);
    let e0 = headDecay(dl, a[0]);
    for (var i = 0u; i < N; i++) { g[i] = decayAt(e0, dl, a[i]) * (g[i] + dout * C[bc + i]); }
  }
  let at = (bi * params.chunks + c) * lanes + lane;
  for (var i = 0u; i < N; i++) {
    S[at * N + i] = h[i];
    G[at * N + i] = g[i];
  }
  sumDt[at] = sum;
}`;
}

export function carryWgsl(n: number, ssd: boolean): string {
  return /* wgsl */ `${inputsWgsl(n, ssd)}${outputs}
@group(0) @binding(12) var<storage, read> state: array<f32>;
@group(0) @binding(13) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let e = id.x + id.y * params.stride; // (b, lane, i)
  if (e >= params.total) { return; }
  let lanes = params.H * params.P;
  let i = e % N;
  let lane = (e / N) % lanes;
  let bi = e / (N * lanes);
  let a = aAt(lane, i);
  var h = state[e];
  for (var c = 0u; c < params.chunks; c++) {
    let at = (bi * params.chunks + c) * lanes + lane;
    let local = S[at * N + i];
    S[at * N + i] = h;
    h = exp(a * sumDt[at]) * h + local;
  }
  var x = 0.0;
  for (var c = params.chunks; c > 0u; c--) {
    let at = (bi * params.chunks + c - 1u) * lanes + lane;
    let local = G[at * N + i];
    G[at * N + i] = x;
    x = exp(a * sumDt[at]) * x + local;
  }
}`;
}
