// WGSL kernels: Mamba's fused selective scan. Discretization, recurrence, C contraction, D skip
// and the SiLU(z) gate in one pass; the expanded state never leaves registers: a thread owns one
// (batch, channel) and holds its n states (n is a compile-time constant) while it walks time.
//   Δ = softplus(delta + bias); h = exp(ΔA) h + Δ B_t u; y = (C_t·h + D u) · SiLU(z)
// Two forms, chosen by how much parallelism (batch, channel) alone gives:
// - one pass (short sequences, decoding): kernel `scan` walks the whole length from the state
//   and writes the final state back. Grid (⌈d/64⌉, 1, b).
// - chunked over length (long sequences): the length is cut into K chunks of Lc positions.
//   1. `chunkStates`: thread (b, chunk, channel) runs its chunk from a zero state, writes the
//      chunk's end state S (b, K, d, n) and ΣΔ over the chunk (b, K, d). Grid (⌈d/64⌉, K, b).
//   2. `carry`: thread (b, channel, i) walks the chunks in order, h ← exp(A·ΣΔ_c) h + S_c,
//      overwriting S_c with the state before chunk c and writing the final state to `state`.
//      (exp(A·ΣΔ) replaces the product of the per-step exp(Δ_t A): equal up to f32 rounding.)
//   3. `scan` again, thread (b, chunk, channel) starting from S_c, writing y only.
//   Only K chunk states per (b, d) reach memory, never the per-step states.
// Bindings (scan/chunkStates): 0 u (b, l, d) · 1 delta (b, l, d) · 2 deltaBias (d) · 3 A (d, n) ·
// 4 B (b, l, n) · 5 C (b, l, n) · 6 D (d) · 7 z (b, l, d) · 8 state (b, d, n) or S (b, K, d, n) ·
// 9 y (b, l, d) or ΣΔ (b, K, d) · 10 params {l, d, chunk, chunks, writeState, then offset and row
// stride of delta, B, C, z}: these four may be column views (Backend.split's parts, e.g. of the
// x_proj and in_proj outputs), bound as their whole buffers and read at offset + row·stride.
// With deltaProj (Mamba's dt_proj weight, (d, R)) delta is the low-rank Δ (b, l, R): the one-pass
// form (`scanProj`) computes Δ = delta_t · deltaProj[ch] itself (binding 10; params gain R), so a
// decoding step needs no dt_proj dispatch; the chunked form runs linear() first.
// carry: 0 A (d, n) · 1 ΣΔ (b, K, d) · 2 S (b, K, d, n) rw · 3 state (b, d, n) rw · 4 params
// {d, chunks, total}.
// Reference: selectiveScan in src/backends/cpu/selectiveScan.ts (and the float64 oracles).

import type { SelectiveScanArgs } from '../../backend.ts';
import { type GpuTensor, viewOf } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';
import { grid1d } from './grid.ts';
import { linear } from './linear.ts';
import { softplusWgsl } from './softplus.ts';

/** Threads the chunked form aims for, and the shortest chunk it makes (tests may change them). */
export const scanTuning = { targetThreads: 131072, minChunk: 16 };

const header = (n: number, proj = false) => /* wgsl */ `
const N = ${n}u;
struct Params { l: u32, d: u32, chunk: u32, chunks: u32, writeState: u32,
  deltaOffset: u32, deltaStride: u32, bOffset: u32, bStride: u32, cOffset: u32, cStride: u32,
  zOffset: u32, zStride: u32, rank: u32 }
@group(0) @binding(0) var<storage, read> u: array<f32>;
@group(0) @binding(1) var<storage, read> delta: array<f32>;
@group(0) @binding(2) var<storage, read> deltaBias: array<f32>;
@group(0) @binding(3) var<storage, read> A: array<f32>;
@group(0) @binding(4) var<storage, read> B: array<f32>;
@group(0) @binding(5) var<storage, read> C: array<f32>;
@group(0) @binding(6) var<storage, read> D: array<f32>;
@group(0) @binding(7) var<storage, read> z: array<f32>;
@group(0) @binding(8) var<storage, read_write> state: array<f32>;
@group(0) @binding(9) var<storage, read_write> out: array<f32>;
${
  proj
    ? `@group(0) @binding(10) var<storage, read> deltaProj: array<f32>;
