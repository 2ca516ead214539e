// WGSL kernels: Mamba-2's chunked SSD (the paper's algorithm, the structure of the official Triton
// kernels), matmul-shaped in workgroup memory. Reference: ssdChunked in src/backends/cpu/ssd.ts
// (same chunks of q positions, same formulas; the summation order differs).
//
// The length is cut into K = ⌈l/q⌉ chunks; len = the chunk's length (the last may be partial).
// Inside a chunk, t, s ∈ [0, len); cs_t = Σ_{u≤t} Δ_u A is the running sum of Δ·A.
//   1. ssdCumsum: Δ = clamp(softplus(dt + dtBias), dtLimit) and cs. Workgroup (head, chunk, b),
//      256 threads, one position each, a scan in workgroup memory per 256 positions.
//      Grid (h, K, b).
//   2. ssdChunkState: S_c = Σ_s exp(cs_last − cs_s) Δ_s x_sᵀ B_s  (p × n): (p × len)·(len × n),
//      computed as its transpose (n × p) where n ≥ 128 > p. Workgroup (row tile, column tile;
//      head; b·K + chunk). Grid (⌈rows/TM⌉·⌈columns/TN⌉, h, b·K).
//   3. ssdCarry: h_c = exp(cs_last,c) h_{c−1} + S_c; S_c is overwritten with h_{c−1} (the state
//      entering chunk c) and the final state goes to `state`. Thread (b, head, p·n element),
//      chunks sequential, their S read four at a time (latency: one load per chunk in turn kept
//      the pass near half of the bandwidth). Grid 1-D over b·h·p·n (grid1d).
//   4. ssdCb: CBᵀ[s][t] = B_s · C_t (q × q per group and chunk; tiles wholly above the diagonal,
//      s > t, are skipped). Workgroup (s-tile, t-tile; group; b·K + chunk).
//      Grid (⌈q/TM⌉·⌈q/TN⌉, g, b·K).
//   5. ssdOut: y_t = exp(cs_t) C_t h_{c−1}ᵀ + Σ_{s≤t} CBᵀ[s][t] exp(cs_t − cs_s) Δ_s x_s + D x_t,
//      a (len × n)·(n × p) product then a causal (len × len)·(len × p) one into the same
//      accumulators: its s-steps stop at the tile's last row, and inside a step a thread skips
//      the multiply-adds of a block of 4 rows that all lie before s (zeros of the triangle), so
//      the causal part costs ~half of a square instead of 3/4 (128-row tiles, q = 256). D x_t is
//      added through the diagonal of the causal matrix (x is read once). A thread stages the
//      same 4 rows t of the causal slab at every step: their cs_t are loaded once.
//      Workgroup (t-tile, p-tile; head; b·K + chunk). Grid (⌈q/TM⌉·⌈p/TN⌉, h, b·K).
// Every exponent is ≤ 0. The thread mapping of the tiled passes (2, 4, 5) is in ssdTiles.ts:
// 256 threads, each a 4·RM × 4·RN block of a TM × TN output tile (TM, TN = 64 or 128).
// Bindings (b, l, h, p, g, n; K chunks of q):
//   cumsum: 0 dt (b, l, h) · 1 dtBias (h) · 2 A (h) · 3 dl Δ (b, h, l) · 4 cs (b, h, l) in
//     64-bit fixed point (vec2<u32>: i32 integer part, 32 fraction bits), so that cs_t − cs_s is
//     exact before its rounding to f32 (an f32 cs loses ~|cs|·2⁻²⁴ in every gap)
//   chunkState: 0 x (b, l, h, p) · 1 B (b, l, g, n) · 2 dl · 3 cs · 4 S (b, K, h, p, n)
//   carry: 0 cs · 1 S rw · 2 state (b, h, p, n) rw
//   cb: 0 B · 1 C (b, l, g, n) · 2 cbT (b, K, g, q, q)
//   out: 0 x · 1 C · 2 dl · 3 cs · 4 S (states entering chunks) · 5 cbT · 6 D (h) · 7 y (b, l, h, p)
//   each followed by the uniform params {l, h, p, g, n, q, chunks, dtMin, dtMax,
//   stride, total} (stride and total: the 1-D grids' fold and thread count), then, in the
//   forward (all but carry), the element offset and row stride of x, dt, B and C: these may be
//   column views (Backend.split's parts), bound as their whole buffers, and the shapes above are
//   their logical ones (x's row (b, t) starts at xOffset + (b·l + t)·xStride). The backward
//   (ssdBackwardChunked.ts) reruns cumsum, chunkState, carry and cb on dense inputs without them.

