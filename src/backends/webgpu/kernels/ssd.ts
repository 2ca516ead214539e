// WGSL kernels: Mamba-2's SSD as its recurrence, with the Δ preprocessing fused in:
//   Δ = clamp(softplus(dt + dtBias)), h = exp(ΔA) h + Δ x B_tᵀ, y = h C_t + D x.
// A thread owns one (batch, head, channel p): its row of the state (n values, a compile-time
// constant, held as n/4 vec4 when n % 4 == 0) stays in registers while it walks time; B_t, C_t
// of the head's group are shared reads (vec4 loads, served from cache).
// Two forms, chosen by how much parallelism (batch, head, p) alone gives:
// - one pass (short sequences, decoding): `scan` walks the whole length from the state and
//   writes the final state back. Grid (⌈p/64⌉, h, b).
// - chunked over length: K chunks of Lc positions.
//   1. `chunkStates`: thread (b, chunk, head, p) runs its chunk from zero, writes the chunk's end
//      state S (b, K, h, p, n) and ΣΔ over the chunk (b, K, h). Grid (⌈p/64⌉, h·K, b).
//   2. `carry`: thread (b, head, p, i) walks the chunks, s ← exp(A·ΣΔ_c) s + S_c, overwriting S_c
//      with the state before chunk c and writing the final state. (exp(A·ΣΔ) replaces the
//      product of the per-step decays: equal up to f32 rounding.)
//   3. `scan` again from S_c, writing y only.
//   Only K chunk states reach memory, never per-step states. (The matmul-shaped chunked SSD of
//   the paper is the faster form still to come; this one is exact and parallel over length.)
// Bindings (scan/chunkStates): 0 x (b, l, h, p) · 1 dt (b, l, h) · 2 dtBias (h) · 3 A (h) ·
// 4 B (b, l, g, n) · 5 C (b, l, g, n) · 6 D (h) · 7 state (b, h, p, n) or S (b, K, h, p, n) rw ·
// 8 y (b, l, h, p) or ΣΔ (b, K, h) · 9 params {l, h, p, g, dtMin, dtMax, chunk, chunks,
// writeState}. carry: 0 A (h) · 1 ΣΔ (b, K, h) · 2 S rw · 3 state rw · 4 params.
// Reference: ssdRecurrent / ssdChunked in src/backends/cpu/ssd.ts.

import type { SsdArgs } from '../../backend.ts';
import type { GpuTensor } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';
import { grid1d } from './grid.ts';

/** Threads the chunked form aims for, and the shortest chunk it makes (tests may change them). */
export const ssdTuning = { targetThreads: 131072, minChunk: 16 };

const header = (n: number) => {
  const vec = n % 4 === 0 ? 4 : 1;
  return /* wgsl */ `
alias V = ${vec === 4 ? 'vec4<f32>' : 'f32'};
const NV = ${n / vec}u; // state values per thread, in V units
struct Params { l: u32, h: u32, p: u32, g: u32, dtMin: f32, dtMax: f32, chunk: u32, chunks: u32,
  writeState: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dt: array<f32>;
@group(0) @binding(2) var<storage, read> dtBias: array<f32>;
@group(0) @binding(3) var<storage, read> A: array<f32>;
@group(0) @binding(4) var<storage, read> B: array<V>;
@group(0) @binding(5) var<storage, read> C: array<V>;
@group(0) @binding(6) var<storage, read> D: array<f32>;
@group(0) @binding(7) var<storage, read_write> state: array<V>;
@group(0) @binding(8) var<storage, read_write> out: array<f32>;
@group(0) @binding(9) var<uniform> params: Params;

fn softplus(v: f32) -> f32 { return select(log(1.0 + exp(v)), v, v > 20.0); }
fn dotv(a: V, b: V) -> f32 { return ${vec === 4 ? 'dot(a, b)' : 'a * b'}; }
fn delta(row: u32, hh: u32) -> f32 {
  return clamp(softplus(dt[row * params.h + hh] + dtBias[hh]), params.dtMin, params.dtMax);
}`;
};

const sources = new Map<string, string>();
function memo(key: string, make: () => string): string {
  let s = sources.get(key);
  if (s === undefined) {
    s = make();
    sources.set(key, s);
  }
  return s;
}