@group(0) @binding(11) var<uniform> params: Params;`
    : '@group(0) @binding(10) var<uniform> params: Params;'
}

${softplusWgsl}
${
  proj
    ? `fn deltaAt(row: u32, ch: u32) -> f32 {
  let at = params.deltaOffset + row * params.deltaStride;
  var s = 0.0;
  for (var r = 0u; r < params.rank; r++) { s += delta[at + r] * deltaProj[ch * params.rank + r]; }
  return s;
}`
    : 'fn deltaAt(row: u32, ch: u32) -> f32 { return delta[params.deltaOffset + row * params.deltaStride + ch]; }'
}
fn bAt(row: u32, i: u32) -> f32 { return B[params.bOffset + row * params.bStride + i]; }
fn cAt(row: u32, i: u32) -> f32 { return C[params.cOffset + row * params.cStride + i]; }
fn zAt(row: u32, ch: u32) -> f32 { return z[params.zOffset + row * params.zStride + ch]; }`;

const scanSources = new Map<string, string>();
function scanWgsl(n: number, proj = false): string {
  let s = scanSources.get(`${n}:${proj}`);
  if (s === undefined) {
    s = /* wgsl */ `${header(n, proj)}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let ch = id.x;
  let chunk = id.y;
  let bi = id.z;
  if (ch >= params.d) { return; }
  var h: array<f32, N>;
  var a: array<f32, N>;
  // The state before this chunk: the input state (one pass) or S_c (chunked).
  let s0 = ((bi * params.chunks + chunk) * params.d + ch) * N;
  for (var i = 0u; i < N; i++) { h[i] = state[s0 + i]; a[i] = A[ch * N + i]; }
  let bias = deltaBias[ch];
  let skip = D[ch];
  let t0 = chunk * params.chunk;
  let t1 = min(t0 + params.chunk, params.l);
  for (var t = t0; t < t1; t++) {
    let row = bi * params.l + t;
    let at = row * params.d + ch;
    let dt = softplus(deltaAt(row, ch) + bias);
    let x = u[at];
    var acc = 0.0;
    for (var i = 0u; i < N; i++) {
      h[i] = exp(dt * a[i]) * h[i] + dt * x * bAt(row, i);
      acc += cAt(row, i) * h[i];
    }
    let g = zAt(row, ch);
    out[at] = (acc + skip * x) * (g / (1.0 + exp(-g)));
  }
  if (params.writeState != 0u) { for (var i = 0u; i < N; i++) { state[s0 + i] = h[i]; } }
}`;
    scanSources.set(`${n}:${proj}`, s);
  }
  return s;
}

const chunkSources = new Map<number, string>();
function chunkStatesWgsl(n: number): string {
  let s = chunkSources.get(n);
  if (s === undefined) {
    s = /* wgsl */ `${header(n)}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let ch = id.x;
  let chunk = id.y;
  let bi = id.z;
  if (ch >= params.d) { return; }
  var h: array<f32, N>;
  var a: array<f32, N>;
  for (var i = 0u; i < N; i++) { a[i] = A[ch * N + i]; }
  let bias = deltaBias[ch];
  let t0 = chunk * params.chunk;
  let t1 = min(t0 + params.chunk, params.l);
  var sumDt = 0.0;
  for (var t = t0; t < t1; t++) {
    let row = bi * params.l + t;
    let dt = softplus(deltaAt(row, ch) + bias);
    let dx = dt * u[row * params.d + ch];
    sumDt += dt;
    for (var i = 0u; i < N; i++) { h[i] = exp(dt * a[i]) * h[i] + dx * bAt(row, i); }
  }
  let c0 = (bi * params.chunks + chunk) * params.d + ch;
  for (var i = 0u; i < N; i++) { state[c0 * N + i] = h[i]; }
  out[c0] = sumDt;
}`;
    chunkSources.set(n, s);
  }
  return s;
}

