// WGSL kernel `mambaBlockOut`, the second of Backend.mambaBlockStep's two dispatches at small
// batches (mambaBlockStep.ts): the rest of a decoding Mamba block after mambaBlockIn.ts,
//   [Δ_low, B, C] = the sum of the KX blocks' partial x_proj products;
//   Δ = softplus(dt_proj · Δ_low + dt_bias); h = exp(ΔA) h + Δ B u; y = (C·h + D u) · SiLU(z);
//   and (OUT) out_proj's share of the workgroup's channels: out[g] = out_proj[:, block g] · y[g],
// left as G = dInner / S partial sums that the next block's mambaBlockIn adds up with its
// residual (OUT = false, for the last block: y itself, projected by a separate out_proj).
// Grid (G, b, K): workgroup (g, s, k) owns channels g·S .. of sequence s, and slice k of out_proj's
// rows (r0 = k·DK .. of DK = ⌈d / K⌉). 256 threads, Q = n / 4 per
// channel (S = 256 / Q channels), each with one vec4 of the channel's n states:
// - each thread first loads what it needs (its channel's dt_proj row, A and state vec4s, u, z,
//   D, dt_bias) and, with OUT, the first out_proj row it will multiply;
// - the workgroup adds the KX partials of each of the E = R + 2n outputs (PE = ⌊256 / E⌋ threads
//   per output each add every PE-th block, then one thread adds those, in order);
// - each thread computes its channel's Δ (the Q threads of a channel alike), advances its 4
//   states and writes them; the Q shares of C·h are added by the channel's first thread, which
//   finishes y into workgroup memory (or writes it, without OUT);
// - OUT: thread i computes rows r0 + i, r0 + i + 256, … of the slice's out_proj rows over the S
//   channels (S / 4 vec4 loads each) and writes out[g, s, row], the out_proj bias added by
//   workgroup g = 0.
// Slices (K, compile-time, grid z): with the states advanced out of place (`separate`), K
// workgroups per (group, sequence) each run the group's scan (cheap: S channels) and take d / K of
// out_proj's rows, spreading its reads (the most bytes of the kernel) over K times more SMs; slice
// 0 writes the state. In place K is 1: a slice writing the state would race the others' reads.
// Bindings: 0 uz (b, 2·dInner): [u, z] · 1 partial (b, KX, E) · 2 dtProj (dInner, R) ·
// 3 dtBias (dInner) · 4 A (dInner, n) · 5 D (dInner) · 6 ssmState (b, dInner, n) rw ·
// 7 outProj (d, dInner) · 8 outBias (d) (a stand-in when hasOutBias is 0) ·
// 9 out: (G, b, d) partial sums with OUT, else y (b, dInner) · 10 params {batch, hasOutBias};
// separate (stateDecl): 6 ssmState read · 10 ssmStateOut (b, dInner, n) · 11 params.
// d, dInner, n, R, KX, OUT, K are compile-time; n, R, d, S are multiples of 4.
// Reference: mambaBlockStepOps in src/backends/composedOps.ts from mambaStep's x_proj on (run on
// the CPU; the summation orders differ).

import { addShares, stateDecl } from './mambaStepConv.ts';
import { softplusWgsl } from './softplus.ts';

const THREADS = 256;

/** What the block's two kernels are compiled for. */
export interface BlockShape {
  d: number;
  dInner: number;
  w: number;
  n: number;
  r: number;
}

/** Channels per workgroup of mambaBlockOut: 256 threads, n / 4 per channel. */
export function outChannels(n: number): number {
  return (THREADS * 4) / n;
}

const sources = new Map<string, string>();

