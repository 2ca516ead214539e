// WGSL kernel `mambaStepScan`, the second of Backend.mambaStep's two dispatches (mambaStep.ts):
// [Δ_low, B, C] = the sum of the K blocks' partial x_proj products (mambaStepConv.ts);
// Δ = softplus(dt_proj · Δ_low + dt_bias); h = exp(ΔA) h + Δ B u; y = (C·h + D u) · SiLU(z).
// A workgroup of S threads (mambaStepTuning.scanChannels) owns S channels of SQ sequences
// (scanSeqs; ≤ b), seq0 = SQ·wg.y .., a thread per channel:
// - each thread first loads what its channel needs into registers (its dt_proj row, A row, D,
//   dt_bias, and for each sequence its SSM state, u and z): these loads wait for nothing;
// - the workgroup adds the K partials of each of the SQ·E outputs (E = R + 2n):
//   P = max(1, ⌊S / (SQ·E)⌋) threads per output each add every P-th block (in block order), then
//   one thread adds the P sums, into workgroup memory;
// - for each sequence, each thread computes its Δ (vec4 over dt_proj when R % 4 == 0) and
//   advances its n states (vec4 when n % 4 == 0), writing them and y.
// At batch 64 with SQ = 1 the workgroups of every sequence read dt_proj and A (0.4 MB, 25 MB per
// call through L2) and each of a sequence's ⌈dInner / S⌉ workgroups adds all its K·E partials
// again (12 times at S = 128; wider S or convChannels, fewer K, cut that); SQ sequences per
// workgroup read the weights once for SQ of them, with SQ times fewer workgroups (768 at SQ = 1,
// S = 128).
// Channels past dInner (the last workgroup's) load the last channel and write nothing.
// Grid (⌈dInner / S⌉, ⌈b / SQ⌉). Bindings: 0 u (b, dInner) · 1 partial (b, K, E) ·
// 2 dtProj (dInner, R) · 3 dtBias (dInner) · 4 A (dInner, n) · 5 D (dInner) ·
// 6 xz (b, 2·dInner; z is its second half) · 7 ssmState (b, dInner, n) rw · 8 y (b, dInner) ·
// 9 params {hasBias (unused here), batch}; separate (stateDecl): 7 ssmState read ·
// 9 ssmStateOut (b, dInner, n) · 10 params.
// Reference: the dt_proj and selective scan step of mambaStepOps in src/backends/composedOps.ts.

import { addShares, type StepShape, stateDecl, stepHead } from './mambaStepConv.ts';
import { softplusWgsl } from './softplus.ts';

const sources = new Map<string, string>();

export function scanWgsl(
  shape: StepShape,
  blocks: number,
  channels: number,
  seqs: number,
  separate: boolean,
): string {
  const key = `${Object.values(shape)}:${blocks}:${channels}:${seqs}:${separate}`;
  let source = sources.get(key);
  if (source !== undefined) return source;
  const { n, r } = shape;
  const e = r + 2 * n;
  const p = Math.max(1, Math.floor(channels / (seqs * e)));
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
const SQ = ${seqs}u; // sequences per workgroup
const SE = SQ * E; // outputs: (sequence, [Δ_low, B, C])
const P = ${p}u; // threads per output adding partials
const KP = ${Math.ceil(blocks / p)}u; // partials per thread
@group(0) @binding(0) var<storage, read> u: array<f32>;
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read> dtProj: array<VR>;
@group(0) @binding(3) var<storage, read> dtBias: array<f32>;
@group(0) @binding(4) var<storage, read> A: array<VN>;
@group(0) @binding(5) var<storage, read> D: array<f32>;
@group(0) @binding(6) var<storage, read> xz: array<f32>;
${stateDecl('ssmState', 'VN', 7, separate, 9)}
@group(0) @binding(8) var<storage, read_write> y: array<f32>;
@group(0) @binding(${separate ? 10 : 9}) var<uniform> params: Params;

var<workgroup> sums: array<f32, ${p * seqs * e}>; // (p, sequence, output)
var<workgroup> dbc: array<f32, ${seqs * e}>; // (sequence, [Δ_low (R), B (N), C (N)])

${addShares}
${softplusWgsl}
fn dbcR(at: u32) -> VR { return ${run(vr)}; }
fn dbcN(at: u32) -> VN { return ${run(vn)}; }
fn sumR(v: VR) -> f32 { return ${vr === 4 ? 'v.x + v.y + v.z + v.w' : 'v'}; }
fn sumN(v: VN) -> f32 { return ${vn === 4 ? 'v.x + v.y + v.z + v.w' : 'v'}; }

@compute @workgroup_size(${channels})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let seq0 = wg.y * SQ;
  let live = wg.x * S + li;
  let ch = min(live, DI - 1u);
  var dtw: array<VR, RV>;
  for (var k = 0u; k < RV; k++) { dtw[k] = dtProj[ch * RV + k]; }
  var a: array<VN, NV>;
  for (var i = 0u; i < NV; i++) { a[i] = A[ch * NV + i]; }
  var h: array<VN, ${seqs * (n / vn)}>; // (sequence, state)
  var x: array<f32, SQ>;
  var g: array<f32, SQ>;
  for (var sq = 0u; sq < SQ; sq++) {
    let bi = min(seq0 + sq, params.batch - 1u);
    for (var i = 0u; i < NV; i++) { h[sq * NV + i] = ssmState[(bi * DI + ch) * NV + i]; }
    x[sq] = u[bi * DI + ch];
    g[sq] = xz[bi * 2u * DI + DI + ch];
  }
  let d = D[ch];
  let bias = dtBias[ch];
  for (var t = li; t < P * SE; t += S) {
    let o = t % SE;
    let bi = seq0 + o / E;
    let e = o % E;
    let first = t / SE;
    sums[t] = addShares(bi * K * E + e, first, P, K, bi < params.batch);
  }
  workgroupBarrier();
  for (var o = li; o < SE; o += S) {
    var s = 0.0;
    for (var q = 0u; q < P; q++) { s += sums[q * SE + o]; }
    dbc[o] = s;
  }
  workgroupBarrier();
  if (live >= DI) { return; }
  for (var sq = 0u; sq < SQ; sq++) {
    let bi = seq0 + sq;
    if (bi >= params.batch) { return; }
    let at = sq * E;
    var low = VR(0.0);
    for (var k = 0u; k < RV; k++) { low += dtw[k] * dbcR(at + k * ${vr}u); }
    let dt = softplus(sumR(low) + bias);
    let s0 = (bi * DI + ch) * NV;
    var acc = VN(0.0);
    for (var i = 0u; i < NV; i++) {
      let hn = exp(dt * a[i]) * h[sq * NV + i] + dt * x[sq] * dbcN(at + R + i * ${vn}u);
      ${separate ? 'ssmStateOut' : 'ssmState'}[s0 + i] = hn;
      acc += dbcN(at + R + N + i * ${vn}u) * hn;
    }
    y[bi * DI + ch] = (sumN(acc) + d * x[sq]) * silu(g[sq]);
  }
}`;
  sources.set(key, source);
  return source;
}
