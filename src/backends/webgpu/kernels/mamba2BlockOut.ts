// WGSL kernel `mamba2BlockOut`, the second of Backend.mamba2BlockStep's two dispatches at small
// batches (mamba2BlockStep.ts): the rest of a decoding Mamba-2 block (one group of B and C) after
// mambaBlockIn.ts has written zxbcdt = [z, x, B, C (through the conv), Δ_raw]:
//   Δ = clamp(softplus(Δ_raw + dt_bias), dtMin, dtMax); h = exp(Δ A) h + Δ x Bᵀ (per head, p × n);
//   y = h C + D x; and (OUT) the head's share of out_proj of the gated norm's input:
//   out[head] = out_proj[:, head's channels] · (y · SiLU(z) · normWeight), with the head's share
//   of the norm's squares Σ v² (v = y with normBeforeGate, else y · SiLU(z)).
// The gated norm's scale rsqrt(Σ squares / dInner + eps) is one number per sequence (one group):
// it factors out of out_proj, so the next block's mambaBlockIn applies it to the H partial sums
// while it adds them. Without OUT (the last block) the kernel writes y itself; the gated norm and
// out_proj then run as their own ops (the final norm's LM head has 50k rows to feed).
// Grid (H, b, K): workgroup (head, s, k) owns head `head` of sequence s and slice k of out_proj's
// rows (r0 = k·DK .., DK = ⌈d / K⌉). 256 threads, Q = 256 / P per channel, each holding NV vec4 of
// the channel's n states (those 4·NV·q ..):
// - each thread loads its channel's x and z, Δ_raw, its states and, with OUT, the first out_proj
//   row it will multiply;
// - it advances its states (writing them: slice 0 only, see below) and adds its share of h C; the
//   channel's first thread adds the Q shares and D x, and keeps v · normWeight in workgroup memory
//   and v² for the squares;
// - OUT: thread i computes rows r0 + i, r0 + i + 256, … of the slice (P / 4 vec4 loads each) and
//   writes out[head, s, row]; thread 0 of slice 0 writes the head's squares.
// Slices (K, compile-time): with the states advanced out of place (`separate`), K workgroups per
// (head, sequence) each advance the head's states (cheap) and take d / K of out_proj's rows,
// spreading its reads over more SMs; slice 0 writes the state. In place K is 1.
// Bindings: 0 zxbcdt (b, ROWS) · 1 dtBias (H) · 2 A (H) · 3 D (H) · 4 ssmState (b, H, P, n) rw ·
// 5 normWeight (dInner) · 6 outProj (d, dInner) · 7 out: (H, b, d) partial sums with OUT, else y
// (b, dInner) · 8 squares (H, b) (a scratch stand-in without OUT) · 9 params {batch, dtMin, dtMax};
// separate (stateDecl): 4 ssmState read · 9 ssmStateOut (b, H, P, n) · 10 params.
// d, dInner, H, P, n, ROWS, OUT, K and normBeforeGate are compile-time; d, dInner and P multiples
// of 4, 256 % P = 0, n % (4·Q) = 0.
// Reference: Mamba2Mixer.blockStep's composed ops from the SSD on (src/models/mamba2.ts: ssd's
// recurrence, gatedRmsNorm, out_proj), run on the CPU; the summation orders differ.

import { stateDecl } from './mambaStepConv.ts';
import { softplusWgsl } from './softplus.ts';

const THREADS = 256;

/** What the Mamba-2 block's kernels are compiled for (one group of B and C). */
export interface Block2Shape {
  d: number;
  dInner: number;
  heads: number;
  p: number; // head dim
  n: number;
  rows: number; // in_proj's rows: dInner + (dInner + 2n) + heads
  normBeforeGate: boolean;
}

/** Whether the kernel takes the shape (threads per channel and states per thread). */
export function out2Fits({ d, dInner, p, n }: Block2Shape): boolean {
  const q = THREADS / p;
  return d % 4 === 0 && dInner % 4 === 0 && p % 4 === 0 && THREADS % p === 0 && n % (4 * q) === 0;
}

const sources = new Map<string, string>();