export function outWgsl(
  shape: BlockShape,
  xBlocks: number,
  out: boolean,
  separate: boolean,
  slices: number,
): string {
  const key = `${Object.values(shape)}:${xBlocks}:${out}:${separate}:${slices}`;
  let source = sources.get(key);
  if (source !== undefined) return source;
  const { d, dInner, n, r } = shape;
  const e = r + 2 * n;
  const pe = Math.floor(THREADS / e);
  const s = outChannels(n);
  const rows = Math.ceil(d / slices); // out_proj rows per slice
  source = /* wgsl */ `
const D = ${d}u;
const DI = ${dInner}u;
const DI4 = ${dInner / 4}u;
const N = ${n}u;
const N4 = ${n / 4}u; // threads per channel (Q)
const R = ${r}u;
const R4 = ${r / 4}u;
const E = ${e}u;
const KX = ${xBlocks}u;
const PE = ${pe}u; // threads per output adding partials
const KP = ${Math.ceil(xBlocks / pe)}u; // partials per thread
const S = ${s}u;
const S4 = ${s / 4}u;
const DK = ${rows}u; // out_proj rows per slice
const ROWS = ${Math.ceil(rows / THREADS)}u; // out_proj rows per thread
struct Params { batch: u32, hasOutBias: u32 }
@group(0) @binding(0) var<storage, read> uz: array<f32>;
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read> dtProj: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> dtBias: array<f32>;
@group(0) @binding(4) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> D_: array<f32>;
${stateDecl('ssmState', 'vec4<f32>', 6, separate, 10)}
@group(0) @binding(7) var<storage, read> outProj: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> outBias: array<f32>;
@group(0) @binding(9) var<storage, read_write> out: array<f32>;
@group(0) @binding(${separate ? 11 : 10}) var<uniform> params: Params;

var<workgroup> sums: array<f32, ${pe * e}>; // (thread share, output)
var<workgroup> dbc: array<f32, ${e}>; // [Δ_low (R), B (N), C (N)]
var<workgroup> shares: array<f32, ${THREADS}>; // (channel, q): C·h over q's states
var<workgroup> ys: array<vec4<f32>, S4>;

${addShares}
${softplusWgsl}
fn silu(v: f32) -> f32 { return v / (1.0 + exp(-v)); }
fn run4(at: u32) -> vec4<f32> { return vec4<f32>(dbc[at], dbc[at + 1u], dbc[at + 2u], dbc[at + 3u]); }

@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let seq = wg.y;
  let r0 = wg.z * DK; // the slice's first out_proj row
  let c = li / N4;
  let q = li % N4;
  let ch = wg.x * S + c;
  var dtw: array<vec4<f32>, R4>;
  for (var k = 0u; k < R4; k++) { dtw[k] = dtProj[ch * R4 + k]; }
  let a = A[ch * N4 + q];
  let at = (seq * DI + ch) * N4 + q;
  let h = ssmState[at];
  let u = uz[seq * 2u * DI + ch];
  let z = uz[seq * 2u * DI + DI + ch];
  let skip = D_[ch];
  let bias = dtBias[ch];
  ${
    out
      ? `var wo: array<vec4<f32>, S4>; // the first out_proj row of this thread
  for (var j = 0u; j < S4; j++) { wo[j] = outProj[min(r0 + li, D - 1u) * DI4 + wg.x * S4 + j]; }`
      : ''
  }
  if (li < PE * E) {
    let o = li % E;
    let p = li / E;
    sums[li] = addShares(seq * KX * E + o, p, PE, KX, true);
  }
  workgroupBarrier();
  if (li < E) {
    var v = 0.0;
    for (var p = 0u; p < PE; p++) { v += sums[p * E + li]; }
    dbc[li] = v;
  }
  workgroupBarrier();
  var dt = bias;
  for (var k = 0u; k < R4; k++) { dt += dot(dtw[k], run4(4u * k)); }
  let delta = softplus(dt);
  let next = exp(delta * a) * h + (delta * u) * run4(R + 4u * q);
  ${separate ? (slices > 1 ? 'if (wg.z == 0u) { ssmStateOut[at] = next; }' : 'ssmStateOut[at] = next;') : 'ssmState[at] = next;'}
  shares[li] = dot(run4(R + N + 4u * q), next);
  workgroupBarrier();
  if (q == 0u) {
    var y = skip * u;
    for (var j = 0u; j < N4; j++) { y += shares[li + j]; }
    y *= silu(z);
    ${out ? 'ys[c / 4u][c % 4u] = y;' : 'out[seq * DI + ch] = y;'}
  }
  ${
    out
      ? `workgroupBarrier();
  for (var i = 0u; i < ROWS; i++) {
    let k = li + i * ${THREADS}u;
    let o = r0 + k;
    if (k < DK && o < D) {
      if (i > 0u) { for (var j = 0u; j < S4; j++) { wo[j] = outProj[o * DI4 + wg.x * S4 + j]; } }
      var v = 0.0;
      for (var j = 0u; j < S4; j++) { v += dot(wo[j], ys[j]); }
      if (wg.x == 0u && params.hasOutBias != 0u) { v += outBias[o]; }
      out[(wg.x * params.batch + seq) * D + o] = v;
    }
  }`
      : ''
  }
}`;
  sources.set(key, source);
  return source;
}
