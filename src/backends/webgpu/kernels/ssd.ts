// WGSL kernels: Mamba-2's SSD, with the Δ preprocessing fused in:
//   Δ = clamp(softplus(dt + dtBias), dtLimit), h = exp(ΔA) h + Δ x B_tᵀ, y = h C_t + D x.
// Two forms, chosen by length:
// - short sequences (decoding, l ≤ ssdTuning.scanMaxLength): `scan`, the recurrence. A thread
//   owns one (batch, head, channel p): its row of the state (n values, a compile-time constant,
//   held as n/4 vec4 when n % 4 == 0) stays in registers while it walks the whole length from
//   `state`, then writes the final state back; B_t, C_t of the head's group are shared reads.
//   Grid (⌈p/64⌉, h, b). Bindings: 0 x (b, l, h, p) · 1 dt (b, l, h) · 2 dtBias (h) · 3 A (h) ·
//   4 B (b, l, g, n) · 5 C (b, l, g, n) · 6 D (h) · 7 state (b, h, p, n) rw · 8 y (b, l, h, p) ·
//   9 params {l, h, p, g, dtMin, dtMax, chunk (= l), chunks (= 1), writeState (= 1), then offset
//   and row stride of x, dt, B, C}: these may be column views (Backend.split's parts of the conv
//   and in_proj outputs), bound as their whole buffers (B and C in V units: views whose offset or
//   stride is not a multiple of 4 are copied first when V = vec4).
//   Reference: ssdRecurrent in src/backends/cpu/ssd.ts.
// - longer ones: the chunked SSD of the paper in five passes (cumulative sums, chunk states,
//   carry over chunks, C·Bᵀ, outputs), most of the work matmul-shaped in workgroup memory; see
//   ssdChunked.ts for its passes, bindings and thread mapping. x, dt, B and C are read in place
//   as views (any offset and row stride: scalar reads), so Mamba-2's split parts are not copied.
//   Reference: ssdChunked.

import type { SsdArgs } from '../../backend.ts';
import { type GpuTensor, viewOf } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';
import { grid1d } from './grid.ts';
import { softplusWgsl } from './softplus.ts';
import { carryWgsl, cbWgsl, chunkStateWgsl, cumsumViewsWgsl, outWgsl } from './ssdChunked.ts';

/**
 * scanMaxLength: the longest l run by the recurrence; chunk: the chunk length of the chunked form
 * (0: the model's chunkSize, cut to maxChunk); tiles: [rm, rn], the tiles of every chunked pass in
 * 64s (null: per pass, 128 rows where there are ≥ 128, else 64; 64 columns). Tests and benchmarks
 * may change them. maxChunk: the chunked form is exact for any chunk length (only the rounding
 * differs), and its cost per position and head is 4·n·p FLOPs whatever q (chunk states, then C·h)
 * plus ~q·p for the causal product, against 3·h·p·n·4 bytes of chunk states moved per chunk. For
 * Mamba-2 130m at 4 × 16384 (h 24, p 64, n 128), q = 128 instead of its 256 saves ~14 GFLOP
 * (~0.65 ms at the H100's 21-23 TFLOP/s of tiled f32) for 0.8 GB more of state traffic (~0.3 ms
 * at 2.85 TB/s). An estimate: `node dist/src/bench/gpuKernels.js --only=ssd` times both.
 */
export const ssdTuning: {
  scanMaxLength: number;
  chunk: number;
  maxChunk: number;
  tiles: readonly [number, number] | null;
} = {
  scanMaxLength: 32,
  chunk: 0,
  maxChunk: 128,
  tiles: null,
};

/** A pass's tiles [rm, rn] for `rows` output rows, within the workgroup memory limit. */
function tilesFor(be: WebGpuBackend, rows: number): [number, number] {
  // 64 × 128 tiles ran 4× slower than 64 × 64 ones on the H100 (chunk states, 2026-11-23), while
  // 128 × 64 ones (chunk states transposed, outputs) did not: RN = 2 is what the mma's inner bb
  // loop adds, so the passes pick 64 columns (C·Bᵀ too: 128 × 64, the same causal tile skips).
  const [rm, rn] = ssdTuning.tiles ?? [rows >= 128 ? 2 : 1, 1];
  // Two KT × 64·r slabs of f32 (KT = 16).
  return (rm + rn) * 64 * 16 * 4 <= be.limits.maxComputeWorkgroupStorageSize ? [rm, rn] : [1, 1];
}