const carryWgsl = /* wgsl */ `
struct Params { d: u32, chunks: u32, total: u32, n: u32, stride: u32 }
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> sumDt: array<f32>;
@group(0) @binding(2) var<storage, read_write> S: array<f32>;
@group(0) @binding(3) var<storage, read_write> state: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let e = id.x + id.y * params.stride; // (b, channel, i) of the state
  if (e >= params.total) { return; }
  let dn = params.d * params.n;
  let bi = e / dn;
  let ch = (e % dn) / params.n;
  let i = e % params.n;
  let a = A[ch * params.n + i];
  var h = state[e];
  for (var c = 0u; c < params.chunks; c++) {
    let at = ((bi * params.chunks + c) * params.d + ch) * params.n + i;
    let local = S[at];
    S[at] = h;
    h = exp(a * sumDt[(bi * params.chunks + c) * params.d + ch]) * h + local;
  }
  state[e] = h;
}`;

export function selectiveScan(be: WebGpuBackend, args: SelectiveScanArgs): GpuTensor {
  const [b, l, d] = args.u.shape;
  const n = args.A.shape[1];
  const y = be.alloc(args.u.shape);
  const { u, deltaBias, A, D, state } = args;
  const want = Math.ceil(scanTuning.targetThreads / (b * d));
  const chunks0 = Math.max(1, Math.min(want, Math.floor(l / scanTuning.minChunk)));
  const chunk = Math.ceil(l / chunks0);
  const chunks = Math.ceil(l / chunk);
  const proj = args.deltaProj as GpuTensor | undefined;
  let deltaIn = args.delta as GpuTensor;
  if (proj && chunks > 1) deltaIn = linear(be, deltaIn, proj, null); // (b, l, d)
  const [delta, B, C, z] = [deltaIn, args.B, args.C, args.z].map((t) => viewOf(t as GpuTensor));
  const views = [delta, B, C, z].flatMap((v) => [v.offset, v.stride]);
  const [dv, Bv, Cv, zv] = [delta.base, B.base, C.base, z.base];
  const groups = Math.ceil(d / 64);
  if (chunks === 1) {
    const fused = proj !== undefined;
    const scan = { name: fused ? 'selectiveScanProj' : 'selectiveScan', wgsl: scanWgsl(n, fused) };
    const params = [l, d, l, 1, 1, ...views, fused ? proj.shape[1] : 0];
    const buffers = [u, dv, deltaBias, A, Bv, Cv, D, zv, state, y];
    be.dispatch(scan, fused ? [...buffers, proj] : buffers, params, [groups, 1, b]);
    return y;
  }
  const scan = { name: 'selectiveScan', wgsl: scanWgsl(n) };
  const S = be.alloc([b, chunks, d, n]);
  const sumDt = be.alloc([b, chunks, d]);
  const params = [l, d, chunk, chunks, 0, ...views, 0];
  be.dispatch(
    { name: 'selectiveScanChunkStates', wgsl: chunkStatesWgsl(n) },
    [u, dv, deltaBias, A, Bv, Cv, D, zv, S, sumDt],
    params,
    [groups, chunks, b],
  );
  const total = b * d * n;
  const { workgroups, stride } = grid1d(be, total, 256);
  be.dispatch(
    { name: 'selectiveScanCarry', wgsl: carryWgsl },
    [A, sumDt, S, state],
    [d, chunks, total, n, stride],
    workgroups,
  );
  be.dispatch(scan, [u, dv, deltaBias, A, Bv, Cv, D, zv, S, y], params, [groups, chunks, b]);
  return y;
}
