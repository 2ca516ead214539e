// WGSL kernel: out (m, n) = x (m, k) · wᵀ + bias for skinny m (batched decoding: matvecMaxM < m ≤
// linearTuning.skinnyMaxM, e.g. 64), w (n, k) as torch.nn.Linear stores it, in one dispatch.
// At m = 64 a projection is compute-bound (in_proj 768 → 3072: 0.3 GFLOP against 9.4 MB of
// weights) but has few output tiles, so k is split inside the workgroup instead of over a grid of
// workgroups whose partial sums a second dispatch adds (linear.ts's split-k).
// Where the first version lost at m = 64 on the H100 (in_proj 48 µs against ~15 ideal, out_proj
// 26 against ~8): (1) its tile choice aimed at 256 workgroups and so took 32 × 16 tiles for
// in_proj: every workgroup re-reads its 32 rows of x (twice with the norm prologue: x and the
// residual), ~190 MB through L2 per call against 9.4 MB of weights; the cost now counts the
// prologue's second read, and skinnyTuning/linearTuning.skinnyGroups let the H100 pick fewer,
// wider workgroups; (2) its stages were stored transposed, four scalar stores to workgroup memory
// per vec4 loaded, and its global loads walked rows (uncoalesced): stages now keep k fastest, vec4
// loads and stores, k consecutive per thread; (3) 256 threads and 4 × 4 blocks were fixed: threads
// (latency hiding on a half-empty SM), the register block (FMAs per float read from workgroup
// memory: 2 at 4 × 4, 4 at 8 × 8) and the workgroup memory are now tunables.
// Tiles: a workgroup of TH threads computes a TM × TN tile of out (rows row0 = TM·wg.y..,
// columns col0 = TN·wg.x..) as KS k-groups of G = (TM/RB)·(TN/CB) threads; thread (tx, ty) of
// k-group g keeps an RB × CB block in registers, rows ty + (TM/RB)·i and columns tx + (TN/CB)·j
// (interleaved: neighbouring threads read neighbouring rows of a stage, conflict-free as the row
// pitch P is odd; their stores of out are coalesced). Each stage stages KB = KS·KT consecutive k
// of the x tile (TM × KB) and the w tile (TN × KB) in workgroup memory row-major (k fastest, rows
// P vec4s apart), and k-group g multiplies its KT of them (fma per k, in k order); the loads of
// the next stage are issued (into registers) before this stage's multiply-adds. At the end the KS
// partial blocks are added pairwise (k-groups g + h into g for h = KS/2, KS/4, …, 1, in rounds
// that fit the workgroup memory), and k-group 0 adds the bias and writes out.
// Global loads are vec4 along k (V = 4) when k, the view's offset and its row stride are
// multiples of 4, scalar otherwise. x may be a column view: rows xStride apart from xOffset.
// With the norm prologue (Backend.addRmsNormLinear; x dense), x is replaced by
// RMSNorm(x + residual) · normWeight: staging multiplies x + residual by normWeight, each thread
// sums the squares of each of its loads (load j of a thread is always from the same row), and
// since the row scale rsqrt(mean + eps) factors out of the dot product it multiplies the sums
// once, at the end; the workgroups of the first column tile write x + residual to residualOut
// (x alone when hasResidual is 0; residual is then a stand-in, not read).
// Bindings: 0 x (m, k), or the buffer it is a view of · 1 w (n, k) · 2 bias (n) · 3 out (m, n) ·
// 4 (7 with the prologue) params {m, n, k, hasBias, xOffset, xStride, hasResidual, eps} (x in V
// units); prologue: 4 residual (m, k) · 5 normWeight (k) · 6 residualOut (m, k).
// Grid: (⌈n/TN⌉, ⌈m/TM⌉). Everything but the params is compile-time, chosen by skinnyTiles.
// Reference: linear in src/backends/cpu/matmul.ts (f32, the summation order differs); with the
// prologue, addRmsNormLinearOps in src/backends/composedOps.ts.

import type { GpuTensor } from '../gpuTensor.ts';
import type { Kernel, WebGpuBackend } from '../webgpuBackend.ts';
import { type NormPrologue, projectionBindings } from './matvec.ts';
import { retuned } from './tuning.ts';

/**
 * The H100's choices (powers of two; read when a kernel is recorded; the device's limits cap
 * threads and memory): threads per workgroup (256 … 1024); rowBlock × colBlock, the block of out
 * a thread keeps in registers (4 or 8 each; smaller where the tile is); memory, the bytes of
 * workgroup memory for the stages (16384: WebGPU's guaranteed minimum; 32768); maxKt, the most k
 * a k-group multiplies per stage (a multiple of 4). The number of workgroups aimed at is
 * linearTuning.skinnyGroups.
 */