import { softplusWgsl } from './softplus.ts';
import {
  accessors,
  chunkRows,
  mma,
  mmaSkipping,
  params,
  paramsWith,
  stageSlab,
  tileHeader,
  tileStart,
} from './ssdTiles.ts';

/**
 * The params and where row r (= b·l + t) of x, dt, B and C starts: read in place as column views
 * (`views`: the forward, with the element offset and row stride of each after ssdTiles' params) or
 * dense (the backward, which hands dense tensors and ssdTiles' params alone).
 */
function rowStarts(views: boolean): string {
  if (!views)
    return /* wgsl */ `${params}
fn xRow(r: u32) -> u32 { return r * params.h * params.p; }
fn dtRow(r: u32) -> u32 { return r * params.h; }
fn bRow(r: u32) -> u32 { return r * params.g * params.n; }
fn cRow(r: u32) -> u32 { return r * params.g * params.n; }`;
  return /* wgsl */ `${paramsWith(`,
  xOffset: u32, xStride: u32, dtOffset: u32, dtStride: u32, bOffset: u32, bStride: u32, cOffset: u32,
  cStride: u32`)}
fn xRow(r: u32) -> u32 { return params.xOffset + r * params.xStride; }
fn dtRow(r: u32) -> u32 { return params.dtOffset + r * params.dtStride; }
fn bRow(r: u32) -> u32 { return params.bOffset + r * params.bStride; }
fn cRow(r: u32) -> u32 { return params.cOffset + r * params.cStride; }`;
}

const cumsumFor = (views: boolean) => /* wgsl */ `${rowStarts(views)}
@group(0) @binding(0) var<storage, read> dt: array<f32>;
@group(0) @binding(1) var<storage, read> dtBias: array<f32>;
@group(0) @binding(2) var<storage, read> A: array<f32>;
@group(0) @binding(3) var<storage, read_write> dl: array<f32>;
@group(0) @binding(4) var<storage, read_write> cs: array<vec2<u32>>;
@group(0) @binding(5) var<uniform> params: Params;
var<workgroup> buf: array<vec2<u32>, 256>;

${softplusWgsl}
// cs in 64-bit fixed point, (integer part as i32 bits, 32 fraction bits): integer sums are exact
// and associative, so a gap cs_t − cs_s keeps its digits however large cs grows.
fn toFixed(v: f32) -> vec2<u32> {
  let f = floor(v);
  return vec2<u32>(bitcast<u32>(i32(f)), u32((v - f) * 4294967296.0));
}
fn add2(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
  let lo = a.y + b.y;
  return vec2<u32>(a.x + b.x + select(0u, 1u, lo < a.y), lo);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let hh = wid.x;
  let c = wid.y;
  let bi = wid.z;
  let h = params.h;
  let a = A[hh];
  let bias = dtBias[hh];
  let t0 = c * params.q;
  let len = min(params.q, params.l - t0);
  let o = (bi * h + hh) * params.l + t0;
  var carry = vec2<u32>(0u);
  for (var s0 = 0u; s0 < len; s0 += 256u) {
    let t = s0 + lid;
    var d = 0.0;
    if (t < len) {
      let at = dtRow(bi * params.l + t0 + t) + hh;
      d = clamp(softplus(dt[at] + bias), params.dtMin, params.dtMax);
    }
    var v = toFixed(d * a);
    buf[lid] = v;
    for (var off = 1u; off < 256u; off *= 2u) { // inclusive scan (Hillis–Steele)
      workgroupBarrier();
      var add = vec2<u32>(0u);
      if (lid >= off) { add = buf[lid - off]; }
      workgroupBarrier();
      v = add2(v, add);
      buf[lid] = v;
    }
    workgroupBarrier();
    if (t < len) {
      dl[o + t] = d;
      cs[o + t] = add2(carry, v);
    }
    carry = add2(carry, buf[255]);
    workgroupBarrier();
  }
}`;

