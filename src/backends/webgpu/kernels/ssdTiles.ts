// WGSL pieces shared by the tiled passes of the chunked SSD (ssdChunked.ts): the uniform params,
// the register-tiled product of two slabs staged in workgroup memory, the staging of a slab from
// a strided source, and the fixed-point gaps cs_t − cs_s.
// Tiles: 256 threads (16 × 16) own a TM × TN output tile, TM = 64·RM, TN = 64·RN (RM, RN ∈ {1, 2});
// thread (tx, ty) = (lid % 16, lid / 16) holds rows 4·(ty + 16a) + {0..3} and columns
// 4·(tx + 16b) + {0..3} in registers (acc: RM·4·RN vec4, row-major over (a, i, b)). Per step of
// KT = 16 along the reduction a KT × TM and a KT × TN slab are staged k-major as vec4 along their
// rows/columns: (RM + RN)·4 KiB of workgroup memory, ≤ 16 KiB, the WebGPU minimum (ssd.ts checks
// maxComputeWorkgroupStorageSize). Out-of-range elements (ragged p, n, len) are staged as 0 and
// never stored.

export const KT = 16;

/** The uniform params; `extra`: fields after them (", name: type, …"), e.g. a kernel's view offsets. */
export const paramsWith = (extra: string) => /* wgsl */ `
struct Params { l: u32, h: u32, p: u32, g: u32, n: u32, q: u32, chunks: u32, dtMin: f32, dtMax: f32,
  stride: u32, total: u32${extra} }`;

export const params = paramsWith('');

/** Constants and the two slabs of a tiled kernel. */
export function tileHeader(rm: number, rn: number): string {
  return /* wgsl */ `
const KT = ${KT}u;
const RM = ${rm}u;
const RN = ${rn}u;
const TM = ${64 * rm}u;
const TN = ${64 * rn}u;
const TM4 = ${16 * rm}u;
const TN4 = ${16 * rn}u;
var<workgroup> As: array<vec4<f32>, ${KT * 16 * rm}>;
var<workgroup> Bs: array<vec4<f32>, ${KT * 16 * rn}>;`;
}

/**
 * The inner product of the staged slabs into acc (RM·RN·4 vec4, row-major over a, i, b). `skip`:
 * a WGSL condition on (a, kk) under which the thread's row block a takes only zeros from slab row
 * kk (the upper triangle of a causal product), so that it skips those multiply-adds.
 */
export function mmaSkipping(skip: string | null): string {
  const body = /* wgsl */ `let av = As[kk * TM4 + ty + 16u * a];
        for (var bb = 0u; bb < RN; bb++) {
          let o = (a * 4u) * RN + bb;
          acc[o] += av.x * bv[bb];
          acc[o + RN] += av.y * bv[bb];
          acc[o + 2u * RN] += av.z * bv[bb];
          acc[o + 3u * RN] += av.w * bv[bb];
        }`;
  const guarded = skip === null ? body : `if (!(${skip})) {\n        ${body}\n        }`;
  return /* wgsl */ `
    workgroupBarrier();
    for (var kk = 0u; kk < KT; kk++) {
      var bv: array<vec4<f32>, RN>;
      for (var bb = 0u; bb < RN; bb++) { bv[bb] = Bs[kk * TN4 + tx + 16u * bb]; }
      for (var a = 0u; a < RM; a++) {
        ${guarded}
      }
    }
    workgroupBarrier();`;
}

export const mma = mmaSkipping(null);

/** The row and column of a thread's accumulator; the gap cs_t − cs_s. */
export const accessors = /* wgsl */ `
fn fixedValue(c: vec2<u32>) -> f32 { return f32(bitcast<i32>(c.x)) + f32(c.y) * 2.3283064e-10; }
// cs_t − cs_s, exact in fixed point before its rounding to f32.
fn gap(t: vec2<u32>, s: vec2<u32>) -> f32 {
  return fixedValue(vec2<u32>(t.x - s.x - select(0u, 1u, t.y < s.y), t.y - s.y));
}
fn rowOf(a: u32, i: u32, ty: u32) -> u32 { return 4u * (ty + 16u * a) + i; }
fn colOf(bb: u32, j: u32, tx: u32) -> u32 { return 4u * (tx + 16u * bb) + j; }`;

/**
 * Stages a KT × T slab (T = 64·r) into `slab`, k-major as vec4 along m: each thread fills r vec4
 * of 4 consecutive m. order 'm': consecutive threads take consecutive m (sources contiguous along
 * m); 'k': consecutive k (sources contiguous along k). `pre` may use k; `elem` sets v[i] for
 * element (k, m + i), leaving 0 outside the ranges.
 */
export function stageSlab(slab: 'As' | 'Bs', r: number, order: 'm' | 'k', pre: string, elem: string): string {
  const t4 = 16 * r;
  return /* wgsl */ `
    for (var j = 0u; j < ${r}u; j++) {
      let e = lid + 256u * j;
      let k = ${order === 'm' ? `e / ${t4}u` : 'e % KT'};
      let m = 4u * ${order === 'm' ? `(e % ${t4}u)` : '(e / KT)'};
      var v = vec4<f32>(0.0);
      ${pre}
      for (var i = 0u; i < 4u; i++) { ${elem} }
      ${slab}[k * ${t4}u + m / 4u] = v;
    }`;
}

/** Common start of a tiled kernel: ids, chunk bounds, zeroed accumulators. */
export const tileStart = (tilesM: string) => /* wgsl */ `
  let tx = lid % 16u;
  let ty = lid / 16u;
  let tileM = wid.x % ${tilesM};
  let tileN = wid.x / ${tilesM};
  let hh = wid.y;
  let bi = wid.z / params.chunks;
  let c = wid.z % params.chunks;
  let t0 = c * params.q;
  let len = min(params.q, params.l - t0);
  let m0 = tileM * TM;
  let n0 = tileN * TN;
  var acc: array<vec4<f32>, RM * RN * 4u>;`;

/**
 * After tileStart, in the kernels whose tile rows are a chunk's positions: a tile past the chunk's
 * end returns; h, the head's group, the chunk's first row of (b, l, ·), its first cs entry (b, h, l)
 * and its state (b, K, h, p, n).
 */
export const chunkRows = /* wgsl */ `
  if (m0 >= len) { return; }
  let h = params.h;
  let grp = hh / (h / params.g);
  let row = bi * params.l + t0;
  let csAt = (bi * h + hh) * params.l + t0;
  let sAt = ((bi * params.chunks + c) * h + hh) * params.p * params.n;`;
