// WGSL kernel `mambaBlockIn`, the first of Backend.mambaBlockStep's two dispatches at small
// batches (mambaBlockStep.ts): everything of a decoding Mamba block up to x_proj,
//   residual' = Σ_p hidden[p] + residual; xz = in_proj(RMSNorm(residual') · norm);
//   u = SiLU(conv1d(x) + bias) (advancing the conv state); each block's share of x_proj · u,
// where the model's ops take four dispatches (addRmsNorm + in_proj, conv, x_proj's share; the
// previous block's out_proj sum). At batch 1 every dispatch costs ~10 µs of GPU time and ~10 µs
// of recording whatever its work, so the work is split to keep them few, not small.
// Grid (2·dInner / CIN): workgroup g computes in_proj rows g·CIN .. (x channels for g < KX =
// dInner / CIN, z channels after), for all b ≤ M sequences (M ∈ {1, 2, 4}, compile-time).
// A workgroup of 256 threads is CIN teams of L = 256 / CIN lanes; team t owns row g·CIN + t.
// - First, with nothing to wait for, each lane issues its first RUN loads of its row of in_proj
//   (vec4 along d; lane l takes vec4s l, l + L, …), and x blocks load their conv weights, conv
//   state and x_proj slice (thread e < E: row e of x_proj over the block's CIN channels).
// - The input: the workgroup adds the P partial sums of each sequence's input (and the residual)
//   into workgroup memory, times the norm weight; the squares are reduced over the workgroup to
//   one scale per sequence, applied to the finished dot products (RMSNorm's scale factors out).
//   Workgroup 0 writes residual'.
// - Each lane multiplies its loads with xs and issues the next run; the L lane sums of each
//   (row, sequence) are added in lane order by one thread.
// - z blocks write z into uz's second half and are done. x blocks run the conv of each (sequence,
//   channel) (thread per pair), write u into uz's first half and workgroup memory, and thread
//   e < E writes Σ_c x_proj[e, c] u[c] over the block's channels to partial[b, block, e].
// Bindings: 0 hidden (P, b, d) · 1 residual (b, d) (a stand-in when hasResidual is 0) ·
// 2 normWeight (d) · 3 residualOut (b, d) · 4 inProj (2·dInner, d) · 5 inBias (2·dInner) ·
// 6 convWeight (dInner, w) · 7 convBias (dInner) · 8 convState (b, dInner, w − 1) rw ·
// 9 xProj (E, dInner) · 10 uz (b, 2·dInner): [u, z] · 11 partial (b, KX, E) ·
// 12 params {batch, hasResidual, hasInBias, hasConvBias, eps}; separate (stateDecl): 8 convState
// read · 12 convStateOut (b, dInner, w − 1) · 13 params.
// d, dInner, w, E, CIN, M and P are compile-time; d, dInner and CIN are multiples of 4.
// Reference: mambaBlockStepOps in src/backends/composedOps.ts up to mambaStep's x_proj (run on
// the CPU; the summation order differs).

import type { BlockShape } from './mambaBlockOut.ts';
import { stateDecl } from './mambaStepConv.ts';

const THREADS = 256;
const sources = new Map<string, string>();

/** Bytes of workgroup memory the kernel takes for M sequences and CIN channels per workgroup. */
export function inMemory(shape: BlockShape, m: number, channels: number): number {
  const lanes = THREADS / channels;
  return 4 * (m * shape.d + m * THREADS + m + channels * m * (lanes + 1) + m * channels);
}

