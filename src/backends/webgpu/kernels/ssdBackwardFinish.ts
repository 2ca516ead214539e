// WGSL kernel `ssdBackwardFinish`: the last pass of the chunked SSD backward
// (ssdBackwardChunked.ts). Workgroup (chunk, head, b), one thread per position of the chunk
// (q ≤ 256), sums over the chunk in workgroup memory in a fixed order:
//   dx_t = Δ_t du_t + D dy_t (in place over du),  dΔ_t (direct) = x_t · du_t,
//   da_u = ∂L/∂a_u (a = Δ A; cs_t = Σ_{u≤t} a_u, so da_u = Σ_{t≥u} ∂L/∂cs_t), in the "stable"
//   form of mamba_ssm's chunk scan backward, where the ± pairs of every exp(cs_t − cs_s) cancel
//   before rounding instead of after (the plain Σ_{t≥u}(C_t·dC_t − B_t·dB_t) loses digits):
//     da_u = Σ_{t≥u} C_t·dCs_t + Σ_{s<u} B_s·dBs_s + E_c + Σ_{t≥u} Σ_{s<u} M[t][s]
//   with dCs, dBs the state parts of dC and dB (ssdBackwardDc/Db), E_c = exp(cs_last) Σ dS_c ⊙
//   h_{c−1} (ssdBackwardCarry, summed) and M[t][s] = P[t][s] (C_t·B_s); the double sum is a prefix
//   along each row of M (written over P, which is not read afterwards) then a sum down each column;
//   dΔ_t = dΔ_t (direct) + A da_t,  ddt_t = dΔ_t softplus'(dt_t + dtBias), 0 where clamped;
//   per chunk: dA = Σ_t Δ_t da_t, dD = Σ_t dy_t · x_t.
// Bindings: 0 x (b, l, h, p) · 1 dy (b, l, h, p) · 2 dt (b, l, h) · 3 dtBias (h) · 4 A (h) · 5 D (h)
// · 6 B (b, l, g, n) · 7 C (b, l, g, n) · 8 dBs (b, l, h, n) · 9 dCs (b, l, h, n) · 10 E (b, K, h) ·
// 11 cbT (b, K, g, q, q) · 12 P (b, K, h, q, q) rw (scratch) · 13 du → dx (b, l, h, p) rw ·
// 14 ddt (b, l, h) out · 15 dAD (b·K, 2, h) out: dA, then dD · 16 params (ssdTiles.ts).
// Grid (K, h, b). Reference: src/backends/cpu/ssdBackward.ts.

import { softplusWgsl } from './softplus.ts';
import { params } from './ssdTiles.ts';
import { workgroupReduce } from './workgroupReduce.ts';

export const finishWgsl = /* wgsl */ `${params}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> dt: array<f32>;
@group(0) @binding(3) var<storage, read> dtBias: array<f32>;
@group(0) @binding(4) var<storage, read> A: array<f32>;
@group(0) @binding(5) var<storage, read> D: array<f32>;
@group(0) @binding(6) var<storage, read> B: array<f32>;
@group(0) @binding(7) var<storage, read> C: array<f32>;
@group(0) @binding(8) var<storage, read> dBs: array<f32>;
@group(0) @binding(9) var<storage, read> dCs: array<f32>;
@group(0) @binding(10) var<storage, read> E: array<f32>;
@group(0) @binding(11) var<storage, read> cbT: array<f32>;
@group(0) @binding(12) var<storage, read_write> P: array<f32>;
@group(0) @binding(13) var<storage, read_write> du: array<f32>;
@group(0) @binding(14) var<storage, read_write> ddt: array<f32>;
@group(0) @binding(15) var<storage, read_write> dAD: array<f32>;
@group(0) @binding(16) var<uniform> params: Params;
var<workgroup> after: array<f32, 256>; // Σ over t ≥ position
var<workgroup> before: array<f32, 256>; // Σ over s < position
${workgroupReduce(256)}

${softplusWgsl}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let c = wid.x;
  let hh = wid.y;
  let bi = wid.z;
  let h = params.h;
  let q = params.q;
  let grp = hh / (h / params.g);
  let t0 = c * q;
  let len = min(q, params.l - t0);
  let live = lid < len;
  let row = bi * params.l + t0 + min(lid, len - 1u);
  let v = dt[row * h + hh] + dtBias[hh];
  let sp = softplus(v);
  let delta = clamp(sp, params.dtMin, params.dtMax);
  let inside = sp >= params.dtMin && sp <= params.dtMax;
  let slope = select(1.0 / (1.0 + exp(-v)), 1.0, v > 20.0);
  let pAt = ((bi * params.chunks + c) * h + hh) * q * q;
  let cbAt = ((bi * params.chunks + c) * params.g + grp) * q * q;
  var direct = 0.0;
  var dD = 0.0;
  var ca = 0.0; // C_t·dCs_t
  var cb = 0.0; // B_t·dBs_t
  if (live) {
    let skip = D[hh];
    let xr = (row * h + hh) * params.p;
    for (var pi = 0u; pi < params.p; pi++) {
      let xv = x[xr + pi];
      let gy = dy[xr + pi];
      let g = du[xr + pi];
      direct += xv * g;
      dD += gy * xv;
      du[xr + pi] = delta * g + skip * gy;
    }
    let bc = (row * params.g + grp) * params.n;
    let hr = (row * h + hh) * params.n;
    for (var ni = 0u; ni < params.n; ni++) {
      ca += C[bc + ni] * dCs[hr + ni];
      cb += B[bc + ni] * dBs[hr + ni];
    }
    // Row t of M, prefix-summed in place: P[t][u] ← Σ_{s<u} M[t][s] for u ≤ t.
    var run = 0.0;
    for (var s = 0u; s <= lid; s++) {
      let m = P[pAt + lid * q + s] * cbT[cbAt + s * q + lid];
      P[pAt + lid * q + s] = run;
      run += m;
    }
  }
  storageBarrier();
  var da = E[(bi * params.chunks + c) * h + hh];
  if (live) { for (var t = lid; t < len; t++) { da += P[pAt + t * q + lid]; } }
  // Σ_{t≥u} ca_t and Σ_{s<u} cb_s (Hillis–Steele; positions past len hold 0).
  var suf = select(0.0, ca, live);
  var pre = select(0.0, cb, live);
  after[lid] = suf;
  before[lid] = pre;
  for (var off = 1u; off < 256u; off *= 2u) {
    workgroupBarrier();
    var addA = 0.0;
    var addB = 0.0;
    if (lid + off < 256u) { addA = after[lid + off]; }
    if (lid >= off) { addB = before[lid - off]; }
    workgroupBarrier();
    suf += addA;
    pre += addB;
    after[lid] = suf;
    before[lid] = pre;
  }
  workgroupBarrier();
  if (lid > 0u) { da += before[lid - 1u]; } // the inclusive prefix of s = u − 1: Σ over s < u
  da += suf;
  if (live) { ddt[row * h + hh] = (direct + A[hh] * da) * select(0.0, slope, inside); }
  let dA = reduceAll(lid, select(0.0, delta * da, live), false);
  let dDs = reduceAll(lid, dD, false);
  if (lid == 0u) {
    let at = (bi * params.chunks + c) * 2u * h + hh;
    dAD[at] = dA;
    dAD[at + h] = dDs;
  }
}`;