const header = (n: number) => {
  const vec = n % 4 === 0 ? 4 : 1;
  return /* wgsl */ `
alias V = ${vec === 4 ? 'vec4<f32>' : 'f32'};
const NV = ${n / vec}u; // state values per thread, in V units
struct Params { l: u32, h: u32, p: u32, g: u32, dtMin: f32, dtMax: f32, chunk: u32, chunks: u32,
  writeState: u32, xOffset: u32, xStride: u32, dtOffset: u32, dtStride: u32, bOffset: u32,
  bStride: u32, cOffset: u32, cStride: u32 }
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

${softplusWgsl}
fn dotv(a: V, b: V) -> f32 { return ${vec === 4 ? 'dot(a, b)' : 'a * b'}; }
fn delta(row: u32, hh: u32) -> f32 {
  return clamp(softplus(dt[params.dtOffset + row * params.dtStride + hh] + dtBias[hh]), params.dtMin, params.dtMax);
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
    let xv = x[params.xOffset + row * params.xStride + hh * params.p + pi];
    let dx = dl * xv;
    let bt = params.bOffset + row * params.bStride + group * NV;
    let ct = params.cOffset + row * params.cStride + group * NV;
    var acc = 0.0;
    for (var i = 0u; i < NV; i++) {
      s[i] = decay * s[i] + dx * B[bt + i];
      acc += dotv(s[i], C[ct + i]);
    }
    out[at] = acc + skip * xv;
  }
  if (params.writeState != 0u) { for (var i = 0u; i < NV; i++) { state[s0 + i] = s[i]; } }
}`,
  );

export function ssd(be: WebGpuBackend, args: SsdArgs): GpuTensor {
  const [b, l] = args.x.shape;
  const [, h, p, n] = args.state.shape;
  const g = args.B.shape[2] / n;
  const y = be.alloc(args.x.shape);
  const { dtBias, A, D, state } = args;
  const [dtMin, dtMax] = args.dtLimit;
  const limits = [{ f32: dtMin }, { f32: Math.min(dtMax, 3.4e38) }];
  if (l <= ssdTuning.scanMaxLength) {
    const vec = n % 4 === 0 ? 4 : 1;
    const fits = (v: { offset: number; stride: number }) => v.offset % vec === 0 && v.stride % vec === 0;
    const [xv, dtv] = [args.x, args.dt].map((t) => viewOf(t as GpuTensor));
    const [Bv, Cv] = [args.B, args.C].map((t) => {
      const v = viewOf(t as GpuTensor);
      return fits(v) ? v : viewOf(be.dense(t as GpuTensor));
    });
    const views = [xv, dtv].flatMap((v) => [v.offset, v.stride]);
    views.push(...[Bv, Cv].flatMap((v) => [v.offset / vec, v.stride / vec]));
    be.dispatch(
      { name: 'ssd', wgsl: scanWgsl(n) },
      [xv.base, dtv.base, dtBias, A, Bv.base, Cv.base, D, state, y],
      [l, h, p, g, ...limits, l, 1, 1, ...views],
      [Math.ceil(p / 64), h, b],
    );
    return y;
  }
  // Column views read in place: their whole buffers bound, (offset, row stride) in the params.
  const [xv, dtv, Bv, Cv] = [args.x, args.dt, args.B, args.C].map((t) => viewOf(t as GpuTensor));
  const [x, dt, B, C] = [xv, dtv, Bv, Cv].map((v) => v.base);
  const views = [xv, dtv, Bv, Cv].flatMap((v) => [v.offset, v.stride]);
  const q = Math.min(ssdTuning.chunk > 0 ? ssdTuning.chunk : Math.min(args.chunkSize, ssdTuning.maxChunk), l);
  const chunks = Math.ceil(l / q);
  const transposed = n >= 128 && p < 128;
  const [sm, sn] = tilesFor(be, transposed ? n : p);
  const [cm, cn] = tilesFor(be, q);
  const [om, on] = tilesFor(be, q);
  const base = [l, h, p, g, n, q, chunks, ...limits];
  const dl = be.alloc([b, h, l]);
  const cs = be.alloc([b, h, l, 2]);
  const S = be.alloc([b, chunks, h, p, n]);
  const cbT = be.alloc([b, chunks, g, q, q]);
  be.dispatch(
    { name: 'ssdCumsum', wgsl: cumsumViewsWgsl },
    [dt, dtBias, A, dl, cs],
    [...base, 0, 0, ...views],
    [h, chunks, b],
  );
  be.dispatch(
    {
      name: 'ssdChunkState',
      wgsl: memo(`state${sm}${sn}${transposed}`, () => chunkStateWgsl(sm, sn, transposed, true)),
    },
    [x, B, dl, cs, S],
    [...base, 0, 0, ...views],
    [
      Math.ceil((transposed ? n : p) / (64 * sm)) * Math.ceil((transposed ? p : n) / (64 * sn)),
      h,
      b * chunks,
    ],
  );
  const total = b * h * p * n;
  const g3 = grid1d(be, total, 256);
  be.dispatch(
    { name: 'ssdCarry', wgsl: carryWgsl },
    [cs, S, state],
    [...base, g3.stride, total],
    g3.workgroups,
  );
  be.dispatch(
    { name: 'ssdCb', wgsl: memo(`cb${cm}${cn}`, () => cbWgsl(cm, cn, true)) },
    [B, C, cbT],
    [...base, 0, 0, ...views],
    [Math.ceil(q / (64 * cm)) * Math.ceil(q / (64 * cn)), g, b * chunks],
  );
  be.dispatch(
    { name: 'ssdOut', wgsl: memo(`out${om}${on}`, () => outWgsl(om, on)) },
    [x, C, dl, cs, S, cbT, D, y],
    [...base, 0, 0, ...views],
    [Math.ceil(q / (64 * om)) * Math.ceil(p / (64 * on)), h, b * chunks],
  );
  for (const t of [dl, cs, S, cbT]) be.release(t);
  return y;
}