export const skinnyTuning = { threads: 256, rowBlock: 4, colBlock: 4, memory: 16384, maxKt: 16 };

/** A compiled variant: tile TM × TN, register block RB × CB, TH threads, KS k-groups, KT, BUF vec4s. */
export interface SkinnyTiles {
  tm: number;
  tn: number;
  rb: number;
  cb: number;
  threads: number;
  ks: number;
  kt: number;
  buf: number;
}

/**
 * The threads (at most `threads`: fewer where the k-groups' stage would not fit), k-groups and KT
 * of a tile, or null when it does not fit.
 */
function fit(tm: number, tn: number, threads: number, buf: number): SkinnyTiles | null {
  const rb = Math.min(skinnyTuning.rowBlock, tm);
  const cb = Math.min(skinnyTuning.colBlock, tn);
  const g = (tm / rb) * (tn / cb);
  if (tm * tn > 4 * buf) return null;
  for (let th = threads; th >= Math.max(g, 32); th /= 2) {
    const ks = th / g;
    for (let kt = skinnyTuning.maxKt; kt >= 4; kt -= 4)
      if ((tm + tn) * pitch(ks * kt) <= buf) return { tm, tn, rb, cb, threads: th, ks, kt, buf };
  }
  return null;
}

/** Vec4s between rows of a stage of kb k: odd, so that 8 rows in a row hit 8 different bank groups. */
function pitch(kb: number): number {
  return kb / 4 + ((kb / 4) % 2 === 0 ? 1 : 0);
}

/**
 * The tile for (m, n): rows TM ∈ {16, 32, 64} (8 too; no more than m needs), columns TN ∈ {8 … 64},
 * that fit the threads and memory. Of the tiles that give at least `groups` workgroups, the one
 * that reads the fewest values per k through L2 (the weights once per row tile, the rows of x once
 * per workgroup, twice with the norm prologue: x and the residual); if none does, the one with the
 * most workgroups. maxThreads and maxBytes: the device's limits.
 */
export function skinnyTiles(
  m: number,
  n: number,
  groups: number,
  norm = false,
  maxThreads = 256,
  maxBytes = 16384,
): SkinnyTiles {
  const threads = Math.min(skinnyTuning.threads, maxThreads);
  const buf = Math.min(skinnyTuning.memory, maxBytes) / 16;
  let best: { tiles: SkinnyTiles; count: number; cost: number } | null = null;
  for (const tm of [64, 32, 16, 8]) {
    if (tm > 8 && tm / 2 >= m) continue; // half the rows would be padding
    for (const tn of [64, 32, 16, 8]) {
      const tiles = fit(tm, tn, threads, buf);
      if (tiles === null) continue;
      const rowTiles = Math.ceil(m / tm);
      const count = rowTiles * Math.ceil(n / tn);
      const cost = rowTiles * n + count * tm * (norm ? 2 : 1); // values read per k
      const reach = Math.min(count, groups);
      const bestReach = Math.min(best?.count ?? 0, groups);
      if (best === null || reach > bestReach || (reach === bestReach && cost < best.cost))
        best = { tiles, count, cost };
    }
  }
  if (best === null) throw new Error(`skinnyTuning ${JSON.stringify(skinnyTuning)}: no tile fits`);
  return best.tiles;
}

/** n lines of WGSL, line(i) each. */
function lines(n: number, line: (i: number) => string): string {
  return Array.from({ length: n }, (_, i) => line(i)).join('\n');
}

const sources = new Map<string, string>();

