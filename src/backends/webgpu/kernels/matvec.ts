// WGSL kernel: out (m, n) = x (m, k) · wᵀ + bias for small m (decoding: m = batch ≤
// linearTuning.matvecMaxM), w (n, k) as torch.nn.Linear stores it. At m ≤ 8 every weight is read
// once and the kernel is latency-bound: it spreads the rows of w over many workgroups and issues
// each thread's loads of w together, before any of them is used.
// Thread mapping: a workgroup is TEAMS teams of LANES threads (matvecTuning); team i computes
// output column j = TEAMS·wg + i for all m rows of x, in blocks of MAXM (≤ 8) rows. k is a
// compile-time constant, so a lane's loads of w[j, lane + LANES·i] (vec4 when k % 4 == 0, V = 1
// otherwise) come as unrolled runs of up to matvecTuning.maxLoads, each run loaded into registers
// before it is multiplied with the same slice of each x row of the block (small, served from
// cache; x may be a column view: rows xStride apart from xOffset), accumulating MAXM partial dot
// products; the LANES partials of each (column, row) are summed in workgroup memory (rows padded
// to LANES + 1 floats against bank conflicts) by one thread, in lane order. Blocks after the
// first read the team's row of w again, from cache.
// Columns past n (the last workgroup's) read the last row and write nothing.
// Bindings: 0 x (m, k), or the buffer it is a view of · 1 w (n, k) · 2 bias (n) · 3 out (m, n) ·
// 4 (7 with the prologue) params {m, n, hasBias, groupsX, xOffset, xStride, hasResidual, eps}
// (x in V units). Grid: ⌈n/TEAMS⌉ workgroups folded into (groupsX, ⌈·/groupsX⌉).
// With the norm prologue (Backend.addRmsNormLinear; x dense), the kernel multiplies by
// RMSNorm(x + residual) · normWeight instead of x. RMSNorm's scale is one number per row, so it
// is applied to the finished sum: each lane accumulates Σ w·(x + residual)·normWeight and the
// squares of its slice of x + residual (a team's lanes cover the whole row), and the thread that
// sums a column's partials also sums the squares into rsqrt(mean + eps). Team 0 of the first
// workgroup writes x + residual to residualOut (x alone when hasResidual is 0; residual is then a
// stand-in, not read). Extra bindings: 4 residual (m, k) · 5 normWeight (k) · 6 residualOut (m, k).
// Reference: linear in src/backends/cpu/matmul.ts (the summation order differs, in f32); with
// the prologue, addRmsNormLinearOps in src/backends/composedOps.ts.

import { type GpuTensor, viewOf } from '../gpuTensor.ts';
import type { Kernel, WebGpuBackend } from '../webgpuBackend.ts';
import { retuned } from './tuning.ts';

/** Rows per block (the most partial dot products a thread keeps in registers). */
export const MAX_M = 8;

/**
 * The work decomposition (read when a kernel is built; teams · lanes ≤ 256):
 * teams: output columns per workgroup (at 4, n = 768 gives 192 workgroups: all of an H100's 132 SMs);
 * lanes: threads per column, splitting k (each reads k / (4 · lanes) vec4s of its row of w);
 * maxLoads: loads of w a lane issues before using them (registers: 4 · maxLoads per vec4 run).
 */
export const matvecTuning = { teams: 4, lanes: 32, maxLoads: 16 };

/**
 * The kernels built so far under the tuning in `builtWith`, by a number made of (k, maxM, norm,
 * vec): a decoding step asks for each of its projections' kernel once per layer, and building a
 * string key (or the source) each time cost more than the rest of the dispatch's JS.
 */
const kernels = new Map<number, Kernel>();
const builtWith = { ...matvecTuning };

function kernel(vec: 1 | 4, maxM: number, norm: boolean, k: number): Kernel {
  if (retuned(builtWith, matvecTuning)) kernels.clear();
  const key = ((k * 16 + maxM) * 2 + (norm ? 1 : 0)) * 2 + (vec === 4 ? 1 : 0);
  let cached = kernels.get(key);
  if (cached === undefined) {
    cached = { name: `matvec${vec}x${maxM}${norm ? 'Norm' : ''}`, wgsl: wgsl(vec, maxM, norm, k) };
    kernels.set(key, cached);
  }
  return cached;
}

function wgsl(vec: 1 | 4, maxM: number, norm: boolean, k: number): string {
  const { teams, lanes, maxLoads } = matvecTuning;
  const kv = k / vec; // row length in V units
  const runs = Math.ceil(Math.ceil(kv / lanes) / maxLoads);
  const run = Math.ceil(Math.ceil(kv / lanes) / runs); // loads per run
  const ragged = runs * run * lanes !== kv; // some loads fall past the row: guarded
  const guard = (body: string) => (ragged ? `if (c < KV) { ${body} }` : body);
  return /* wgsl */ `
alias V = ${vec === 4 ? 'vec4<f32>' : 'f32'};
const MAXM = ${maxM}u;
const TEAMS = ${teams}u;
const LANES = ${lanes}u;
const WG = ${teams * lanes}u;
const K = ${k}u;
const KV = ${kv}u;
const RUN = ${run}u;
struct Params { m: u32, n: u32, hasBias: u32, groupsX: u32, xOffset: u32, xStride: u32,
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
var<workgroup> squares: array<f32, ${teams * (lanes + 1) * maxM}>; // (team, row, lane)`
    : '@group(0) @binding(4) var<uniform> params: Params;'
}