/** The cumulative sums reading dt dense (the backward) or as a view (the forward). */
export const [cumsumWgsl, cumsumViewsWgsl] = [cumsumFor(false), cumsumFor(true)];

export const carryWgsl = /* wgsl */ `${params}
@group(0) @binding(0) var<storage, read> cs: array<vec2<u32>>;
@group(0) @binding(1) var<storage, read_write> S: array<f32>;
@group(0) @binding(2) var<storage, read_write> state: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

fn fixedValue(c: vec2<u32>) -> f32 { return f32(bitcast<i32>(c.x)) + f32(c.y) * 2.3283064e-10; }

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let e = id.x + id.y * params.stride; // (b, head, p·n element) of the state
  if (e >= params.total) { return; }
  let pn = params.p * params.n;
  let hh = (e / pn) % params.h;
  let bi = e / (pn * params.h);
  let rest = e % pn;
  let csAt = (bi * params.h + hh) * params.l;
  let at0 = (bi * params.chunks * params.h + hh) * pn + rest; // chunk 0; chunk c is c·h·pn further
  let step = params.h * pn;
  var s = state[e];
  for (var c0 = 0u; c0 < params.chunks; c0 += 4u) {
    // Four chunks' S loaded before the first is used: four loads in flight, not one per turn.
    var local = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) { if (c0 + j < params.chunks) { local[j] = S[at0 + (c0 + j) * step]; } }
    for (var j = 0u; j < 4u; j++) {
      let c = c0 + j;
      if (c < params.chunks) {
        S[at0 + c * step] = s;
        let last = cs[csAt + min((c + 1u) * params.q, params.l) - 1u];
        s = exp(fixedValue(last)) * s + local[j];
      }
    }
  }
  state[e] = s;
}`;

/** Rows p, columns n; or (transposed) rows n, columns p, stored back as (p, n). */
export function chunkStateWgsl(rm: number, rn: number, transposed: boolean, views = false): string {
  const xw = (r: number, slab: 'As' | 'Bs', first: '0' | 'n0' | 'm0') =>
    stageSlab(
      slab,
      r,
      'm',
      `let s = k0 + k;
      var w = 0.0;
      if (s < len) { w = exp(gap(csLast, cs[csAt + s])) * dl[csAt + s]; }
      let xr = xRow(bi * params.l + t0 + s) + hh * params.p;`,
      `let pi = ${first} + m + i; if (s < len && pi < params.p) { v[i] = w * x[xr + pi]; }`,
    );
  const bn = (r: number, slab: 'As' | 'Bs', first: 'n0' | 'm0') =>
    stageSlab(
      slab,
      r,
      'm',
      'let s = k0 + k; let br = bRow(bi * params.l + t0 + s) + grp * params.n;',
      `let ni = ${first} + m + i; if (s < len && ni < params.n) { v[i] = B[br + ni]; }`,
    );
  return /* wgsl */ `${rowStarts(views)}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read> dl: array<f32>;
@group(0) @binding(3) var<storage, read> cs: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read_write> S: array<${transposed ? 'vec4<f32>' : 'f32'}>;
@group(0) @binding(5) var<uniform> params: Params;
${tileHeader(rm, rn)}
${accessors}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  ${tileStart(`((params.${transposed ? 'n' : 'p'} + TM - 1u) / TM)`)}
  let h = params.h;
  let grp = hh / (h / params.g);
  let csAt = (bi * h + hh) * params.l + t0;
  let csLast = cs[csAt + len - 1u];
  for (var k0 = 0u; k0 < len; k0 += KT) {
    ${transposed ? bn(rm, 'As', 'm0') : xw(rm, 'As', 'm0')}
    ${transposed ? xw(rn, 'Bs', 'n0') : bn(rn, 'Bs', 'n0')}
    ${mma}
  }
  let base = ((bi * params.chunks + c) * h + hh) * params.p * params.n;
  ${transposed ? transposedStore : rowStore}
}`;
}