export function out2Wgsl(shape: Block2Shape, out: boolean, separate: boolean, slices: number): string {
  const key = `${Object.values(shape)}:${out}:${separate}:${slices}`;
  let source = sources.get(key);
  if (source !== undefined) return source;
  const { d, dInner, heads, p, n, rows, normBeforeGate } = shape;
  const q = THREADS / p;
  const perSlice = Math.ceil(d / slices);
  const write = separate
    ? slices > 1
      ? 'if (wg.z == 0u) { ssmStateOut[at + i] = s; }'
      : 'ssmStateOut[at + i] = s;'
    : 'ssmState[at + i] = s;';
  source = /* wgsl */ `
const D = ${d}u;
const DI = ${dInner}u;
const DI4 = ${dInner / 4}u;
const H = ${heads}u;
const P = ${p}u;
const P4 = ${p / 4}u;
const N = ${n}u;
const N4 = ${n / 4}u;
const Q = ${q}u; // threads per channel
const NV = ${n / 4 / q}u; // state vec4 per thread
const ROWS = ${rows}u;
const BS = ${2 * dInner}u; // where B starts in a row of zxbcdt (x at DI, C at BS + N, Δ after C)
const DK = ${perSlice}u; // out_proj rows per slice
const RT = ${Math.ceil(perSlice / THREADS)}u; // out_proj rows per thread
struct Params { batch: u32, dtMin: f32, dtMax: f32 }
@group(0) @binding(0) var<storage, read> zx: array<f32>;
@group(0) @binding(1) var<storage, read> dtBias: array<f32>;
@group(0) @binding(2) var<storage, read> A: array<f32>;
@group(0) @binding(3) var<storage, read> Dskip: array<f32>;
${stateDecl('ssmState', 'vec4<f32>', 4, separate, 9)}
@group(0) @binding(5) var<storage, read> normWeight: array<f32>;
@group(0) @binding(6) var<storage, read> outProj: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;
@group(0) @binding(8) var<storage, read_write> squares: array<f32>;
@group(0) @binding(${separate ? 10 : 9}) var<uniform> params: Params;

var<workgroup> shares: array<f32, ${THREADS}>; // (channel, q): h C over q's states
var<workgroup> vs: array<vec4<f32>, P4>; // the norm's input times its weight, per channel
var<workgroup> sqs: array<f32, P>; // its squares, per channel

${softplusWgsl}
fn silu(v: f32) -> f32 { return v / (1.0 + exp(-v)); }
fn run4(at: u32) -> vec4<f32> { return vec4<f32>(zx[at], zx[at + 1u], zx[at + 2u], zx[at + 3u]); }

@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let head = wg.x;
  let seq = wg.y;
  let r0 = wg.z * DK; // the slice's first out_proj row
  let ch = li / Q;
  let qi = li % Q;
  let c = head * P + ch; // the channel in dInner
  let base = seq * ROWS;
  ${
    out
      ? `var wo: array<vec4<f32>, P4>; // the first out_proj row of this thread
  for (var j = 0u; j < P4; j++) { wo[j] = outProj[min(r0 + li, D - 1u) * DI4 + head * P4 + j]; }`
      : ''
  }
  let x = zx[base + DI + c];
  let z = zx[base + c];
  let delta = clamp(softplus(zx[base + BS + 2u * N + head] + dtBias[head]), params.dtMin, params.dtMax);
  let decay = exp(delta * A[head]);
  let dx = delta * x;
  let at = ((seq * H + head) * P + ch) * N4 + qi * NV;
  var acc = 0.0;
  for (var i = 0u; i < NV; i++) {
    let k = 4u * (qi * NV + i);
    let s = decay * ssmState[at + i] + dx * run4(base + BS + k);
    ${write}
    acc += dot(run4(base + BS + N + k), s);
  }
  shares[li] = acc;
  workgroupBarrier();
  if (qi == 0u) {
    var y = Dskip[head] * x;
    for (var j = 0u; j < Q; j++) { y += shares[li + j]; }
    ${
      out
        ? `let g = y * silu(z);
    vs[ch / 4u][ch % 4u] = g * normWeight[c];
    let v = ${normBeforeGate ? 'y' : 'g'};
    sqs[ch] = v * v;`
        : 'out[seq * DI + c] = y;'
    }
  }
  ${
    out
      ? `workgroupBarrier();
  if (li == 0u && wg.z == 0u) {
    var total = 0.0;
    for (var j = 0u; j < P; j++) { total += sqs[j]; }
    squares[head * params.batch + seq] = total;
  }
  for (var i = 0u; i < RT; i++) {
    let k = li + i * ${THREADS}u;
    let o = r0 + k;
    if (k < DK && o < D) {
      if (i > 0u) { for (var j = 0u; j < P4; j++) { wo[j] = outProj[o * DI4 + head * P4 + j]; } }
      var v = 0.0;
      for (var j = 0u; j < P4; j++) { v += dot(wo[j], vs[j]); }
      out[(head * params.batch + seq) * D + o] = v;
    }
  }`
      : ''
  }
}`;
  sources.set(key, source);
  return source;
}
