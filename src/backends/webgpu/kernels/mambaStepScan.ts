// WGSL kernel `mambaStepScan`, the second of Backend.mambaStep's two dispatches (mambaStep.ts):
// [Δ_low, B, C] = the sum of the K blocks' partial x_proj products (mambaStepConv.ts);
// Δ = softplus(dt_proj · Δ_low + dt_bias); h = exp(ΔA) h + Δ B u; y = (C·h + D u) · SiLU(z).
// A workgroup of S threads (mambaStepTuning.scanChannels) owns S channels of one sequence,
// a thread per channel:
// - each thread first loads what its channel needs into registers (its dt_proj row, A row, SSM
//   state, u, z, D, dt_bias): these loads wait for nothing;
// - the workgroup adds the K partials of each of the E = R + 2n outputs: P = max(1, ⌊S / E⌋)
//   threads per output each add every P-th block (in block order), then one thread adds the P
//   sums, into workgroup memory;
// - each thread computes its Δ (vec4 over dt_proj when R % 4 == 0) and advances its n states
//   (vec4 when n % 4 == 0), writing them and y.
// Channels past dInner (the last workgroup's) load the last channel and write nothing.
// Grid (⌈dInner / S⌉, b). Bindings: 0 u (b, dInner) · 1 partial (b, K, E) · 2 dtProj (dInner, R) ·
// 3 dtBias (dInner) · 4 A (dInner, n) · 5 D (dInner) · 6 xz (b, 2·dInner; z is its second half) ·
// 7 ssmState (b, dInner, n) rw · 8 y (b, dInner) · 9 params {hasBias} (unused here).
// Reference: the dt_proj and selective scan step of mambaStepOps in src/backends/composedOps.ts.

import { type StepShape, stepHead } from './mambaStepConv.ts';

const sources = new Map<string, string>();

export function scanWgsl(shape: StepShape, blocks: number, channels: number): string {
  const key = `${Object.values(shape)}:${blocks}:${channels}`;
  let source = sources.get(key);
  if (source !== undefined) return source;
  const { n, r } = shape;
  const e = r + 2 * n;
  const p = Math.max(1, Math.floor(channels / e));
  const [vr, vn] = [r % 4 === 0 ? 4 : 1, n % 4 === 0 ? 4 : 1];
  const vec = (v: number) => (v === 4 ? 'vec4<f32>' : 'f32');
  // A V-wide run of the workgroup's dbc from index at.
  const run = (v: number) =>
    v === 4 ? 'vec4<f32>(dbc[at], dbc[at + 1u], dbc[at + 2u], dbc[at + 3u])' : 'dbc[at]';
  source = /* wgsl */ `${stepHead(shape)}
alias VR = ${vec(vr)};
alias VN = ${vec(vn)};
const RV = ${r / vr}u;
const NV = ${n / vn}u;
const S = ${channels}u;
const K = ${blocks}u; // partials per output
const P = ${p}u; // threads per output adding partials
const KP = ${Math.ceil(blocks / p)}u; // partials per thread
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

var<workgroup> sums: array<f32, ${p * e}>; // (p, output)
var<workgroup> dbc: array<f32, E>; // [Δ_low (R), B (N), C (N)]

fn softplus(v: f32) -> f32 { return select(log(1.0 + exp(v)), v, v > 20.0); }
fn dbcR(at: u32) -> VR { return ${run(vr)}; }
fn dbcN(at: u32) -> VN { return ${run(vn)}; }
fn sumR(v: VR) -> f32 { return ${vr === 4 ? 'v.x + v.y + v.z + v.w' : 'v'}; }
fn sumN(v: VN) -> f32 { return ${vn === 4 ? 'v.x + v.y + v.z + v.w' : 'v'}; }

@compute @workgroup_size(${channels})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let bi = wg.y;
  let live = wg.x * S + li;
  let ch = min(live, DI - 1u);
  var dtw: array<VR, RV>;
  for (var k = 0u; k < RV; k++) { dtw[k] = dtProj[ch * RV + k]; }
  let s0 = (bi * DI + ch) * NV;
  var a: array<VN, NV>;
  var h: array<VN, NV>;
  for (var i = 0u; i < NV; i++) {
    a[i] = A[ch * NV + i];
    h[i] = ssmState[s0 + i];
  }
  let x = u[bi * DI + ch];
  let g = xz[bi * 2u * DI + DI + ch];
  let d = D[ch];
  let bias = dtBias[ch];
  for (var t = li; t < P * E; t += S) {
    let e = t % E;
    let first = t / E;
    var s = 0.0;
    for (var j = 0u; j < KP; j++) {
      let k = first + j * P;
      if (k < K) { s += partial[(bi * K + k) * E + e]; }
    }
    sums[t] = s;
  }
  workgroupBarrier();
  for (var e = li; e < E; e += S) {
    var s = 0.0;
    for (var q = 0u; q < P; q++) { s += sums[q * E + e]; }
    dbc[e] = s;
  }
  workgroupBarrier();
  if (live >= DI) { return; }
  var low = VR(0.0);
  for (var k = 0u; k < RV; k++) { low += dtw[k] * dbcR(k * ${vr}u); }
  let dt = softplus(sumR(low) + bias);
  var acc = VN(0.0);
  for (var i = 0u; i < NV; i++) {
    let hn = exp(dt * a[i]) * h[i] + dt * x * dbcN(R + i * ${vn}u);
    ssmState[s0 + i] = hn;
    acc += dbcN(R + N + i * ${vn}u) * hn;
  }
  y[bi * DI + ch] = (sumN(acc) + d * x) * silu(g);
}`;
  sources.set(key, source);
  return source;
}
