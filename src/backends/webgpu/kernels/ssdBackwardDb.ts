// WGSL kernel `ssdBackwardDb`: pass 6 of the chunked SSD backward (ssdBackwardChunked.ts), one
// head's part of dB (the caller sums a group's heads):
//   dB_s = exp(cs_last − cs_s) Δ_s x_s dS_c + Σ_{t≥s} P[t][s] C_t,
// a (len × p)·(p × n) product with the gradient of the state leaving the chunk (ssdBackwardCarry)
// then an anti-causal (len × len)·(len × n) one with P from ssdBackwardDots; the first part alone
// also goes to dBs (ssdBackwardFinish takes the gradient of cs from it).
// Workgroup (s-tile, n-tile; head; b·K + chunk), 256 threads, tiles of ssdTiles.ts.
// Grid (⌈q/TM⌉·⌈n/TN⌉, h, b·K).
// Bindings: 0 x (b, l, h, p) · 1 dS (b, K, h, p, n) · 2 P (b, K, h, q, q) · 3 C (b, l, g, n) ·
// 4 dl Δ (b, h, l) · 5 cs (b, h, l) fixed point · 6 dBh (b, l, h, n) out · 7 dBs (b, l, h, n) out ·
// 8 params (ssdTiles.ts).
// Reference: dB of src/backends/cpu/ssdBackward.ts.

import { eachAcc, scaleRows, stateProduct } from './ssdBackwardTiles.ts';
import { accessors, chunkRows, mma, params, stageSlab, tileHeader, tileStart } from './ssdTiles.ts';

export function dbWgsl(rm: number, rn: number): string {
  return /* wgsl */ `${params}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dS: array<f32>;
@group(0) @binding(2) var<storage, read> P: array<f32>;
@group(0) @binding(3) var<storage, read> C: array<f32>;
@group(0) @binding(4) var<storage, read> dl: array<f32>;
@group(0) @binding(5) var<storage, read> cs: array<vec2<u32>>;
@group(0) @binding(6) var<storage, read_write> dBh: array<f32>;
@group(0) @binding(7) var<storage, read_write> dBs: array<f32>;
@group(0) @binding(8) var<uniform> params: Params;
${tileHeader(rm, rn)}
${accessors}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  ${tileStart('((params.q + TM - 1u) / TM)')}
  // Rows are s, columns n.
  ${chunkRows}
  // From the state leaving the chunk: x (len × p) · dS (p × n), times exp(cs_last − cs_s) Δ_s.
  ${stateProduct(rm, rn, 'x', 'dS')}
  let csLast = cs[csAt + len - 1u];
  ${scaleRows('s', 'exp(gap(csLast, cs[csAt + s])) * dl[csAt + s]')}
  ${eachAcc('s', 'ni', 'if (s < len && ni < params.n) { dBs[((row + s) * h + hh) * params.n + ni] = v[j]; }')}
  // Inside the chunk: Pᵀ (len × len, t ≥ s) · C (len × n).
  let pAt = ((bi * params.chunks + c) * h + hh) * params.q * params.q;
  for (var k0 = m0; k0 < len; k0 += KT) {
${stageSlab(
  'As',
  rm,
  'm',
  'let t = k0 + k; let pr = pAt + min(t, len - 1u) * params.q;',
  'let s = m0 + m + i; if (s <= t && t < len) { v[i] = P[pr + s]; }',
)}
${stageSlab(
  'Bs',
  rn,
  'm',
  'let t = k0 + k; let cr = ((row + min(t, len - 1u)) * params.g + grp) * params.n;',
  'let ni = n0 + m + i; if (t < len && ni < params.n) { v[i] = C[cr + ni]; }',
)}
    ${mma}
  }
  ${eachAcc('s', 'ni', 'if (s < len && ni < params.n) { dBh[((row + s) * h + hh) * params.n + ni] = v[j]; }')}
}`;
}
