// WGSL kernel: out (m, n) = x (m, k) · wᵀ + bias for small m (decoding: m = batch ≤
// linearTuning.matvecMaxM), w (n, k) as torch.nn.Linear stores it. Memory-bound at m ≤ 8: every
// weight is read once, so the kernel spreads the rows of w over many workgroups and keeps many
// loads in flight per thread.
// Thread mapping: a workgroup of 256 threads is 8 teams of 32; team i computes output column
// j = 8·wg + i for all m rows of x, in blocks of MAXM (≤ 8) rows. Lane t of a team reads
// w[j, 4t..4t+3], w[j, 4t+128..] … as vec4 (when k % 4 == 0; V = 1 otherwise, scalar loads)
// together with the same slice of each x row of the block (small, served from cache; x may be a
// column view: rows xStride apart from xOffset), accumulating MAXM partial dot products in
// registers; the 32 partials of each (column, row) are summed in workgroup memory by one thread,
// in lane order. Blocks after the first read the team's row of w again, from cache (m ≤ 64).
// Bindings: 0 x (m, k), or the buffer it is a view of · 1 w (n, k) · 2 bias (n) · 3 out (m, n) ·
// 4 (7 with the prologue) params {m, n, k, hasBias, groupsX, xOffset, xStride, hasResidual, eps}
// (x in V units). Grid:
// ⌈n/8⌉ workgroups folded into (groupsX, ⌈·/groupsX⌉).
// With the norm prologue (Backend.addRmsNormLinear; x dense), the kernel multiplies by
// RMSNorm(x + residual) · normWeight instead of x: at the start of each block of rows, all 256
// threads sum the squares of each row (strided, then the 256 partials of each row are added in
// a tree) into its scale rsqrt(mean + eps), and the first workgroup writes x + residual to
// residualOut (x alone when hasResidual is 0; residual is then a stand-in, not read). Extra
// bindings: 4 residual (m, k) · 5 normWeight (k) · 6 residualOut (m, k).
// Reference: linear in src/backends/cpu/matmul.ts (the summation order differs, in f32); with
// the prologue, addRmsNormLinearOps in src/backends/composedOps.ts.

import { type GpuTensor, viewOf } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';

/** Rows per block (the most partial dot products a thread keeps in registers). */
export const MAX_M = 8;
const TEAMS = 8;
const LANES = 32;

const sources = new Map<string, string>();