function wgsl(t: SkinnyTiles, vec: 1 | 4, norm: boolean): string {
  const { tm, tn, rb, cb, threads, ks, kt, buf } = t;
  const key = `${Object.values(t)}:${vec}:${norm}`;
  let source = sources.get(key);
  if (source !== undefined) return source;
  const kb = ks * kt;
  const kbv = kb / vec; // V loads per staged row
  const p = pitch(kb);
  const g = (tm / rb) * (tn / cb);
  // One line per element of a thread's block (row i, column j, acc[a]): acc is only ever indexed
  // by constants, so that it stays in registers.
  const block = (line: (i: number, j: number, a: number) => string) =>
    lines(rb * cb, (a) => line(Math.floor(a / cb), a % cb, a));
  const store = vec === 4 ? 'buf[at + q] = v;' : 'buf[at + q / 4u][q % 4u] = v;';
  source = /* wgsl */ `
alias V = ${vec === 4 ? 'vec4<f32>' : 'f32'};
const TM = ${tm}u;
const TN = ${tn}u;
const RB = ${rb}u; // rows per thread, TMR = TM / RB apart
const CB = ${cb}u; // columns per thread, TNC = TN / CB apart
const TMR = ${tm / rb}u;
const TNC = ${tn / cb}u;
const TH = ${threads}u;
const G = ${g}u; // threads per k-group
const KS = ${ks}u; // k-groups
const KT4 = ${kt / 4}u; // k-quads per k-group and stage
const KB = ${kb}u; // k per stage
const KBV = ${kbv}u; // V loads per row of a stage
const VEC = ${vec}u;
const P = ${p}u; // vec4s between staged rows
const XW = ${tm * p}u; // where the staged w tile starts in buf
const LX = ${Math.ceil((tm * kbv) / threads)}u; // x loads per thread and stage
const LW = ${Math.ceil((tn * kbv) / threads)}u; // w loads per thread and stage
const SLOT = ${tm * tn}u; // floats of one k-group's partial block
const FIT = ${Math.floor((4 * buf) / (tm * tn))}u; // partial blocks buf holds
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

// Stage: x[row0 + r, k0 + 4·q ..] at [r·P + q], w[col0 + c, k0 + 4·q ..] at [XW + c·P + q].
// After the loop: the rows' sums of squares and scales, then the partial blocks as floats at
// slot·SLOT + (i·CB + j)·G + thread.
var<workgroup> buf: array<vec4<f32>, ${buf}>;
var<private> px: array<V, LX>; // the next stage's loads
var<private> pw: array<V, LW>;
${norm ? 'var<private> ssq: array<f32, LX>; // the sum of squares of load j (of row (li + TH·j) / KBV)' : ''}

fn hsum(v: V) -> f32 { return ${vec === 4 ? 'v.x + v.y + v.z + v.w' : 'v'}; }
fn setf(i: u32, v: f32) { buf[i / 4u][i % 4u] = v; }
fn put(r: u32, c: u32, v: f32) {
  if (r < params.m && c < params.n) { out[r * params.n + c] = v + select(0.0, bias[c], params.hasBias != 0u); }
}
fn getf(i: u32) -> f32 { return buf[i / 4u][i % 4u]; }

// Loads stage k0's share of this thread into px, pw (zero outside x and w). Load j is element
// e = li + TH·j of the tile, k fastest: row e / KBV, k = k0 + (e % KBV)·VEC (coalesced).
fn load(k0: u32, li: u32, row0: u32, col0: u32, firstCols: bool) {
  for (var j = 0u; j < LX; j++) {
    let e = li + TH * j;
    let r = row0 + e / KBV;
    let kq = k0 + (e % KBV) * VEC;
    var v = V(0.0);
    if (e < TM * KBV && r < params.m && kq < params.k) {
      let at = params.xOffset + r * params.xStride + kq / VEC;
${
  norm
    ? `      v = x[at];
      if (params.hasResidual != 0u) { v += residual[at]; }
      ssq[j] += hsum(v * v);
      if (firstCols) { residualOut[at] = v; }
      v *= normWeight[kq / VEC];`
    : '      v = x[at];'
}
    }
    px[j] = v;
  }
  for (var j = 0u; j < LW; j++) {
    let e = li + TH * j;
    let c = col0 + e / KBV;
    let kq = k0 + (e % KBV) * VEC;
    var v = V(0.0);
    if (e < TN * KBV && c < params.n && kq < params.k) { v = w[c * (params.k / VEC) + kq / VEC]; }
    pw[j] = v;
  }
}

fn store(li: u32) {
  for (var j = 0u; j < LX; j++) {
    let e = li + TH * j;
    let q = e % KBV;
    let at = (e / KBV) * P;
    let v = px[j];
    if (e < TM * KBV) { ${store} }
  }
  for (var j = 0u; j < LW; j++) {
    let e = li + TH * j;
    let q = e % KBV;
    let at = XW + (e / KBV) * P;
    let v = pw[j];
    if (e < TN * KBV) { ${store} }
  }
}

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let col0 = wg.x * TN;
  let row0 = wg.y * TM;
  let g = li / G; // k-group
  let q = li % G;
  let tx = q % TNC;
  let ty = q / TNC;
  var acc: array<f32, ${rb * cb}>; // [i·CB + j]: row ty + TMR·i, column tx + TNC·j (zeroed)
${norm ? '  for (var j = 0u; j < LX; j++) { ssq[j] = 0.0; }\n' : ''}  load(0u, li, row0, col0, wg.x == 0u);
  for (var k0 = 0u; k0 < params.k; k0 += KB) {
    workgroupBarrier(); // the previous stage has been read
    store(li);
    workgroupBarrier();
    if (k0 + KB < params.k) { load(k0 + KB, li, row0, col0, wg.x == 0u); }
    for (var s = 0u; s < KT4; s++) {
      let kk = g * KT4 + s;
${lines(rb, (i) => `      let x${i} = buf[(ty + TMR * ${i}u) * P + kk];`)}
${lines(cb, (j) => `      let w${j} = buf[XW + (tx + TNC * ${j}u) * P + kk];`)}
${block((i, j, a) => `      acc[${a}] = fma(x${i}.w, w${j}.w, fma(x${i}.z, w${j}.z, fma(x${i}.y, w${j}.y, fma(x${i}.x, w${j}.x, acc[${a}]))));`)}
    }
  }
  workgroupBarrier();
${
  norm
    ? `  // Row scales: row r's squares are the loads e = r·KBV .. r·KBV + KBV − 1 (of all stages).
  for (var j = 0u; j < LX; j++) {
    let e = li + TH * j;
    if (e < TM * KBV) { setf(e, ssq[j]); }
  }
  workgroupBarrier();
  var s = 0.0;
  if (li < TM) { for (var e = 0u; e < KBV; e++) { s += getf(li * KBV + e); } }
  workgroupBarrier();
  if (li < TM) { setf(li, inverseSqrt(s / f32(params.k) + params.eps)); }
  workgroupBarrier();
${lines(rb, (i) => `  let scale${i} = getf(ty + TMR * ${i}u);`)}
  workgroupBarrier();
`
    : ''
}  // k-groups [h, 2h) add into [0, h), FIT of them at a time.
  for (var h = KS / 2u; h >= 1u; h /= 2u) {
    for (var base = 0u; base < h; base += FIT) {
      if (g >= h + base && g < min(h + base + FIT, 2u * h)) {
        let at = (g - h - base) * SLOT + q;
${block((_i, _j, a) => `        setf(at + ${a}u * G, acc[${a}]);`)}
      }
      workgroupBarrier();
      if (g >= base && g < min(base + FIT, h)) {
        let at = (g - base) * SLOT + q;
${block((_i, _j, a) => `        acc[${a}] += getf(at + ${a}u * G);`)}
      }
      workgroupBarrier();
    }
  }
  if (g != 0u) { return; }
${block((i, j, a) => `  put(row0 + ty + TMR * ${i}u, col0 + tx + TNC * ${j}u, acc[${a}]${norm ? ` * scale${i}` : ''});`)}
}`;
  sources.set(key, source);
  return source;
}

