// WGSL kernels: Mamba's mixer for one token per sequence (Backend.mambaStep), everything between
// in_proj and out_proj in two dispatches instead of three (conv, x_proj, scan; four when x_proj
// splits k):
//   u = SiLU(conv1d(x) + bias) (advancing the conv state); [Δ_low, B, C] = x_proj · u;
//   Δ = softplus(dt_proj · Δ_low + dt_bias); h = exp(ΔA) h + Δ B u; y = (C·h + D u) · SiLU(z).
// x_proj needs all of u, so the work meets once in memory: each of K = ⌈dInner/64⌉ blocks of 64
// channels adds its share of x_proj into partial sums, and the scan adds the K shares up.
// - `conv`: thread (b, channel) runs the conv from its window in the state, writes u and the new
//   state; then the workgroup's 64 u values (in workgroup memory) give the block's partial sums
//   of x_proj: thread e < R + 2n sums xProj[e, block] · u[block] in channel order.
//   Grid (K, b). Bindings: 0 xz (b, 2·dInner) · 1 convWeight (dInner, w) · 2 convBias (dInner) ·
//   3 convState (b, dInner, w−1) rw · 4 xProj (R + 2n, dInner) · 5 u (b, dInner) · 6 partial
//   (b, K, R + 2n) · 7 params {hasBias, blocks}.
// - `scan`: the workgroup adds the K partials (in block order) into Δ_low, B, C in workgroup
//   memory; thread (b, channel) then computes Δ from its dt_proj row (vec4 when R % 4 == 0) and
//   advances its n states (vec4 when n % 4 == 0). Grid (K, b). Bindings: 0 u · 1 partial ·
//   2 dtProj (dInner, R) · 3 dtBias (dInner) · 4 A (dInner, n) · 5 D (dInner) · 6 xz (z is its
//   second half) · 7 ssmState (b, dInner, n) rw · 8 y (b, dInner) · 9 params {hasBias, blocks}.
// dInner, w (≥ 2), n and R are compile-time constants; other shapes take the unfused ops.
// Reference: mambaStepOps in src/backends/composedOps.ts (the model's ops), run on the CPU.

import type { MambaStepArgs } from '../../backend.ts';
import { mambaStepOps } from '../../composedOps.ts';
import type { GpuTensor } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';

const sources = new Map<string, string>();

function head(dInner: number, w: number, n: number, r: number): string {
  return /* wgsl */ `
const DI = ${dInner}u;
const W = ${w}u;
const N = ${n}u;
const R = ${r}u;
const E = ${r + 2 * n}u;
struct Params { hasBias: u32, blocks: u32 }
fn silu(v: f32) -> f32 { return v / (1.0 + exp(-v)); }`;
}

function convWgsl(dInner: number, w: number, n: number, r: number): string {
  const key = `conv:${dInner}:${w}:${n}:${r}`;
  let source = sources.get(key);
  if (source !== undefined) return source;
  source = /* wgsl */ `${head(dInner, w, n, r)}
@group(0) @binding(0) var<storage, read> xz: array<f32>;
@group(0) @binding(1) var<storage, read> convWeight: array<f32>;
@group(0) @binding(2) var<storage, read> convBias: array<f32>;
@group(0) @binding(3) var<storage, read_write> convState: array<f32>;
@group(0) @binding(4) var<storage, read> xProj: array<f32>;
@group(0) @binding(5) var<storage, read_write> u: array<f32>;
@group(0) @binding(6) var<storage, read_write> partial: array<f32>;
@group(0) @binding(7) var<uniform> params: Params;

var<workgroup> us: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let block = wg.x;
  let bi = wg.y;
  let c0 = block * 64u;
  let ch = c0 + li;
  var v = 0.0;
  if (ch < DI) {
    let s0 = (bi * DI + ch) * (W - 1u);
    var acc = 0.0;
    if (params.hasBias != 0u) { acc = convBias[ch]; }
    for (var j = 0u; j < W - 1u; j++) { acc += convWeight[ch * W + j] * convState[s0 + j]; }
    let xv = xz[bi * 2u * DI + ch];
    acc += convWeight[ch * W + W - 1u] * xv;
    for (var j = 0u; j + 2u < W; j++) { convState[s0 + j] = convState[s0 + j + 1u]; }
    convState[s0 + W - 2u] = xv;
    v = silu(acc);
    u[bi * DI + ch] = v;
  }
  us[li] = v;
  workgroupBarrier();
  let count = min(64u, DI - c0);
  for (var e = li; e < E; e += 64u) {
    var s = 0.0;
    for (var c = 0u; c < count; c++) { s += xProj[e * DI + c0 + c] * us[c]; }
    partial[(bi * params.blocks + block) * E + e] = s;
  }
}`;
  sources.set(key, source);
  return source;
}

