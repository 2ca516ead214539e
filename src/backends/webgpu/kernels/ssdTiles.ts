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
// The forward's steps (`steps`, under a `Steps` of ssdTuning) may also: issue the next step's
// global loads into registers before this step's multiply-adds and store them after (prefetch);
// keep two slabs of each, filling one while the other is multiplied (double: one barrier per step,
// twice the memory); write the multiply-adds out with constant indices instead of WGSL loops
// (unroll). The backward stages and multiplies with `stageSlab` and `mma`.

export const KT = 16;

/** The uniform params; `extra`: fields after them (", name: type, …"), e.g. a kernel's view offsets. */
export const paramsWith = (extra: string) => /* wgsl */ `
struct Params { l: u32, h: u32, p: u32, g: u32, n: u32, q: u32, chunks: u32, dtMin: f32, dtMax: f32,
  stride: u32, total: u32${extra} }`;

export const params = paramsWith('');

/** Constants and the two slabs of a tiled kernel (`buffers` of each: 2 for Steps.double). */
export function tileHeader(rm: number, rn: number, buffers = 1): string {
  return /* wgsl */ `
const KT = ${KT}u;
const RM = ${rm}u;
const RN = ${rn}u;
const TM = ${64 * rm}u;
const TN = ${64 * rn}u;
const TM4 = ${16 * rm}u;
const TN4 = ${16 * rn}u;
var<workgroup> As: array<vec4<f32>, ${buffers * KT * 16 * rm}>;
var<workgroup> Bs: array<vec4<f32>, ${buffers * KT * 16 * rn}>;`;
}

/**
 * A condition, from WGSL expressions of a row block `a` and a slab row `kk`, under which the
 * thread's row block a takes only zeros from slab row kk (the upper triangle of a causal product),
 * so that it skips those multiply-adds.
 */
export type Skip = (a: string, kk: string) => string;

/**
 * The inner product of the staged slabs into acc (RM·RN·4 vec4, row-major over a, i, b), without
 * barriers. `buffer`: a WGSL expression of the slab buffer read (Steps.double), null for one.
 * `unroll`: every kk, a and bb written out (constant indices) instead of WGSL loops.
 */
function mmaSteps(rm: number, rn: number, skip: Skip | null, buffer: string | null, unroll: boolean): string {
  const [aAt, bAt] = buffer === null ? ['', ''] : [`${buffer} * KT * TM4 + `, `${buffer} * KT * TN4 + `];
  const guard = (cond: string | null, body: string) =>
    cond === null ? body : `if (!(${cond})) {\n        ${body}\n        }`;
  if (!unroll) {
    const body = /* wgsl */ `let av = As[${aAt}kk * TM4 + ty + 16u * a];
        for (var bb = 0u; bb < RN; bb++) {
          let o = (a * 4u) * RN + bb;
          acc[o] += av.x * bv[bb];
          acc[o + RN] += av.y * bv[bb];
          acc[o + 2u * RN] += av.z * bv[bb];
          acc[o + 3u * RN] += av.w * bv[bb];
        }`;
    return /* wgsl */ `
    for (var kk = 0u; kk < KT; kk++) {
      var bv: array<vec4<f32>, RN>;
      for (var bb = 0u; bb < RN; bb++) { bv[bb] = Bs[${bAt}kk * TN4 + tx + 16u * bb]; }
      for (var a = 0u; a < RM; a++) {
        ${guard(skip?.('a', 'kk') ?? null, body)}
      }
    }`;
  }
  const out: string[] = [];
  for (let kk = 0; kk < KT; kk++) {
    const bs = Array.from(
      { length: rn },
      (_, bb) => `let bv${bb} = Bs[${bAt}${kk * 16 * rn + 16 * bb}u + tx];`,
    );
    const as = Array.from({ length: rm }, (_, a) => {
      const adds = Array.from({ length: rn }, (_, bb) =>
        [...'xyzw'].map((c, i) => `acc[${(a * 4 + i) * rn + bb}] += av.${c} * bv${bb};`).join(' '),
      ).join(' ');
      return guard(
        skip?.(`${a}u`, `${kk}u`) ?? null,
        `{ let av = As[${aAt}${kk * 16 * rm + 16 * a}u + ty]; ${adds} }`,
      );
    });
    out.push(`    {\n      ${bs.join(' ')}\n      ${as.join('\n      ')}\n    }`);
  }
  return `\n${out.join('\n')}`;
}

/** The inner product of the staged slabs into acc, between the barriers of a step. */
export const mma = /* wgsl */ `
    workgroupBarrier();${mmaSteps(1, 1, null, null, false)}
    workgroupBarrier();`;

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
 * The loop over the r vec4 a thread stages of a KT × T slab (T = 64·r), k-major as vec4 along m:
 * `body` sees j, k and m (its vec4 holds elements (k, m + 0..3)). order 'm': consecutive threads
 * take consecutive m (sources contiguous along m); 'k': consecutive k (sources contiguous along k).
 * A thread's m is the same for every j (256 is a multiple of T/4) under order 'm'.
 */
function slabLoop(r: number, order: 'm' | 'k', body: string): string {
  const t4 = 16 * r;
  return /* wgsl */ `
    for (var j = 0u; j < ${r}u; j++) {
      let e = lid + 256u * j;
      let k = ${order === 'm' ? `e / ${t4}u` : 'e % KT'};
      let m = 4u * ${order === 'm' ? `(e % ${t4}u)` : '(e / KT)'};
      ${body}
    }`;
}