const scanWgsl = (n: number) =>
  memo(
    `scan${n}`,
    () => /* wgsl */ `${header(n)}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let pi = id.x;
  let hh = id.y % params.h;
  let chunk = id.y / params.h;
  let bi = id.z;
  if (pi >= params.p) { return; }
  let group = hh / (params.h / params.g);
  var s: array<V, NV>;
  let s0 = (((bi * params.chunks + chunk) * params.h + hh) * params.p + pi) * NV;
  for (var i = 0u; i < NV; i++) { s[i] = state[s0 + i]; }
  let a = A[hh];
  let skip = D[hh];
  let t0 = chunk * params.chunk;
  let t1 = min(t0 + params.chunk, params.l);
  for (var t = t0; t < t1; t++) {
    let row = bi * params.l + t;
    let dl = delta(row, hh);
    let decay = exp(dl * a);
    let at = (row * params.h + hh) * params.p + pi;
    let xv = x[at];
    let dx = dl * xv;
    let bc = (row * params.g + group) * NV;
    var acc = 0.0;
    for (var i = 0u; i < NV; i++) {
      s[i] = decay * s[i] + dx * B[bc + i];
      acc += dotv(s[i], C[bc + i]);
    }
    out[at] = acc + skip * xv;
  }
  if (params.writeState != 0u) { for (var i = 0u; i < NV; i++) { state[s0 + i] = s[i]; } }
}`,
  );

const chunkStatesWgsl = (n: number) =>
  memo(
    `chunk${n}`,
    () => /* wgsl */ `${header(n)}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let pi = id.x;
  let hh = id.y % params.h;
  let chunk = id.y / params.h;
  let bi = id.z;
  if (pi >= params.p) { return; }
  let group = hh / (params.h / params.g);
  var s: array<V, NV>;
  let a = A[hh];
  let t0 = chunk * params.chunk;
  let t1 = min(t0 + params.chunk, params.l);
  var sumDt = 0.0;
  for (var t = t0; t < t1; t++) {
    let row = bi * params.l + t;
    let dl = delta(row, hh);
    let decay = exp(dl * a);
    sumDt += dl;
    let dx = dl * x[(row * params.h + hh) * params.p + pi];
    let bc = (row * params.g + group) * NV;
    for (var i = 0u; i < NV; i++) { s[i] = decay * s[i] + dx * B[bc + i]; }
  }
  let c0 = (bi * params.chunks + chunk) * params.h + hh;
  let s0 = (c0 * params.p + pi) * NV;
  for (var i = 0u; i < NV; i++) { state[s0 + i] = s[i]; }
  if (pi == 0u) { out[c0] = sumDt; }
}`,
  );

const carryWgsl = /* wgsl */ `
struct Params { h: u32, chunks: u32, total: u32, pn: u32, stride: u32 }
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> sumDt: array<f32>;
@group(0) @binding(2) var<storage, read_write> S: array<f32>;
@group(0) @binding(3) var<storage, read_write> state: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let e = id.x + id.y * params.stride; // (b, head, p, i) of the state
  if (e >= params.total) { return; }
  let hpn = params.h * params.pn;
  let bi = e / hpn;
  let hh = (e % hpn) / params.pn;
  let rest = e % params.pn;
  let a = A[hh];
  var s = state[e];
  for (var c = 0u; c < params.chunks; c++) {
    let c0 = (bi * params.chunks + c) * params.h + hh;
    let at = c0 * params.pn + rest;
    let local = S[at];
    S[at] = s;
    s = exp(a * sumDt[c0]) * s + local;
  }
  state[e] = s;
}`;

export function ssd(be: WebGpuBackend, args: SsdArgs): GpuTensor {
  const [b, l] = args.x.shape;
  const [, h, p, n] = args.state.shape;
  const g = args.B.shape[2] / n;
  const y = be.alloc(args.x.shape);
  const { x, dt, dtBias, A, B, C, D, state } = args;
  const [dtMin, dtMax] = args.dtLimit;
  const want = Math.ceil(ssdTuning.targetThreads / (b * h * p));
  const chunks0 = Math.max(1, Math.min(want, Math.floor(l / ssdTuning.minChunk)));
  const chunk = Math.ceil(l / chunks0);
  const chunks = Math.ceil(l / chunk);
  const base = [l, h, p, g, { f32: dtMin }, { f32: Math.min(dtMax, 3.4e38) }];
  const scan = { name: 'ssd', wgsl: scanWgsl(n) };
  const groups = Math.ceil(p / 64);
  if (chunks === 1) {
    be.dispatch(scan, [x, dt, dtBias, A, B, C, D, state, y], [...base, l, 1, 1], [groups, h, b]);
    return y;
  }
  const S = be.alloc([b, chunks, h, p, n]);
  const sumDt = be.alloc([b, chunks, h]);
  const params = [...base, chunk, chunks, 0];
  be.dispatch(
    { name: 'ssdChunkStates', wgsl: chunkStatesWgsl(n) },
    [x, dt, dtBias, A, B, C, D, S, sumDt],
    params,
    [groups, h * chunks, b],
  );
  const total = b * h * p * n;
  const { workgroups, stride } = grid1d(be, total, 256);
  be.dispatch(
    { name: 'ssdCarry', wgsl: carryWgsl },
    [A, sumDt, S, state],
    [h, chunks, total, p * n, stride],
    workgroups,
  );
  be.dispatch(scan, [x, dt, dtBias, A, B, C, D, S, y], params, [groups, h * chunks, b]);
  return y;
}