/** The tiles and kernel of each (m, n, vec, norm) under the tuning in `builtWith`. */
const chosen = new Map<number, { tiles: SkinnyTiles; kernel: Kernel }>();
const builtWith = { ...skinnyTuning };
let groupsBuilt = 0; // linearTuning.skinnyGroups

/**
 * skinnyTiles and the kernel's source for a call, worked out once: a batched decoding step makes
 * 49 of these calls, and choosing tiles and building the source's cache key each time cost ~1.5 µs
 * of JS per call.
 */
function choose(
  be: WebGpuBackend,
  m: number,
  n: number,
  groups: number,
  vec: 1 | 4,
  norm: boolean,
): { tiles: SkinnyTiles; kernel: Kernel } {
  if (retuned(builtWith, skinnyTuning) || groups !== groupsBuilt) {
    chosen.clear();
    groupsBuilt = groups;
  }
  const key = ((m * 16777216 + n) * 2 + (norm ? 1 : 0)) * 2 + (vec === 4 ? 1 : 0);
  let made = chosen.get(key);
  if (made === undefined) {
    const { maxComputeInvocationsPerWorkgroup: maxThreads, maxComputeWorkgroupStorageSize: maxBytes } =
      be.limits;
    const tiles = skinnyTiles(m, n, groups, norm, maxThreads, maxBytes);
    const name = `skinnyLinear${tiles.tm}x${tiles.tn}x${vec}${norm ? 'Norm' : ''}`;
    made = { tiles, kernel: { name, wgsl: wgsl(tiles, vec, norm) } };
    chosen.set(key, made);
  }
  return made;
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
  const { tiles, kernel } = choose(be, m, n, groups, vec, norm !== null);
  be.dispatch(
    kernel,
    buffers,
    [m, n, k, bias ? 1 : 0, xOffset, xStride, norm?.residual ? 1 : 0, { f32: norm?.eps ?? 0 }],
    [Math.ceil(n / tiles.tn), Math.ceil(m / tiles.tm)],
  );
}
