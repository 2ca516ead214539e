// WGSL kernel `ssdBackwardDx`: pass 4 of the chunked SSD backward (ssdBackwardChunked.ts), the
// gradient of u_s = Δ_s x_s (before Δ and the D skip, which ssdBackwardFinish applies):
//   du_s = exp(cs_last − cs_s) B_s dS_cᵀ + Σ_{t≥s} (C_t·B_s) exp(cs_t − cs_s) dy_t,
// a (len × n)·(n × p) product (the chunk state's gradient dS_c leaving the chunk, from
// ssdBackwardCarry) then an anti-causal (len × len)·(len × p) one into the same accumulators,
// with C_t·B_s from the forward's ssdCb pass (cbT[s][t], s ≤ t).
// Workgroup (s-tile, p-tile; head; b·K + chunk), 256 threads, tiles of ssdTiles.ts.
// Grid (⌈q/TM⌉·⌈p/TN⌉, h, b·K).
// Bindings: 0 B (b, l, g, n) · 1 dS (b, K, h, p, n) · 2 cbT (b, K, g, q, q) · 3 cs (b, h, l) fixed
// point · 4 dy (b, l, h, p) · 5 du (b, l, h, p) out · 6 params (ssdTiles.ts).
// Reference: dx of src/backends/cpu/ssdBackward.ts (dx = Δ du + D dy).

import { eachAcc, scaleRows } from './ssdBackwardTiles.ts';
import { accessors, chunkRows, mma, params, stageSlab, tileHeader, tileStart } from './ssdTiles.ts';

export function dxWgsl(rm: number, rn: number): string {
  return /* wgsl */ `${params}
@group(0) @binding(0) var<storage, read> B: array<f32>;
@group(0) @binding(1) var<storage, read> dS: array<f32>;
@group(0) @binding(2) var<storage, read> cbT: array<f32>;
@group(0) @binding(3) var<storage, read> cs: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> du: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;
${tileHeader(rm, rn)}
${accessors}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  ${tileStart('((params.q + TM - 1u) / TM)')}
  // Rows are s, columns p.
  ${chunkRows}
  // From the state leaving the chunk: B_s (len × n) · dSᵀ (n × p), times exp(cs_last − cs_s).
  for (var k0 = 0u; k0 < params.n; k0 += KT) {
${stageSlab(
  'As',
  rm,
  'k',
  'let ki = k0 + k;',
  'let s = m0 + m + i; if (s < len && ki < params.n) { v[i] = B[((row + s) * params.g + grp) * params.n + ki]; }',
)}
${stageSlab(
  'Bs',
  rn,
  'k',
  'let ki = k0 + k;',
  'let pi = n0 + m + i; if (pi < params.p && ki < params.n) { v[i] = dS[sAt + pi * params.n + ki]; }',
)}
    ${mma}
  }
  let csLast = cs[csAt + len - 1u];
  ${scaleRows('s', 'exp(gap(csLast, cs[csAt + s]))')}
  // Inside the chunk: (CBᵀ ∘ L) (len × len, t ≥ s) · dy (len × p).
  let cbAt = ((bi * params.chunks + c) * params.g + grp) * params.q * params.q;
  for (var k0 = m0; k0 < len; k0 += KT) {
${stageSlab(
  'As',
  rm,
  'k',
  'let t = k0 + k; let cst = cs[csAt + min(t, len - 1u)];',
  'let s = m0 + m + i; if (s <= t && t < len) { v[i] = cbT[cbAt + s * params.q + t] * exp(gap(cst, cs[csAt + s])); }',
)}
${stageSlab(
  'Bs',
  rn,
  'm',
  'let t = k0 + k; let yr = ((row + min(t, len - 1u)) * h + hh) * params.p;',
  'let pi = n0 + m + i; if (t < len && pi < params.p) { v[i] = dy[yr + pi]; }',
)}
    ${mma}
  }
  ${eachAcc('s', 'pi', 'if (s < len && pi < params.p) { du[((row + s) * h + hh) * params.p + pi] = v[j]; }')}
}`;
}