var<workgroup> partial: array<f32, ${teams * (lanes + 1) * maxM}>; // (team, row, lane), rows padded

fn hsum(v: V) -> f32 { return ${vec === 4 ? 'v.x + v.y + v.z + v.w' : 'v'}; }
${
  norm
    ? `fn summed(at: u32) -> V {
  if (params.hasResidual != 0u) { return x[at] + residual[at]; }
  return x[at];
}`
    : ''
}

@compute @workgroup_size(${teams * lanes})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let team = li / LANES;
  let lane = li % LANES;
  let group = wg.x + wg.y * params.groupsX;
  let wrow = min(group * TEAMS + team, params.n - 1u) * KV;
  for (var r0 = 0u; r0 < params.m; r0 += MAXM) {
  let rows = min(MAXM, params.m - r0);
  let x0 = params.xOffset + r0 * params.xStride;
  var acc: array<V, MAXM>; // zeroed explicitly: lavapipe keeps a loop-body var across blocks
  ${norm ? 'var sq: array<V, MAXM>;' : ''}
  for (var r = 0u; r < MAXM; r++) { acc[r] = V(0.0);${norm ? ' sq[r] = V(0.0);' : ''} }
  for (var base = lane; base < KV; base += RUN * LANES) {
    var wv: array<V, RUN>; // the run's loads of w, all issued before the first use
    for (var i = 0u; i < RUN; i++) {
      let c = base + i * LANES;
      wv[i] = V(0.0);
      ${guard('wv[i] = w[wrow + c];')}
    }
    for (var r = 0u; r < MAXM; r++) {
      if (r < rows) {
        for (var i = 0u; i < RUN; i++) {
          let c = base + i * LANES;
          let at = x0 + r * params.xStride + c;
          ${guard(
            norm
              ? `let xs = summed(at);
          sq[r] += xs * xs;
          acc[r] += wv[i] * xs * normWeight[c];
          if (group == 0u && team == 0u) { residualOut[at] = xs; }`
              : 'acc[r] += wv[i] * x[at];',
          )}
        }
      }
    }
  }
  for (var r = 0u; r < MAXM; r++) {
    partial[(team * MAXM + r) * (LANES + 1u) + lane] = hsum(acc[r]);
    ${norm ? 'squares[(team * MAXM + r) * (LANES + 1u) + lane] = hsum(sq[r]);' : ''}
  }
  workgroupBarrier();
  for (var q = li; q < TEAMS * MAXM; q += WG) {
    let t = q / MAXM;
    let r = q % MAXM;
    let col = group * TEAMS + t;
    if (r < rows && col < params.n) {
      var s = 0.0;
      for (var i = 0u; i < LANES; i++) { s += partial[(t * MAXM + r) * (LANES + 1u) + i]; }
      ${
        norm
          ? `var ss = 0.0;
      for (var i = 0u; i < LANES; i++) { ss += squares[(t * MAXM + r) * (LANES + 1u) + i]; }
      s *= inverseSqrt(ss / f32(K) + params.eps);`
          : ''
      }
      if (params.hasBias != 0u) { s += bias[col]; }
      out[(r0 + r) * params.n + col] = s;
    }
  }
  workgroupBarrier(); // the next block overwrites partial
  }
}`;
}

/** The norm prologue's inputs (x is then dense); see the header. */
export interface NormPrologue {
  residual: GpuTensor | null; // (m, k)
  weight: GpuTensor; // (k)
  eps: number;
  residualOut: GpuTensor; // (m, k)
}

/**
 * What a projection kernel (this one, skinnyLinear.ts) binds: x as its base buffer with offset and
 * row stride in V units (vec = 4 when k and the view allow vec4 loads), w, bias (w stands in),
 * out, then the norm prologue's residual, weight and residualOut.
 */
export function projectionBindings(
  x: GpuTensor,
  weight: GpuTensor,
  bias: GpuTensor | null,
  out: GpuTensor,
  norm: NormPrologue | null,
): { vec: 1 | 4; buffers: GpuTensor[]; xOffset: number; xStride: number } {
  const k = weight.shape[1];
  const { base, offset, stride } = viewOf(x);
  const vec = k % 4 === 0 && offset % 4 === 0 && stride % 4 === 0 ? 4 : 1;
  const buffers = [base, weight, bias ?? weight, out];
  if (norm) buffers.push(norm.residual ?? norm.weight, norm.weight, norm.residualOut);
  return { vec, buffers, xOffset: offset / vec, xStride: stride / vec };
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
  const { vec, buffers, xOffset, xStride } = projectionBindings(x, weight, bias, out, norm);
  const maxM = m <= 1 ? 1 : m <= 2 ? 2 : m <= 4 ? 4 : MAX_M;
  const groups = Math.ceil(n / matvecTuning.teams);
  const groupsX = Math.min(groups, be.limits.maxComputeWorkgroupsPerDimension);
  be.dispatch(
    kernel(vec, maxM, norm !== null, k),
    buffers,
    [m, n, bias ? 1 : 0, groupsX, xOffset, xStride, norm?.residual ? 1 : 0, { f32: norm?.eps ?? 0 }],
    [groupsX, Math.ceil(groups / groupsX)],
  );
}
