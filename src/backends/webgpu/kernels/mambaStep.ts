// WGSL kernel: Mamba's mixer for one token per sequence (Backend.mambaStep), everything between
// in_proj and out_proj in one dispatch, so a decoding layer needs 3 dispatches instead of 5:
//   u = SiLU(conv1d(x) + bias) (advancing the conv state); [Δ_low, B, C] = x_proj · u;
//   Δ = softplus(dt_proj · Δ_low + dt_bias); h = exp(ΔA) h + Δ B u; y = (C·h + D u) · SiLU(z).
// Thread mapping: one workgroup of 256 threads per sequence (grid (b)); x_proj needs all of u, so
// the three phases meet at workgroup barriers, with u (dInner) and Δ_low, B, C (R + 2n) in
// workgroup memory:
//   1. conv: thread i takes channels i, i + 256, … (its window from the conv state), writes u.
//   2. x_proj: 8 teams of 32; team t computes outputs e = t, t + 8, …; lane j sums the products
//      of channels 4j.., 4j + 128.. (vec4 rows of x_proj), the 32 partials summed in lane order.
//   3. scan: thread i takes channels i, i + 256, …: Δ from the dt_proj row, its n states.
// dInner, w, n, R are compile-time constants (dInner % 4 == 0, w ≥ 2); other shapes, or a u that
// would not fit in workgroup memory, take the unfused ops (mambaStepOps).
// Bindings: 0 xz (b, 2·dInner) · 1 convWeight (dInner, w) · 2 convBias (dInner) · 3 convState
// (b, dInner, w−1) rw · 4 xProj (R + 2n, dInner) as vec4 · 5 dtProj (dInner, R) · 6 dtBias (dInner)
// · 7 A (dInner, n) · 8 D (dInner) · 9 ssmState (b, dInner, n) rw · 10 y (b, dInner) ·
// 11 params {hasBias}.
// Reference: mambaStepOps in src/backends/composedOps.ts (the model's ops), run on the CPU.

import type { MambaStepArgs } from '../../backend.ts';
import { mambaStepOps } from '../../composedOps.ts';
import type { GpuTensor } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';

const sources = new Map<string, string>();

function wgsl(dInner: number, w: number, n: number, r: number): string {
  const key = `${dInner}:${w}:${n}:${r}`;
  let source = sources.get(key);
  if (source !== undefined) return source;
  source = /* wgsl */ `
const DI = ${dInner}u;
const DI4 = ${dInner / 4}u;
const W = ${w}u;
const N = ${n}u;
const R = ${r}u;
const E = ${r + 2 * n}u;
struct Params { hasBias: u32 }
@group(0) @binding(0) var<storage, read> xz: array<f32>;
@group(0) @binding(1) var<storage, read> convWeight: array<f32>;
@group(0) @binding(2) var<storage, read> convBias: array<f32>;
@group(0) @binding(3) var<storage, read_write> convState: array<f32>;
@group(0) @binding(4) var<storage, read> xProj: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> dtProj: array<f32>;
@group(0) @binding(6) var<storage, read> dtBias: array<f32>;
@group(0) @binding(7) var<storage, read> A: array<f32>;
@group(0) @binding(8) var<storage, read> D: array<f32>;
@group(0) @binding(9) var<storage, read_write> ssmState: array<f32>;
@group(0) @binding(10) var<storage, read_write> y: array<f32>;
@group(0) @binding(11) var<uniform> params: Params;

var<workgroup> u: array<vec4<f32>, DI4>;
var<workgroup> dbc: array<f32, E>; // [Δ_low (R), B (N), C (N)]
var<workgroup> partial: array<f32, 256>;

fn silu(v: f32) -> f32 { return v / (1.0 + exp(-v)); }
fn softplus(v: f32) -> f32 { return select(log(1.0 + exp(v)), v, v > 20.0); }

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let bi = wg.x;
  let row = bi * 2u * DI;
  for (var ch = li; ch < DI; ch += 256u) {
    let s0 = (bi * DI + ch) * (W - 1u);
    var acc = 0.0;
    if (params.hasBias != 0u) { acc = convBias[ch]; }
    for (var j = 0u; j < W - 1u; j++) { acc += convWeight[ch * W + j] * convState[s0 + j]; }
    let xv = xz[row + ch];
    acc += convWeight[ch * W + W - 1u] * xv;
    for (var j = 0u; j + 2u < W; j++) { convState[s0 + j] = convState[s0 + j + 1u]; }
    convState[s0 + W - 2u] = xv;
    u[ch / 4u][ch % 4u] = silu(acc);
  }
  workgroupBarrier();
  let team = li / 32u;
  let lane = li % 32u;
  for (var e0 = 0u; e0 < E; e0 += 8u) {
    let e = e0 + team;
    var s = vec4<f32>(0.0);
    if (e < E) { for (var c = lane; c < DI4; c += 32u) { s += xProj[e * DI4 + c] * u[c]; } }
    partial[li] = s.x + s.y + s.z + s.w;
    workgroupBarrier();
    if (lane == 0u && e < E) {
      var t = 0.0;
      for (var i = 0u; i < 32u; i++) { t += partial[li + i]; }
      dbc[e] = t;
    }
    workgroupBarrier();
  }
  for (var ch = li; ch < DI; ch += 256u) {
    var low = 0.0;
    for (var k = 0u; k < R; k++) { low += dbc[k] * dtProj[ch * R + k]; }
    let dt = softplus(low + dtBias[ch]);
    let x = u[ch / 4u][ch % 4u];
    let s0 = (bi * DI + ch) * N;
    var acc = 0.0;
    for (var i = 0u; i < N; i++) {
      let h = exp(dt * A[ch * N + i]) * ssmState[s0 + i] + dt * x * dbc[R + i];
      ssmState[s0 + i] = h;
      acc += dbc[R + N + i] * h;
    }
    y[bi * DI + ch] = (acc + D[ch] * x) * silu(xz[row + DI + ch]);
  }
}`;
  sources.set(key, source);
  return source;
}

export function mambaStep(be: WebGpuBackend, a: MambaStepArgs): GpuTensor {
  const [b, l, twice] = a.xz.shape;
  const [dInner, r] = a.dtProj.shape;
  const [w, n] = [a.convWeight.shape[1], a.A.shape[1]];
  const bytes = (dInner + r + 2 * n + 256) * 4;
  const xz = a.xz as GpuTensor;
  if (l !== 1 || twice !== 2 * dInner || dInner % 4 !== 0 || w < 2 || !xz.contiguous) {
    return mambaStepOps(be, a) as GpuTensor;
  }
  if (bytes > be.limits.maxComputeWorkgroupStorageSize) return mambaStepOps(be, a) as GpuTensor;
  const y = be.alloc([b, 1, dInner]);
  const convBias = (a.convBias ?? a.convWeight) as GpuTensor;
  const buffers = [be.dense(xz), a.convWeight, convBias, a.convState, a.xProj, a.dtProj];
  buffers.push(a.dtBias, a.A, a.D, a.ssmState, y);
  be.dispatch({ name: 'mambaStep', wgsl: wgsl(dInner, w, n, r) }, buffers, [a.convBias ? 1 : 0], [b]);
  return y;
}
