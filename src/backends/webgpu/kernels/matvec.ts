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
// 4 params {m, n, k, hasBias, groupsX, xOffset, xStride} (x in V units). Grid: ⌈n/8⌉ workgroups
// folded into (groupsX, ⌈·/groupsX⌉).
// Reference: linear in src/backends/cpu/matmul.ts (the summation order differs, in f32).

import { type GpuTensor, viewOf } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';

/** Rows per block (the most partial dot products a thread keeps in registers). */
export const MAX_M = 8;
const TEAMS = 8;
const LANES = 32;

const sources = new Map<string, string>();

function wgsl(vec: 1 | 4, maxM: number): string {
  const key = `${vec}:${maxM}`;
  let source = sources.get(key);
  if (source !== undefined) return source;
  const V = vec === 4 ? 'vec4<f32>' : 'f32';
  source = /* wgsl */ `
alias V = ${V};
const MAXM = ${maxM}u;
const TEAMS = ${TEAMS}u;
const LANES = ${LANES}u;
struct Params { m: u32, n: u32, k: u32, hasBias: u32, groupsX: u32, xOffset: u32, xStride: u32 }
@group(0) @binding(0) var<storage, read> x: array<V>;
@group(0) @binding(1) var<storage, read> w: array<V>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

var<workgroup> partial: array<f32, ${TEAMS * LANES * maxM}>; // (team, row, lane)

fn hsum(v: V) -> f32 { return ${vec === 4 ? 'v.x + v.y + v.z + v.w' : 'v'}; }

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
  var acc: array<V, MAXM>; // zeroed explicitly: lavapipe keeps a loop-body var across blocks
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
        if (r < rows) { acc[r] += w0 * x[xr] + w1 * x[xr + LANES]; }
      }
    }
    if (c < kv) {
      let w0 = w[wrow + c];
      for (var r = 0u; r < MAXM; r++) {
        if (r < rows) { acc[r] += w0 * x[x0 + r * params.xStride + c]; }
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

export function matvec(
  be: WebGpuBackend,
  x: GpuTensor,
  weight: GpuTensor,
  bias: GpuTensor | null,
  out: GpuTensor,
  m: number,
): void {
  const [n, k] = weight.shape;
  const { base, offset, stride } = viewOf(x);
  const vec = k % 4 === 0 && offset % 4 === 0 && stride % 4 === 0 ? 4 : 1;
  const maxM = m <= 1 ? 1 : m <= 2 ? 2 : m <= 4 ? 4 : MAX_M;
  const groups = Math.ceil(n / TEAMS);
  const groupsX = Math.min(groups, be.limits.maxComputeWorkgroupsPerDimension);
  be.dispatch(
    { name: `matvec${vec}x${maxM}`, wgsl: wgsl(vec, maxM) },
    [base, weight, bias ?? weight, out],
    [m, n, k, bias ? 1 : 0, groupsX, offset / vec, stride / vec],
    [groupsX, Math.ceil(groups / groupsX)],
  );
}
