// WGSL kernel `mambaBlockIn`, the first of a decoding block's two dispatches at small batches
// (Backend.mambaBlockStep, mambaBlockStep.ts; Backend.mamba2BlockStep, mamba2BlockStep.ts):
// everything of the block up to what needs all of its channels,
//   residual' = Σ_p scale · hidden[p] + residual; out = in_proj(RMSNorm(residual') · norm), the
//   conv rows of it through SiLU(conv1d(·) + bias) (advancing the conv state); with x_proj (Mamba),
//   each conv block's share of x_proj · u,
// where the models' ops take four dispatches (addRmsNorm + in_proj, conv, x_proj's share; the
// previous block's out_proj sum). At batch 1 every dispatch costs ~10 µs of GPU time and ~10 µs
// of recording whatever its work, so the work is split to keep them few, not small.
// Layouts (InLayout): Mamba's in_proj rows are [x (conv), z], the conv's output u goes on to
// x_proj; Mamba-2's are [z, xBC (conv), Δ] with no x_proj, and its input parts come from a
// Mamba-2 block's gated norm, whose scale rsqrt(Σ_p squares[p] / SCALED + eps) multiplies them
// (`scaled`: the norm's width; 0 for plain parts, scale 1).
// Grid (⌈ROWS / CIN⌉): workgroup g computes in_proj rows g·CIN .. (conv blocks: those inside the
// conv rows, which start and end at multiples of CIN), for all b ≤ M sequences (M ∈ {1, 2, 4},
// compile-time). A workgroup of 256 threads is CIN teams of L = 256 / CIN lanes; team t owns row
// g·CIN + t.
// - First, with nothing to wait for, each lane issues its first RUN loads of its row of in_proj
//   (vec4 along d; lane l takes vec4s l, l + L, …), and conv blocks load their conv weights, conv
//   state and (x_proj) x_proj slice (thread e < E: row e of x_proj over the block's CIN channels).
// - The input: the workgroup adds the P partial sums of each sequence's input (times its scale,
//   and the residual) into workgroup memory, times the norm weight; the squares are reduced over
//   the workgroup to one RMSNorm scale per sequence, applied to the finished dot products (it
//   factors out). Workgroup 0 writes residual'.
// - Each lane multiplies its loads with xs and issues the next run; the L lane sums of each
//   (row, sequence) are added in lane order by one thread.
// - Other blocks write their rows to out and are done. Conv blocks run the conv of each
//   (sequence, channel) (thread per pair), write its output to out and workgroup memory, and
//   (x_proj) thread e < E writes Σ_c x_proj[e, c] u[c] over the block's channels to
//   partial[b, block, e].
// Bindings: 0 hidden (P, b, d) · 1 residual (b, d) (a stand-in when hasResidual is 0) ·
// 2 normWeight (d) · 3 residualOut (b, d) · 4 inProj (ROWS, d) · 5 inBias (ROWS) ·
// 6 convWeight (CR, w) · 7 convBias (CR) · 8 convState (b, CR, w − 1) rw · 9 out (b, ROWS);
// then with x_proj 10 xProj (E, CR) · 11 partial (b, KX, E), or when scaled 10 squares (P, b);
// then, separate (stateDecl), convStateOut (b, CR, w − 1) with convState read only; last the
// params {batch, hasResidual, hasInBias, hasConvBias, eps}.
// d, ROWS, the conv rows, w, E, CIN, M, P and SCALED are compile-time; d and CIN are multiples of 4.
// Reference: the composed ops up to mambaStep's x_proj (mambaBlockStepOps in
// src/backends/composedOps.ts) or to Mamba-2's SSD (Mamba2Mixer.blockStep), run on the CPU; the
// summation orders differ.

import type { Tensor } from '../../../core/tensor.ts';
import type { GpuTensor } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';
import { stateDecl } from './mambaStepConv.ts';

const THREADS = 256;
const sources = new Map<string, string>();

/** A block's in_proj as mambaBlockIn sees it. */
export interface InLayout {
  d: number;
  rows: number; // in_proj's rows (Mamba 2·dInner, Mamba-2 dInner + convDim + heads)
  convFirst: number; // the first conv row (Mamba 0, Mamba-2 dInner)
  convRows: number; // the conv's channels (Mamba dInner, Mamba-2 convDim)
  w: number;
  xProj: number; // x_proj's rows E after the conv (Mamba), or 0 (Mamba-2)
  scaled: number; // the width of the gated norm whose squares scale the input (Mamba-2), or 0
}

/** What a block step gives mambaBlockIn (Mamba's and Mamba-2's args alike). */
interface InArgs {
  hidden: Tensor;
  residual: Tensor | null;
  norm: Tensor;
  inProj: Tensor;
  inProjBias: Tensor | null;
  convWeight: Tensor;
  convBias: Tensor | null;
  convState: Tensor;
  statesOut?: { conv: Tensor };
}

