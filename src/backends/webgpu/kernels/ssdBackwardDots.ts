// WGSL kernel `ssdBackwardDots`: pass 3 of the chunked SSD backward (ssdBackwardChunked.ts), per
// head and chunk the gradient of the intra-chunk matrix C_t·B_s,
//   P[t][s] = (dy_t · x_s) exp(cs_t − cs_s) Δ_s   for s ≤ t < len, 0 for s > t,
// a (len × p)·(p × len) product. Tiles wholly above the diagonal (every s > t) are skipped and
// left unwritten: the later passes read P only at s ≤ t.
// Workgroup (t-tile, s-tile; head; b·K + chunk), 256 threads, tiles of ssdTiles.ts.
// Grid (⌈q/TM⌉·⌈q/TN⌉, h, b·K).
// Bindings: 0 dy (b, l, h, p) · 1 x (b, l, h, p) · 2 dl Δ (b, h, l) · 3 cs (b, h, l) fixed point ·
// 4 P (b, K, h, q, q) out · 5 params (ssdTiles.ts).
// Reference: src/backends/cpu/ssdBackward.ts (its dC, dB as the quadratic form's gradients).

import { eachAcc } from './ssdBackwardTiles.ts';
import { accessors, mma, params, stageSlab, tileHeader, tileStart } from './ssdTiles.ts';

export function dotsWgsl(rm: number, rn: number): string {
  return /* wgsl */ `${params}
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dl: array<f32>;
@group(0) @binding(3) var<storage, read> cs: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read_write> P: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;
${tileHeader(rm, rn)}
${accessors}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  ${tileStart('((params.q + TM - 1u) / TM)')}
  // Rows are t, columns s, the reduction runs over p.
  if (n0 > m0 + TM - 1u || m0 >= len || n0 >= len) { return; }
  let h = params.h;
  let row = bi * params.l + t0;
  let csAt = (bi * h + hh) * params.l + t0;
  for (var k0 = 0u; k0 < params.p; k0 += KT) {
${stageSlab(
  'As',
  rm,
  'k',
  'let pi = k0 + k;',
  'let t = m0 + m + i; if (t < len && pi < params.p) { v[i] = dy[((row + t) * h + hh) * params.p + pi]; }',
)}
${stageSlab(
  'Bs',
  rn,
  'k',
  'let pi = k0 + k;',
  'let s = n0 + m + i; if (s < len && pi < params.p) { v[i] = x[((row + s) * h + hh) * params.p + pi]; }',
)}
    ${mma}
  }
  let base = ((bi * params.chunks + c) * h + hh) * params.q * params.q;
  ${eachAcc(
    't',
    's',
    `if (t < len && s < len) {
            var w = 0.0;
            if (s <= t) { w = v[j] * exp(gap(cs[csAt + t], cs[csAt + s])) * dl[csAt + s]; }
            P[base + t * params.q + s] = w;
          }`,
  )}
}`;
}