function wgsl(vec: 1 | 4, maxM: number, norm: boolean): string {
  const key = `${vec}:${maxM}:${norm}`;
  let source = sources.get(key);
  if (source !== undefined) return source;
  const V = vec === 4 ? 'vec4<f32>' : 'f32';
  source = /* wgsl */ `
alias V = ${V};
const MAXM = ${maxM}u;
const TEAMS = ${TEAMS}u;
const LANES = ${LANES}u;
struct Params { m: u32, n: u32, k: u32, hasBias: u32, groupsX: u32, xOffset: u32, xStride: u32,
  hasResidual: u32, eps: f32 }
@group(0) @binding(0) var<storage, read> x: array<V>;
@group(0) @binding(1) var<storage, read> w: array<V>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
${
  norm
    ? `@group(0) @binding(4) var<storage, read> residual: array<V>;
@group(0) @binding(5) var<storage, read> normWeight: array<V>;
@group(0) @binding(6) var<storage, read_write> residualOut: array<V>;
@group(0) @binding(7) var<uniform> params: Params;
var<workgroup> scale: array<f32, MAXM>;`
    : '@group(0) @binding(4) var<uniform> params: Params;'
}

var<workgroup> partial: array<f32, ${TEAMS * LANES * maxM}>; // (team, row, lane)

fn hsum(v: V) -> f32 { return ${vec === 4 ? 'v.x + v.y + v.z + v.w' : 'v'}; }
${
  norm
    ? `fn summed(at: u32) -> V {
  if (params.hasResidual != 0u) { return x[at] + residual[at]; }
  return x[at];
}
// Element c (V units) of row r of the block, at index at: normalised and scaled.
fn xAt(r: u32, at: u32, c: u32) -> V { return summed(at) * scale[r] * normWeight[c]; }`
    : 'fn xAt(r: u32, at: u32, c: u32) -> V { return x[at]; }'
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let team = li / LANES;
  let lane = li % LANES;
  let group = wg.x + wg.y * params.groupsX;
  let j = group * TEAMS + team;
  let kv = params.k / ${vec}u; // row length in V units
  for (var r0 = 0u; r0 < params.m; r0 += MAXM) {
  let rows = min(MAXM, params.m - r0);
  let x0 = params.xOffset + r0 * params.xStride;
${
  norm
    ? `  for (var r = 0u; r < rows; r++) {
    var s = 0.0;
    for (var c = li; c < kv; c += 256u) { let v = summed(x0 + r * params.xStride + c); s += hsum(v * v); }
    partial[r * 256u + li] = s;
  }
  workgroupBarrier();
  for (var step = 128u; step > 0u; step = step / 2u) {
    if (li < step) { for (var r = 0u; r < rows; r++) { partial[r * 256u + li] += partial[r * 256u + li + step]; } }
    workgroupBarrier();
  }
  if (li < rows) { scale[li] = inverseSqrt(partial[li * 256u] / f32(params.k) + params.eps); }
  if (group == 0u) {
    for (var r = 0u; r < rows; r++) {
      for (var c = li; c < kv; c += 256u) { let at = x0 + r * params.xStride + c; residualOut[at] = summed(at); }
    }
  }
  workgroupBarrier();
`
    : ''
}  var acc: array<V, MAXM>; // zeroed explicitly: lavapipe keeps a loop-body var across blocks
  for (var r = 0u; r < MAXM; r++) { acc[r] = V(0.0); }
  if (j < params.n) {
    let wrow = j * kv;
    var c = lane;
    // Two independent vector loads of w per iteration keep more bytes in flight.
    for (; c + LANES < kv; c += 2u * LANES) {
      let w0 = w[wrow + c];
      let w1 = w[wrow + c + LANES];
      for (var r = 0u; r < MAXM; r++) {
        let xr = x0 + r * params.xStride + c;
        if (r < rows) { acc[r] += w0 * xAt(r, xr, c) + w1 * xAt(r, xr + LANES, c + LANES); }
      }
    }
    if (c < kv) {
      let w0 = w[wrow + c];
      for (var r = 0u; r < MAXM; r++) {
        if (r < rows) { acc[r] += w0 * xAt(r, x0 + r * params.xStride + c, c); }
      }
    }
  }
  for (var r = 0u; r < MAXM; r++) { partial[(team * MAXM + r) * LANES + lane] = hsum(acc[r]); }
  workgroupBarrier();
  if (li < TEAMS * MAXM) {
    let t = li / MAXM;
    let r = li % MAXM;
    let col = group * TEAMS + t;
    if (r < rows && col < params.n) {
      var s = 0.0;
      for (var i = 0u; i < LANES; i++) { s += partial[(t * MAXM + r) * LANES + i]; }
      if (params.hasBias != 0u) { s += bias[col]; }
      out[(r0 + r) * params.n + col] = s;
    }
  }
  workgroupBarrier(); // the next block overwrites partial
  }
}`;
  sources.set(key, source);
  return source;
}

/** The norm prologue's inputs (x is then dense); see the header. */
export interface NormPrologue {
  residual: GpuTensor | null; // (m, k)
  weight: GpuTensor; // (k)
  eps: number;
  residualOut: GpuTensor; // (m, k)
}

export function matvec(
  be: WebGpuBackend,
  x: GpuTensor,
  weight: GpuTensor,
  bias: GpuTensor | null,
  out: GpuTensor,
  m: number,
  norm: NormPrologue | null = null,
): void {
  const [n, k] = weight.shape;
  const { base, offset, stride } = viewOf(x);
  const vec = k % 4 === 0 && offset % 4 === 0 && stride % 4 === 0 ? 4 : 1;
  const maxM = m <= 1 ? 1 : m <= 2 ? 2 : m <= 4 ? 4 : MAX_M;
  const groups = Math.ceil(n / TEAMS);
  const groupsX = Math.min(groups, be.limits.maxComputeWorkgroupsPerDimension);
  const buffers = [base, weight, bias ?? weight, out];
  if (norm) buffers.push(norm.residual ?? norm.weight, norm.weight, norm.residualOut);
  be.dispatch(
    { name: `matvec${vec}x${maxM}${norm ? 'Norm' : ''}`, wgsl: wgsl(vec, maxM, norm !== null) },
    buffers,
    [
      m,
      n,
      k,
      bias ? 1 : 0,
      groupsX,
      offset / vec,
      stride / vec,
      norm?.residual ? 1 : 0,
      { f32: norm?.eps ?? 0 },
    ],
    [groupsX, Math.ceil(groups / groupsX)],
  );
}