function scanWgsl(dInner: number, w: number, n: number, r: number): string {
  const key = `scan:${dInner}:${w}:${n}:${r}`;
  let source = sources.get(key);
  if (source !== undefined) return source;
  const [vr, vn] = [r % 4 === 0 ? 4 : 1, n % 4 === 0 ? 4 : 1];
  const vec = (v: number) => (v === 4 ? 'vec4<f32>' : 'f32');
  // A V-wide run of the workgroup's dbc from index at.
  const run = (v: number) =>
    v === 4 ? 'vec4<f32>(dbc[at], dbc[at + 1u], dbc[at + 2u], dbc[at + 3u])' : 'dbc[at]';
  source = /* wgsl */ `${head(dInner, w, n, r)}
alias VR = ${vec(vr)};
alias VN = ${vec(vn)};
const RV = ${r / vr}u;
const NV = ${n / vn}u;
@group(0) @binding(0) var<storage, read> u: array<f32>;
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read> dtProj: array<VR>;
@group(0) @binding(3) var<storage, read> dtBias: array<f32>;
@group(0) @binding(4) var<storage, read> A: array<VN>;
@group(0) @binding(5) var<storage, read> D: array<f32>;
@group(0) @binding(6) var<storage, read> xz: array<f32>;
@group(0) @binding(7) var<storage, read_write> ssmState: array<VN>;
@group(0) @binding(8) var<storage, read_write> y: array<f32>;
@group(0) @binding(9) var<uniform> params: Params;

var<workgroup> dbc: array<f32, E>; // [Δ_low (R), B (N), C (N)]

fn softplus(v: f32) -> f32 { return select(log(1.0 + exp(v)), v, v > 20.0); }
fn dbcR(at: u32) -> VR { return ${run(vr)}; }
fn dbcN(at: u32) -> VN { return ${run(vn)}; }
fn sumR(v: VR) -> f32 { return ${vr === 4 ? 'v.x + v.y + v.z + v.w' : 'v'}; }
fn sumN(v: VN) -> f32 { return ${vn === 4 ? 'v.x + v.y + v.z + v.w' : 'v'}; }

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let bi = wg.y;
  let ch = wg.x * 64u + li;
  for (var e = li; e < E; e += 64u) {
    var s = 0.0;
    for (var k = 0u; k < params.blocks; k++) { s += partial[(bi * params.blocks + k) * E + e]; }
    dbc[e] = s;
  }
  workgroupBarrier();
  if (ch >= DI) { return; }
  var low = VR(0.0);
  for (var k = 0u; k < RV; k++) { low += dtProj[ch * RV + k] * dbcR(k * ${vr}u); }
  let dt = softplus(sumR(low) + dtBias[ch]);
  let x = u[bi * DI + ch];
  let s0 = (bi * DI + ch) * NV;
  var acc = VN(0.0);
  for (var i = 0u; i < NV; i++) {
    let h = exp(dt * A[ch * NV + i]) * ssmState[s0 + i] + dt * x * dbcN(R + i * ${vn}u);
    ssmState[s0 + i] = h;
    acc += dbcN(R + N + i * ${vn}u) * h;
  }
  let g = xz[bi * 2u * DI + DI + ch];
  y[bi * DI + ch] = (sumN(acc) + D[ch] * x) * silu(g);
}`;
  sources.set(key, source);
  return source;
}

export function mambaStep(be: WebGpuBackend, a: MambaStepArgs): GpuTensor {
  const [b, l, twice] = a.xz.shape;
  const [dInner, r] = a.dtProj.shape;
  const [w, n] = [a.convWeight.shape[1], a.A.shape[1]];
  const xz = a.xz as GpuTensor;
  if (l !== 1 || twice !== 2 * dInner || w < 2 || !xz.contiguous) return mambaStepOps(be, a) as GpuTensor;
  const blocks = Math.ceil(dInner / 64);
  const xzd = be.dense(xz);
  const u = be.alloc([b, dInner]);
  const partial = be.alloc([b, blocks, r + 2 * n]);
  const y = be.alloc([b, 1, dInner]);
  const params = [a.convBias ? 1 : 0, blocks];
  const convBias = (a.convBias ?? a.convWeight) as GpuTensor;
  be.dispatch(
    { name: 'mambaStepConv', wgsl: convWgsl(dInner, w, n, r) },
    [xzd, a.convWeight, convBias, a.convState, a.xProj, u, partial],
    params,
    [blocks, b],
  );
  be.dispatch(
    { name: 'mambaStepScan', wgsl: scanWgsl(dInner, w, n, r) },
    [u, partial, a.dtProj, a.dtBias, a.A, a.D, xzd, a.ssmState, y],
    params,
    [blocks, b],
  );
  be.release(u);
  be.release(partial);
  return y;
}