/** chunkState's store with rows p: a thread's values along n lie 16 bytes apart. */
const rowStore = /* wgsl */ `for (var a = 0u; a < RM; a++) {
    for (var i = 0u; i < 4u; i++) {
      let pi = m0 + rowOf(a, i, ty);
      for (var bb = 0u; bb < RN; bb++) {
        let v = acc[(a * 4u + i) * RN + bb];
        for (var j = 0u; j < 4u; j++) {
          let ni = n0 + colOf(bb, j, tx);
          if (pi < params.p && ni < params.n) { S[base + pi * params.n + ni] = v[j]; }
        }
      }
    }
  }`;

/**
 * chunkState's store with rows n (S bound as vec4): a thread's 4 rows of a column are 4
 * consecutive floats of S, one vec4 store where n % 4 == 0 (a float each, n·4 bytes apart across
 * a warp, cost 32 memory requests per store instruction), else component by component.
 */
const transposedStore = /* wgsl */ `for (var a = 0u; a < RM; a++) {
    let ni = m0 + rowOf(a, 0u, ty);
    for (var bb = 0u; bb < RN; bb++) {
      let r = a * 4u * RN + bb;
      for (var j = 0u; j < 4u; j++) {
        let pi = n0 + colOf(bb, j, tx);
        if (pi >= params.p || ni >= params.n) { continue; }
        let v = vec4<f32>(acc[r][j], acc[r + RN][j], acc[r + 2u * RN][j], acc[r + 3u * RN][j]);
        let e = base + pi * params.n + ni;
        if (params.n % 4u == 0u) {
          S[e / 4u] = v;
        } else {
          for (var i = 0u; i < 4u; i++) { if (ni + i < params.n) { S[(e + i) / 4u][(e + i) % 4u] = v[i]; } }
        }
      }
    }
  }`;

export function cbWgsl(rm: number, rn: number, views = false): string {
  return /* wgsl */ `${rowStarts(views)}
@group(0) @binding(0) var<storage, read> B: array<f32>;
@group(0) @binding(1) var<storage, read> C: array<f32>;
@group(0) @binding(2) var<storage, read_write> cbT: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;
${tileHeader(rm, rn)}
${accessors}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  ${tileStart('((params.q + TM - 1u) / TM)')}
  // Rows are s, columns t; hh is the group here. Tiles with every s > t, or past len, are unused.
  if (m0 > n0 + TN - 1u || m0 >= len || n0 >= len) { return; }
  let row = bi * params.l + t0;
  for (var k0 = 0u; k0 < params.n; k0 += KT) {
${stageSlab(
  'As',
  rm,
  'k',
  'let ki = k0 + k;',
  'let s = m0 + m + i; if (s < len && ki < params.n) { v[i] = B[bRow(row + s) + hh * params.n + ki]; }',
)}
    ${stageSlab(
      'Bs',
      rn,
      'k',
      'let ki = k0 + k;',
      'let t = n0 + m + i; if (t < len && ki < params.n) { v[i] = C[cRow(row + t) + hh * params.n + ki]; }',
    )}
    ${mma}
  }
  let base = ((bi * params.chunks + c) * params.g + hh) * params.q * params.q;
  for (var a = 0u; a < RM; a++) {
    for (var i = 0u; i < 4u; i++) {
      let s = m0 + rowOf(a, i, ty);
      if (s >= len) { continue; }
      for (var bb = 0u; bb < RN; bb++) {
        let v = acc[(a * 4u + i) * RN + bb];
        for (var j = 0u; j < 4u; j++) {
          let t = n0 + colOf(bb, j, tx);
          if (t < len) { cbT[base + s * params.q + t] = v[j]; }
        }
      }
    }
  }
}`;
}