export function inWgsl(
  shape: BlockShape,
  m: number,
  channels: number,
  maxLoads: number,
  parts: number,
  separate: boolean,
): string {
  const key = `${Object.values(shape)}:${m}:${channels}:${maxLoads}:${parts}:${separate}`;
  let source = sources.get(key);
  if (source !== undefined) return source;
  const { d, dInner, w, n, r } = shape;
  const lanes = THREADS / channels;
  const perLane = Math.ceil(d / 4 / lanes);
  const runs = Math.ceil(perLane / maxLoads);
  const run = Math.ceil(perLane / runs);
  source = /* wgsl */ `
const D4 = ${d / 4}u;
const DI = ${dInner}u;
const W = ${w}u;
const E = ${r + 2 * n}u;
const CIN = ${channels}u;
const C4 = ${channels / 4}u;
const KX = ${dInner / channels}u; // x blocks
const L = ${lanes}u;
const M = ${m}u;
const RUN = ${run}u; // loads of in_proj per lane per run
const RUNS = ${runs}u;
struct Params { batch: u32, hasResidual: u32, hasInBias: u32, hasConvBias: u32, eps: f32 }
@group(0) @binding(0) var<storage, read> hidden: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> residual: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> normWeight: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> residualOut: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> inProj: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> inBias: array<f32>;
@group(0) @binding(6) var<storage, read> convWeight: array<f32>;
@group(0) @binding(7) var<storage, read> convBias: array<f32>;
${stateDecl('convState', 'f32', 8, separate, 12)}
@group(0) @binding(9) var<storage, read> xProj: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read_write> uz: array<f32>;
@group(0) @binding(11) var<storage, read_write> partial: array<f32>;
@group(0) @binding(${separate ? 13 : 12}) var<uniform> params: Params;

var<workgroup> xs: array<vec4<f32>, ${m * (d / 4)}>; // (sequence, d / 4) the normed input
var<workgroup> squares: array<f32, ${m * THREADS}>; // (sequence, thread)
var<workgroup> scale: array<f32, M>;
var<workgroup> dots: array<f32, ${channels * m * (lanes + 1)}>; // (team, sequence, lane), padded
var<workgroup> us: array<f32, ${m * channels}>; // (sequence, channel): x, then u

fn silu(v: f32) -> f32 { return v / (1.0 + exp(-v)); }

@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let team = li / L;
  let lane = li % L;
  let row = wg.x * CIN + team; // of in_proj
  let isX = wg.x < KX;
  let c0 = wg.x * CIN; // the x block's first channel
  var wv: array<vec4<f32>, RUN>;
  for (var i = 0u; i < RUN; i++) {
    let c = lane + i * L;
    wv[i] = vec4<f32>(0.0);
    if (c < D4) { wv[i] = inProj[row * D4 + c]; }
  }
  // The x block's conv inputs (thread per (sequence, channel)) and x_proj slice (thread per row).
  let cs = li % CIN;
  let cr = li / CIN;
  var cw: array<f32, W>;
  var taps: array<f32, W>; // the conv state, then x
  var cb = 0.0;
  var wx: array<vec4<f32>, C4>;
  if (isX) {
    if (cr < params.batch && li < M * CIN) {
      for (var j = 0u; j < W; j++) { cw[j] = convWeight[(c0 + cs) * W + j]; }
      for (var j = 0u; j + 1u < W; j++) { taps[j] = convState[(cr * DI + c0 + cs) * (W - 1u) + j]; }
      if (params.hasConvBias != 0u) { cb = convBias[c0 + cs]; }
    }
    if (li < E) { for (var j = 0u; j < C4; j++) { wx[j] = xProj[(li * DI + c0) / 4u + j]; } }
  }
  // The input, normed but for its scale.
  var sq: array<f32, M>;
  for (var s = 0u; s < M; s++) { sq[s] = 0.0; }
  for (var i = li; i < M * D4; i += ${THREADS}u) {
    let s = i / D4;
    let e = i % D4;
    var v = vec4<f32>(0.0);
    if (s < params.batch) {
      ${loadParts(parts)}
      if (params.hasResidual != 0u) { v += residual[s * D4 + e]; }
      if (wg.x == 0u) { residualOut[s * D4 + e] = v; }
    }
    sq[s] += dot(v, v);
    xs[i] = v * normWeight[e];
  }
  for (var s = 0u; s < M; s++) { squares[s * ${THREADS}u + li] = sq[s]; }
  workgroupBarrier();
  for (var step = ${THREADS / 2}u; step > 0u; step /= 2u) {
    if (li < step) { for (var s = 0u; s < M; s++) { squares[s * ${THREADS}u + li] += squares[s * ${THREADS}u + li + step]; } }
    workgroupBarrier();
  }
  if (li < M) { scale[li] = inverseSqrt(squares[li * ${THREADS}u] / f32(D4 * 4u) + params.eps); }
  // in_proj: this lane's share of its row's dot products.
  var acc: array<f32, M>;
  for (var s = 0u; s < M; s++) { acc[s] = 0.0; }
  for (var k = 0u; k < RUNS; k++) {
    for (var s = 0u; s < M; s++) {
      for (var i = 0u; i < RUN; i++) {
        let c = lane + (k * RUN + i) * L;
        if (c < D4) { acc[s] += dot(wv[i], xs[s * D4 + c]); }
      }
    }
    if (k + 1u < RUNS) {
      for (var i = 0u; i < RUN; i++) {
        let c = lane + ((k + 1u) * RUN + i) * L;
        wv[i] = vec4<f32>(0.0);
        if (c < D4) { wv[i] = inProj[row * D4 + c]; }
      }
    }
  }
  for (var s = 0u; s < M; s++) { dots[(team * M + s) * (L + 1u) + lane] = acc[s]; }
  workgroupBarrier();
  if (li < M * CIN) {
    let t = li % CIN; // a team
    let s = li / CIN;
    var v = 0.0;
    for (var l = 0u; l < L; l++) { v += dots[(t * M + s) * (L + 1u) + l]; }
    v *= scale[s];
    if (params.hasInBias != 0u) { v += inBias[wg.x * CIN + t]; }
    if (isX) { us[li] = v; }
    else if (s < params.batch) { uz[s * 2u * DI + wg.x * CIN + t] = v; }
  }
  if (!isX) { return; }
  workgroupBarrier();
  // The conv of (sequence cr, channel cs), then x_proj's share of the block.
  if (li < M * CIN) {
    var u = 0.0;
    if (cr < params.batch) {
      taps[W - 1u] = us[li];
      var a = cb;
      for (var j = 0u; j < W; j++) { a += cw[j] * taps[j]; }
      for (var j = 0u; j + 1u < W; j++) { ${separate ? 'convStateOut' : 'convState'}[(cr * DI + c0 + cs) * (W - 1u) + j] = taps[j + 1u]; }
      u = silu(a);
      uz[cr * 2u * DI + c0 + cs] = u;
    }
    us[li] = u;
  }
  workgroupBarrier();
  if (li < E) {
    for (var s = 0u; s < M; s++) {
      if (s < params.batch) {
        var v = 0.0;
        for (var j = 0u; j < C4; j++) {
          let at = s * CIN + 4u * j;
          v += dot(wx[j], vec4<f32>(us[at], us[at + 1u], us[at + 2u], us[at + 3u]));
        }
        partial[(s * KX + wg.x) * E + li] = v;
      }
    }
  }
}`;
  sources.set(key, source);
  return source;
}

/**
 * The P partial sums of one input vec4, written out: all P loads are issued before the first add
 * (a loop over a runtime P issued them one after another, ~0.3 µs of L2 latency each).
 */
function loadParts(parts: number): string {
  const loads = Array.from(
    { length: parts },
    (_, p) => `let h${p} = hidden[(${p}u * params.batch + s) * D4 + e];`,
  );
  return `${loads.join('\n      ')}
      v = ${Array.from({ length: parts }, (_, p) => `h${p}`).join(' + ')};`;
}
