// WGSL kernel `ssdBackwardDc`: pass 5 of the chunked SSD backward (ssdBackwardChunked.ts), one
// head's part of dC (the caller sums a group's heads):
//   dC_t = exp(cs_t) dy_t h_{c−1} + Σ_{s≤t} P[t][s] B_s,
// a (len × p)·(p × n) product with the state entering the chunk (the forward's ssdCarry) then a
// causal (len × len)·(len × n) one with P from ssdBackwardDots, into the same accumulators; the
// first part alone also goes to dCs (ssdBackwardFinish takes the gradient of cs from it).
// Workgroup (t-tile, n-tile; head; b·K + chunk), 256 threads, tiles of ssdTiles.ts.
// Grid (⌈q/TM⌉·⌈n/TN⌉, h, b·K).
// Bindings: 0 dy (b, l, h, p) · 1 S (b, K, h, p, n) states entering the chunks · 2 P (b, K, h, q, q)
// · 3 B (b, l, g, n) · 4 cs (b, h, l) fixed point · 5 dCh (b, l, h, n) out · 6 dCs (b, l, h, n) out ·
// 7 params (ssdTiles.ts).
// Reference: dC of src/backends/cpu/ssdBackward.ts.

import { eachAcc, scaleRows, stateProduct } from './ssdBackwardTiles.ts';
import { accessors, chunkRows, mma, params, stageSlab, tileHeader, tileStart } from './ssdTiles.ts';

export function dcWgsl(rm: number, rn: number): string {
  return /* wgsl */ `${params}
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> S: array<f32>;
@group(0) @binding(2) var<storage, read> P: array<f32>;
@group(0) @binding(3) var<storage, read> B: array<f32>;
@group(0) @binding(4) var<storage, read> cs: array<vec2<u32>>;
@group(0) @binding(5) var<storage, read_write> dCh: array<f32>;
@group(0) @binding(6) var<storage, read_write> dCs: array<f32>;
@group(0) @binding(7) var<uniform> params: Params;
${tileHeader(rm, rn)}
${accessors}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  ${tileStart('((params.q + TM - 1u) / TM)')}
  // Rows are t, columns n.
  ${chunkRows}
  // From the state entering the chunk: dy (len × p) · h_{c−1} (p × n), times exp(cs_t).
  ${stateProduct(rm, rn, 'dy', 'S')}
  ${scaleRows('t', 'exp(fixedValue(cs[csAt + t]))')}
  ${eachAcc('t', 'ni', 'if (t < len && ni < params.n) { dCs[((row + t) * h + hh) * params.n + ni] = v[j]; }')}
  // Inside the chunk: P (len × len, s ≤ t) · B (len × n).
  let pAt = ((bi * params.chunks + c) * h + hh) * params.q * params.q;
  let send = min(len, m0 + TM);
  for (var k0 = 0u; k0 < send; k0 += KT) {
${stageSlab(
  'As',
  rm,
  'k',
  'let s = k0 + k;',
  'let t = m0 + m + i; if (s <= t && t < len) { v[i] = P[pAt + t * params.q + s]; }',
)}
${stageSlab(
  'Bs',
  rn,
  'm',
  'let s = k0 + k; let br = ((row + min(s, len - 1u)) * params.g + grp) * params.n;',
  'let ni = n0 + m + i; if (s < len && ni < params.n) { v[i] = B[br + ni]; }',
)}
    ${mma}
  }
  ${eachAcc('t', 'ni', 'if (t < len && ni < params.n) { dCh[((row + t) * h + hh) * params.n + ni] = v[j]; }')}
}`;
}