/**
 * The kernel's bindings in order: the block's, residual' and in_proj's output, then `extra`
 * (x_proj and its partial sums, or the squares) and the conv state out; absent biases and residual
 * bound as stand-ins (their flags are 0).
 */
export function inBindings(
  be: WebGpuBackend,
  a: InArgs,
  residualOut: GpuTensor,
  out: GpuTensor,
  extra: readonly Tensor[],
): GpuTensor[] {
  const bindings = [
    be.dense(a.hidden as GpuTensor),
    a.residual ? be.dense(a.residual as GpuTensor) : a.norm,
    a.norm,
    residualOut,
    a.inProj,
    a.inProjBias ?? a.inProj,
    a.convWeight,
    a.convBias ?? a.convWeight,
    a.convState,
    out,
    ...extra,
  ] as GpuTensor[];
  if (a.statesOut) bindings.push(a.statesOut.conv as GpuTensor);
  return bindings;
}

/** Bytes of workgroup memory the kernel takes for M sequences and CIN channels per workgroup. */
export function inMemory(layout: InLayout, m: number, channels: number): number {
  const lanes = THREADS / channels;
  return 4 * (m * layout.d + m * THREADS + m + channels * m * (lanes + 1) + m * channels);
}

/** Whether mambaBlockIn takes `layout` with CIN channels per workgroup (besides memory and M·CIN). */
export function inFits(layout: InLayout, channels: number): boolean {
  const { d, convFirst, convRows, xProj } = layout;
  return (
    d % 4 === 0 &&
    channels % 4 === 0 &&
    THREADS % channels === 0 &&
    convFirst % channels === 0 &&
    convRows % channels === 0 &&
    xProj <= THREADS
  );
}

