// WGSL kernel: out (m, n) = x (m, k) · wᵀ + bias for skinny m (batched decoding: matvecMaxM < m ≤
// linearTuning.skinnyMaxM, e.g. 64), w (n, k) as torch.nn.Linear stores it, in one dispatch.
// At m = 64 a projection is compute-bound (in_proj 768 → 3072: 0.3 GFLOP against 9.4 MB of
// weights) but has few output tiles, so k is split inside the workgroup instead of over a grid of
// workgroups whose partial sums a second dispatch adds (linear.ts's split-k).
// Tiles: a workgroup of 256 threads computes a TM × TN tile of out (rows row0 = TM·wg.y.., columns
// col0 = TN·wg.x..) as KS = 4096 / (TM·TN) k-groups of G = TM·TN/16 threads; thread t of k-group g
// keeps a 4×4 block in registers (rows 4·ty + 0..3, columns 4·tx + 0..3; tx = t % (TN/4),
// ty = t / (TN/4)). Each stage stages KB = KS·KT consecutive k of the x tile (TM × KB) and the w
// tile (TN × KB) in workgroup memory, k-major as vec4 along rows (like linear.ts's tiles), and
// k-group g multiplies its KT of them; the loads of the next stage are issued (into registers)
// before this stage's multiply-adds. Consecutive threads load consecutive rows (of x, or of w),
// so that their transposing stores hit different banks. At the end the KS partial tiles meet in
// workgroup memory (the same 16 KiB array) and are summed in k-group order, bias added, into out.
// Global loads are vec4 along k (V = 4) when k, the view's offset and its row stride are
// multiples of 4, scalar otherwise. x may be a column view: rows xStride apart from xOffset.
// With the norm prologue (Backend.addRmsNormLinear; x dense), x is replaced by
// RMSNorm(x + residual) · normWeight: staging multiplies x + residual by normWeight, each thread
// sums the squares of what it loads, and since the row scale rsqrt(mean + eps) factors out of the
// dot product it multiplies the accumulators once, after the loop; the workgroups of the first
// column tile write x + residual to residualOut (x alone when hasResidual is 0; residual is then a
// stand-in, not read).
// Bindings: 0 x (m, k), or the buffer it is a view of · 1 w (n, k) · 2 bias (n) · 3 out (m, n) ·
// 4 (7 with the prologue) params {m, n, k, hasBias, xOffset, xStride, hasResidual, eps} (x in V
// units); prologue: 4 residual (m, k) · 5 normWeight (k) · 6 residualOut (m, k).
// Grid: (⌈n/TN⌉, ⌈m/TM⌉). TM, TN, KT are compile-time constants chosen by skinnyTiles.
// Reference: linear in src/backends/cpu/matmul.ts (f32, the summation order differs); with the
// prologue, addRmsNormLinearOps in src/backends/composedOps.ts.

import type { GpuTensor } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';
import { type NormPrologue, projectionBindings } from './matvec.ts';

/** Workgroup memory in vec4s (16 KiB, WebGPU's guaranteed minimum): the staged tiles, then the partials. */
const BUF = 1024;

/** A workgroup's tile: TM rows, TN columns, KT k per k-group and stage (KS = 4096 / (TM·TN)). */
export interface SkinnyTiles {
  tm: number;
  tn: number;
  kt: number;
}

/**
 * The tile for (m, n): rows TM ∈ {16, 32, 64} (no more than m needs), columns TN ∈ {8 … 64}, at
 * most 16 k-groups. Of the tiles that give at least `groups` workgroups, the one that reads the
 * fewest values per k from memory (the weights once per row tile, the rows of x once per
 * workgroup); if none does, the one with the most workgroups. KT: the largest power of two ≤ 16
 * whose two staged tiles fit the workgroup memory.
 */
export function skinnyTiles(m: number, n: number, groups: number): SkinnyTiles {
  let best = { tm: 0, tn: 0, count: 0, cost: 0 };
  for (const tm of [64, 32, 16]) {
    if (tm > 16 && tm / 2 >= m) continue; // half the rows would be padding
    for (const tn of [64, 32, 16, 8]) {
      if (tm * tn < 256) continue;
      const rowTiles = Math.ceil(m / tm);
      const count = rowTiles * Math.ceil(n / tn);
      const cost = rowTiles * n + count * tm; // values read per k
      const reach = Math.min(count, groups);
      const bestReach = Math.min(best.count, groups);
      if (reach > bestReach || (reach === bestReach && cost < best.cost)) best = { tm, tn, count, cost };
    }
  }
  const { tm, tn } = best;
  let kt = 16;
  while ((4096 / (tm * tn)) * kt * (tm + tn) > BUF * 4) kt /= 2; // KS·KT·(TM + TN) staged values
  return { tm, tn, kt };
}