export function outWgsl(rm: number, rn: number): string {
  return /* wgsl */ `${rowStarts(true)}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> C: array<f32>;
@group(0) @binding(2) var<storage, read> dl: array<f32>;
@group(0) @binding(3) var<storage, read> cs: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read> S: array<f32>;
@group(0) @binding(5) var<storage, read> cbT: array<f32>;
@group(0) @binding(6) var<storage, read> D: array<f32>;
@group(0) @binding(7) var<storage, read_write> y: array<f32>;
@group(0) @binding(8) var<uniform> params: Params;
${tileHeader(rm, rn)}
${accessors}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  ${tileStart('((params.q + TM - 1u) / TM)')}
  // Rows are t, columns p.
  ${chunkRows}
  // The carried-in state: C_t (len × n) · h_{c−1}ᵀ (n × p).
  for (var k0 = 0u; k0 < params.n; k0 += KT) {
${stageSlab(
  'As',
  rm,
  'k',
  'let ki = k0 + k;',
  'let t = m0 + m + i; if (t < len && ki < params.n) { v[i] = C[cRow(row + t) + grp * params.n + ki]; }',
)}
    ${stageSlab(
      'Bs',
      rn,
      'k',
      'let ki = k0 + k;',
      'let pi = n0 + m + i; if (pi < params.p && ki < params.n) { v[i] = S[sAt + pi * params.n + ki]; }',
    )}
    ${mma}
  }
  for (var a = 0u; a < RM; a++) {
    for (var i = 0u; i < 4u; i++) {
      let t = min(m0 + rowOf(a, i, ty), len - 1u);
      let at = cs[csAt + t];
      let decay = exp(fixedValue(at));
      for (var bb = 0u; bb < RN; bb++) { acc[(a * 4u + i) * RN + bb] *= decay; }
    }
  }
  // Inside the chunk: (CBᵀ ∘ L · Δ + D·I)ᵀ (len × len, s ≤ t) · x (len × p): the skip D x_t rides
  // on the diagonal, so x is not read again for it.
  let skip = D[hh];
  let cbAt = ((bi * params.chunks + c) * params.g + grp) * params.q * params.q;
  let send = min(len, m0 + TM);
  // The slab rows t = m0 + m + i this thread stages are the same at every step (m = 4·(lid % TM4)):
  // their cs_t, loaded once (loading them per element made ssdOut ~7% slower on the H100).
  var rowsCs: array<vec2<u32>, 4>;
  for (var i = 0u; i < 4u; i++) { rowsCs[i] = cs[csAt + min(m0 + 4u * (lid % TM4) + i, len - 1u)]; }
  for (var k0 = 0u; k0 < send; k0 += KT) {
${stageSlab(
  'As',
  rm,
  'm',
  `let s = k0 + k;
      let sc = min(s, len - 1u);
      let css = cs[csAt + sc];
      let ds = dl[csAt + sc];
      let cbr = cbAt + sc * params.q;`,
  `let t = m0 + m + i;
      if (s <= t && t < len) { v[i] = cbT[cbr + t] * exp(gap(rowsCs[i], css)) * ds + select(0.0, skip, s == t); }`,
)}
    ${stageSlab(
      'Bs',
      rn,
      'm',
      'let s = k0 + k; let xr = xRow(row + s) + hh * params.p;',
      'let pi = n0 + m + i; if (s < len && pi < params.p) { v[i] = x[xr + pi]; }',
    )}
    ${mmaSkipping('m0 + rowOf(a, 3u, ty) < k0 + kk')}
  }
  for (var a = 0u; a < RM; a++) {
    for (var i = 0u; i < 4u; i++) {
      let t = m0 + rowOf(a, i, ty);
      if (t >= len) { continue; }
      for (var bb = 0u; bb < RN; bb++) {
        let v = acc[(a * 4u + i) * RN + bb];
        for (var j = 0u; j < 4u; j++) {
          let pi = n0 + colOf(bb, j, tx);
          if (pi < params.p) { y[((row + t) * h + hh) * params.p + pi] = v[j]; }
        }
      }
    }
  }
}`;
}