export function inWgsl(
  layout: InLayout,
  m: number,
  channels: number,
  maxLoads: number,
  parts: number,
  separate: boolean,
): string {
  const key = `${Object.values(layout)}:${m}:${channels}:${maxLoads}:${parts}:${separate}`;
  let source = sources.get(key);
  if (source !== undefined) return source;
  const { d, rows, convFirst, convRows, w, xProj, scaled } = layout;
  const lanes = THREADS / channels;
  const perLane = Math.ceil(d / 4 / lanes);
  const runs = Math.ceil(perLane / maxLoads);
  const run = Math.ceil(perLane / runs);
  const ragged = rows % channels !== 0; // the last block's teams past ROWS load and write nothing
  const live = ragged ? ' && row < ROWS' : '';
  const extra = xProj
    ? `@group(0) @binding(10) var<storage, read> xProj: array<vec4<f32>>;
@group(0) @binding(11) var<storage, read_write> partial: array<f32>;`
    : scaled
      ? '@group(0) @binding(10) var<storage, read> squares: array<f32>;'
      : '';
  const next = 10 + (xProj ? 2 : scaled ? 1 : 0); // the binding after them
  source = /* wgsl */ `
const D4 = ${d / 4}u;
const ROWS = ${rows}u;
const CB0 = ${convFirst / channels}u; // the first conv block
const CB1 = ${(convFirst + convRows) / channels}u; // past the last
const CR = ${convRows}u;
const W = ${w}u;
const E = ${xProj}u;
const CIN = ${channels}u;
const C4 = ${channels / 4}u;
const KX = ${convRows / channels}u; // conv blocks
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
${stateDecl('convState', 'f32', 8, separate, next)}
@group(0) @binding(9) var<storage, read_write> out: array<f32>;
${extra}
@group(0) @binding(${separate ? next + 1 : next}) var<uniform> params: Params;

var<workgroup> xs: array<vec4<f32>, ${m * (d / 4)}>; // (sequence, d / 4) the normed input
var<workgroup> squareSums: array<f32, ${m * THREADS}>; // (sequence, thread)
var<workgroup> scale: array<f32, M>;
var<workgroup> dots: array<f32, ${channels * m * (lanes + 1)}>; // (team, sequence, lane), padded
var<workgroup> us: array<f32, ${m * channels}>; // (sequence, channel): the conv's input, then output

fn silu(v: f32) -> f32 { return v / (1.0 + exp(-v)); }

@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let team = li / L;
  let lane = li % L;
  let row = wg.x * CIN + team; // of in_proj
  let isConv = wg.x >= CB0 && wg.x < CB1;
  let c0 = (wg.x - CB0) * CIN; // a conv block's first channel
  var wv: array<vec4<f32>, RUN>;
  for (var i = 0u; i < RUN; i++) {
    let c = lane + i * L;
    wv[i] = vec4<f32>(0.0);
    if (c < D4${live}) { wv[i] = inProj[row * D4 + c]; }
  }
  // A conv block's conv inputs (thread per (sequence, channel)) and x_proj slice (thread per row).
  let cs = li % CIN;
  let cr = li / CIN;
  var cw: array<f32, W>;
  var taps: array<f32, W>; // the conv state, then the new input
  var cb = 0.0;${xProj ? '\n  var wx: array<vec4<f32>, C4>;' : ''}
  if (isConv) {
    if (cr < params.batch && li < M * CIN) {
      for (var j = 0u; j < W; j++) { cw[j] = convWeight[(c0 + cs) * W + j]; }
      for (var j = 0u; j + 1u < W; j++) { taps[j] = convState[(cr * CR + c0 + cs) * (W - 1u) + j]; }
      if (params.hasConvBias != 0u) { cb = convBias[c0 + cs]; }
    }${xProj ? '\n    if (li < E) { for (var j = 0u; j < C4; j++) { wx[j] = xProj[(li * CR + c0) / 4u + j]; } }' : ''}
  }
  // Each sequence's input scale (Mamba-2's gated norm of the previous block, else 1).
  var partScale: array<f32, M>;
  for (var s = 0u; s < M; s++) {
    partScale[s] = 1.0;${
      scaled
        ? `
    if (s < params.batch) {
      ${loadSquares(parts)}
      partScale[s] = inverseSqrt(total / ${scaled}.0 + params.eps);
    }`
        : ''
    }
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
  for (var s = 0u; s < M; s++) { squareSums[s * ${THREADS}u + li] = sq[s]; }
  workgroupBarrier();
  for (var step = ${THREADS / 2}u; step > 0u; step /= 2u) {
    if (li < step) { for (var s = 0u; s < M; s++) { squareSums[s * ${THREADS}u + li] += squareSums[s * ${THREADS}u + li + step]; } }
    workgroupBarrier();
  }
  if (li < M) { scale[li] = inverseSqrt(squareSums[li * ${THREADS}u] / f32(D4 * 4u) + params.eps); }
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
        if (c < D4${live}) { wv[i] = inProj[row * D4 + c]; }
      }
    }
  }
  for (var s = 0u; s < M; s++) { dots[(team * M + s) * (L + 1u) + lane] = acc[s]; }
  workgroupBarrier();
  if (li < M * CIN) {
    let t = li % CIN; // a team
    let s = li / CIN;
    let r = wg.x * CIN + t;
    var v = 0.0;
    for (var l = 0u; l < L; l++) { v += dots[(t * M + s) * (L + 1u) + l]; }
    v *= scale[s];
    if (params.hasInBias != 0u${live.replace('row', 'r')}) { v += inBias[r]; }
    if (isConv) { us[li] = v; }
    else if (s < params.batch${live.replace('row', 'r')}) { out[s * ROWS + r] = v; }
  }
  if (!isConv) { return; }
  workgroupBarrier();
  // The conv of (sequence cr, channel cs)${xProj ? ", then x_proj's share of the block" : ''}.
  if (li < M * CIN) {
    var u = 0.0;
    if (cr < params.batch) {
      taps[W - 1u] = us[li];
      var a = cb;
      for (var j = 0u; j < W; j++) { a += cw[j] * taps[j]; }
      for (var j = 0u; j + 1u < W; j++) { ${separate ? 'convStateOut' : 'convState'}[(cr * CR + c0 + cs) * (W - 1u) + j] = taps[j + 1u]; }
      u = silu(a);
      out[cr * ROWS + CB0 * CIN + c0 + cs] = u;
    }
    us[li] = u;
  }${
    xProj
      ? `
  workgroupBarrier();
  if (li < E) {
    for (var s = 0u; s < M; s++) {
      if (s < params.batch) {
        var v = 0.0;
        for (var j = 0u; j < C4; j++) {
          let at = s * CIN + 4u * j;
          v += dot(wx[j], vec4<f32>(us[at], us[at + 1u], us[at + 2u], us[at + 3u]));
        }
        partial[(s * KX + wg.x - CB0) * E + li] = v;
      }
    }
  }`
      : ''
  }
}`;
  sources.set(key, source);
  return source;
}

/**
 * The P partial sums of one input vec4, written out: all P loads are issued before the first add
 * (a loop over a runtime P issued them one after another, ~0.3 µs of L2 latency each); times the
 * sequence's scale.
 */
function loadParts(parts: number): string {
  const loads = Array.from(
    { length: parts },
    (_, p) => `let h${p} = hidden[(${p}u * params.batch + s) * D4 + e];`,
  );
  return `${loads.join('\n      ')}
      v = partScale[s] * (${Array.from({ length: parts }, (_, p) => `h${p}`).join(' + ')});`;
}

/** Σ_p squares[p, s] into `total`, all P loads issued first. */
function loadSquares(parts: number): string {
  const loads = Array.from({ length: parts }, (_, p) => `let q${p} = squares[${p}u * params.batch + s];`);
  return `${loads.join('\n      ')}
      let total = ${Array.from({ length: parts }, (_, p) => `q${p}`).join(' + ')};`;
}