const sources = new Map<string, string>();

function wgsl({ tm, tn, kt }: SkinnyTiles, vec: 1 | 4, norm: boolean): string {
  const key = `${tm}:${tn}:${kt}:${vec}:${norm}`;
  let source = sources.get(key);
  if (source !== undefined) return source;
  const ks = 4096 / (tm * tn);
  const kbv = (ks * kt) / vec; // V loads per staged row
  source = /* wgsl */ `
alias V = ${vec === 4 ? 'vec4<f32>' : 'f32'};
const TM = ${tm}u;
const TN = ${tn}u;
const TM4 = ${tm / 4}u;
const TN4 = ${tn / 4}u;
const KT = ${kt}u;
const KB = ${ks * kt}u; // k per stage
const KBV = ${kbv}u; // V loads per row of a stage
const G = ${(tm * tn) / 16}u; // threads per k-group
const VEC = ${vec}u;
const XW = ${(ks * kt * tm) / 4}u; // where the staged w tile starts in buf
const LX = ${Math.ceil((tm * kbv) / 256)}u; // x loads per thread and stage
const LW = ${Math.ceil((tn * kbv) / 256)}u; // w loads per thread and stage
const PART = ${(tm * tn) / 4}u; // vec4s of one k-group's partial tile
struct Params { m: u32, n: u32, k: u32, hasBias: u32, xOffset: u32, xStride: u32, hasResidual: u32,
  eps: f32 }
@group(0) @binding(0) var<storage, read> x: array<V>;
@group(0) @binding(1) var<storage, read> w: array<V>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
${
  norm
    ? `@group(0) @binding(4) var<storage, read> residual: array<V>;
@group(0) @binding(5) var<storage, read> normWeight: array<V>;
@group(0) @binding(6) var<storage, read_write> residualOut: array<V>;
@group(0) @binding(7) var<uniform> params: Params;`
    : '@group(0) @binding(4) var<uniform> params: Params;'
}

// Stage: x tile at [kk·TM4 + row/4][row%4], w tile at [XW + kk·TN4 + col/4][col%4] (kk < KB).
// After the loop: the row scales, then the KS partial tiles at [g·PART + row·TN4 + col/4].
var<workgroup> buf: array<vec4<f32>, ${BUF}>;
var<private> px: array<V, LX>; // the next stage's loads
var<private> pw: array<V, LW>;
${norm ? 'var<private> ssq: f32; // the sum of squares of what this thread loads (row li % TM)' : ''}

fn comp(v: V, c: u32) -> f32 { ${vec === 4 ? 'return v[c];' : 'return v;'} }
fn hsum(v: V) -> f32 { return ${vec === 4 ? 'v.x + v.y + v.z + v.w' : 'v'}; }

// Loads stage k0's share of this thread into px, pw (zero outside x and w). Load j is element
// e = li + 256·j of the tile, rows (columns of out for w) fastest: row e % TM, k = k0 + (e / TM)·VEC,
// so that the transposing stores of a warp go to consecutive banks; since TM divides 256 every
// load of a thread is from row li % TM.
fn load(k0: u32, li: u32, row0: u32, col0: u32, firstCols: bool) {
  for (var j = 0u; j < LX; j++) {
    let e = li + 256u * j;
    let r = row0 + e % TM;
    let kq = k0 + (e / TM) * VEC;
    var v = V(0.0);
    if (e < TM * KBV && r < params.m && kq < params.k) {
      let at = params.xOffset + r * params.xStride + kq / VEC;
${
  norm
    ? `      v = x[at];
      if (params.hasResidual != 0u) { v += residual[at]; }
      ssq += hsum(v * v);
      if (firstCols) { residualOut[at] = v; }
      v *= normWeight[kq / VEC];`
    : '      v = x[at];'
}
    }
    px[j] = v;
  }
  for (var j = 0u; j < LW; j++) {
    let e = li + 256u * j;
    let c = col0 + e % TN;
    let kq = k0 + (e / TN) * VEC;
    var v = V(0.0);
    if (e < TN * KBV && c < params.n && kq < params.k) { v = w[c * (params.k / VEC) + kq / VEC]; }
    pw[j] = v;
  }
}

fn store(li: u32) {
  for (var j = 0u; j < LX; j++) {
    let e = li + 256u * j;
    if (e < TM * KBV) {
      let r = e % TM;
      let q = (e / TM) * VEC;
      for (var c = 0u; c < VEC; c++) { buf[(q + c) * TM4 + r / 4u][r % 4u] = comp(px[j], c); }
    }
  }
  for (var j = 0u; j < LW; j++) {
    let e = li + 256u * j;
    if (e < TN * KBV) {
      let r = e % TN;
      let q = (e / TN) * VEC;
      for (var c = 0u; c < VEC; c++) { buf[XW + (q + c) * TN4 + r / 4u][r % 4u] = comp(pw[j], c); }
    }
  }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let col0 = wg.x * TN;
  let row0 = wg.y * TM;
  let g = li / G; // k-group
  let tx = (li % G) % TN4;
  let ty = (li % G) / TN4;
  var acc: array<vec4<f32>, 4>; // [i]: row 4·ty + i, columns 4·tx + 0..3
  for (var i = 0u; i < 4u; i++) { acc[i] = vec4<f32>(0.0); }
${norm ? '  ssq = 0.0;\n' : ''}  load(0u, li, row0, col0, wg.x == 0u);
  for (var k0 = 0u; k0 < params.k; k0 += KB) {
    workgroupBarrier(); // the previous stage has been read
    store(li);
    workgroupBarrier();
    if (k0 + KB < params.k) { load(k0 + KB, li, row0, col0, wg.x == 0u); }
    for (var i = 0u; i < KT; i++) {
      let kk = g * KT + i;
      let xv = buf[kk * TM4 + ty];
      let wv = buf[XW + kk * TN4 + tx];
      acc[0] += xv.x * wv;
      acc[1] += xv.y * wv;
      acc[2] += xv.z * wv;
      acc[3] += xv.w * wv;
    }
  }
  workgroupBarrier();
${
  norm
    ? `  // Row scales: row r's squares were summed by threads r, r + TM, r + 2·TM, …
  buf[li / 4u][li % 4u] = ssq;
  workgroupBarrier();
  var s = 0.0;
  if (li < TM) { for (var q = li; q < 256u; q += TM) { s += buf[q / 4u][q % 4u]; } }
  workgroupBarrier();
  if (li < TM) { buf[li / 4u][li % 4u] = inverseSqrt(s / f32(params.k) + params.eps); }
  workgroupBarrier();
  for (var i = 0u; i < 4u; i++) { acc[i] *= buf[ty][i]; } // the scale of row 4·ty + i
  workgroupBarrier();
`
    : ''
}  for (var i = 0u; i < 4u; i++) { buf[g * PART + (4u * ty + i) * TN4 + tx] = acc[i]; }
  workgroupBarrier();
  for (var o = li; o < PART; o += 256u) {
    var v = buf[o];
    for (var p = 1u; p < ${ks}u; p++) { v += buf[p * PART + o]; }
    let r = row0 + o / TN4;
    let c = col0 + (o % TN4) * 4u;
    if (r < params.m) {
      for (var j = 0u; j < 4u; j++) {
        if (c + j < params.n) {
          var y = v[j];
          if (params.hasBias != 0u) { y += bias[c + j]; }
          out[r * params.n + c + j] = y;
        }
      }
    }
  }
}`;
  sources.set(key, source);
  return source;
}

export function skinnyLinear(
  be: WebGpuBackend,
  x: GpuTensor,
  weight: GpuTensor,
  bias: GpuTensor | null,
  out: GpuTensor,
  m: number,
  groups: number,
  norm: NormPrologue | null = null,
): void {
  const [n, k] = weight.shape;
  const { vec, buffers, xOffset, xStride } = projectionBindings(x, weight, bias, out, norm);
  const tiles = skinnyTiles(m, n, groups);
  be.dispatch(
    {
      name: `skinnyLinear${tiles.tm}x${tiles.tn}x${vec}${norm ? 'Norm' : ''}`,
      wgsl: wgsl(tiles, vec, norm !== null),
    },
    buffers,
    [m, n, k, bias ? 1 : 0, xOffset, xStride, norm?.residual ? 1 : 0, { f32: norm?.eps ?? 0 }],
    [Math.ceil(n / tiles.tn), Math.ceil(m / tiles.tm)],
  );
}