/**
 * Stages a KT × T slab into `slab` (slabLoop): `pre` may use k; `elem` sets v[i] for element
 * (k, m + i), leaving 0 outside the ranges.
 */
export function stageSlab(slab: 'As' | 'Bs', r: number, order: 'm' | 'k', pre: string, elem: string): string {
  return slabLoop(
    r,
    order,
    /* wgsl */ `var v = vec4<f32>(0.0);
      ${pre}
      for (var i = 0u; i < 4u; i++) { ${elem} }
      ${slab}[k * ${16 * r}u + m / 4u] = v;`,
  );
}

/**
 * A slab of the forward's steps, its staging split in two so that the global loads may run ahead
 * of their use: `fetch` loads into registers (declared by `regs`, arrays of r, indexed by j),
 * `fill` sets v (a zeroed vec4) from them. `at`, before both, may use k0, k and m (no loads).
 */
export interface Slab {
  slab: 'As' | 'Bs';
  r: number;
  order: 'm' | 'k';
  regs: string;
  at: string;
  fetch: string;
  fill: string;
}

/**
 * A slab whose fetch is the loads of its elements alone (into `${slab}r`): `elem` sets v[i] for
 * element (k, m + i), leaving 0 outside the ranges (as in stageSlab).
 */
export function loadSlab(slab: 'As' | 'Bs', r: number, order: 'm' | 'k', at: string, elem: string): Slab {
  return {
    slab,
    r,
    order,
    regs: `var ${slab}r: array<vec4<f32>, ${r}u>;`,
    at,
    fetch: /* wgsl */ `var v = vec4<f32>(0.0);
      for (var i = 0u; i < 4u; i++) { ${elem} }
      ${slab}r[j] = v;`,
    fill: `v = ${slab}r[j];`,
  };
}

/** How the forward's tiled passes step along the reduction (ssdTuning; the header says what). */
export interface Steps {
  prefetch: boolean;
  double: boolean;
  unroll: boolean;
}

export const plainSteps: Steps = { prefetch: false, double: false, unroll: false };

/**
 * The steps k0 = from, from + KT, … < to of a tiled pass: `slabs` staged, their product added to
 * acc (a thread's row blocks skip under `skip`). Plain: per step, load and store, barrier,
 * multiply-adds, barrier. prefetch: step k0 + KT's loads issued before step k0's multiply-adds.
 * double (implies prefetch): they are stored into the other buffer after the multiply-adds, and one
 * barrier ends the step. The slabs of tileHeader(rm, rn, double ? 2 : 1).
 */
export function steps(
  from: string,
  to: string,
  slabs: Slab[],
  rm: number,
  rn: number,
  skip: Skip | null,
  s: Steps,
): string {
  // Per slab, in its slabLoop: the loads into registers; the store from them into slab buffer
  // `buffer` (a WGSL expression; null: the first).
  const load = (x: Slab) => `\n      {\n      ${x.fetch}\n      }`;
  const store = (x: Slab, buffer: string | null) => `
      var v = vec4<f32>(0.0);
      ${x.fill}
      ${x.slab}[${buffer === null ? '' : `${buffer} * ${KT * 16 * x.r}u + `}k * ${16 * x.r}u + m / 4u] = v;`;
  const each = (body: (x: Slab) => string) =>
    slabs.map((x) => slabLoop(x.r, x.order, `${x.at}${body(x)}`)).join('');
  const fetch = each(load);
  const fill = (buffer: string | null) => each((x) => store(x, buffer));
  const regs = slabs.map((x) => x.regs).join('\n    ');
  if (!s.prefetch && !s.double) {
    const both = each((x) => `${load(x)}${store(x, null)}`);
    return /* wgsl */ `
  for (var k0 = ${from}; k0 < ${to}; k0 += KT) {
    ${regs}${both}
    workgroupBarrier();${mmaSteps(rm, rn, skip, null, s.unroll)}
    workgroupBarrier();
  }`;
  }
  if (!s.double)
    return /* wgsl */ `
  {
    ${regs}
    if (${from} < ${to}) {
      let k0 = ${from};${fetch}
    }
    for (var k0 = ${from}; k0 < ${to}; k0 += KT) {${fill(null)}
      workgroupBarrier();
      let next = k0 + KT;
      if (next < ${to}) {
        let k0 = next;${fetch}
      }${mmaSteps(rm, rn, skip, null, s.unroll)}
      workgroupBarrier();
    }
  }`;
  return /* wgsl */ `
  {
    ${regs}
    var buffer = 0u;
    if (${from} < ${to}) {
      let k0 = ${from};${fetch}${fill(null)}
    }
    workgroupBarrier();
    for (var k0 = ${from}; k0 < ${to}; k0 += KT) {
      let next = k0 + KT;
      if (next < ${to}) {
        let k0 = next;${fetch}
      }${mmaSteps(rm, rn, skip, 'buffer', s.unroll)}
      if (next < ${to}) {
        let k0 = next;${fill('(1u - buffer)')}
      }
      workgroupBarrier();
      buffer = 1u - buffer;
    }
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
