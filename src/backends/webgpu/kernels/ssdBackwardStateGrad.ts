// WGSL kernel `ssdBackwardStateGrad`: pass 1 of the chunked SSD backward (ssdBackwardChunked.ts),
// the gradient that a chunk's own outputs send to the state entering it,
//   G_c = Σ_t exp(cs_t) dy_tᵀ C_t   (p × n per head): (p × len)·(len × n),
// the transpose of the forward's chunk state pass (ssdChunked.ts) with dy for x, C for B and
// exp(cs_t) for exp(cs_last − cs_s) Δ_s.
// Workgroup (p-tile, n-tile; head; b·K + chunk), 256 threads, tiles of ssdTiles.ts.
// Grid (⌈p/TM⌉·⌈n/TN⌉, h, b·K).
// Bindings: 0 dy (b, l, h, p) · 1 C (b, l, g, n) · 2 cs (b, h, l) fixed point (ssdCumsum) ·
// 3 G (b, K, h, p, n) out · 4 params (ssdTiles.ts).
// Reference: ∂h of the CPU twin src/backends/cpu/ssdBackward.ts (dy_t C_tᵀ carried backwards).

import { eachAcc } from './ssdBackwardTiles.ts';
import { accessors, mma, params, stageSlab, tileHeader, tileStart } from './ssdTiles.ts';

export function stateGradWgsl(rm: number, rn: number): string {
  return /* wgsl */ `${params}
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> C: array<f32>;
@group(0) @binding(2) var<storage, read> cs: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read_write> G: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
${tileHeader(rm, rn)}
${accessors}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  ${tileStart('((params.p + TM - 1u) / TM)')}
  // Rows are p, columns n, the reduction runs over the chunk's positions t.
  let h = params.h;
  let grp = hh / (h / params.g);
  let row = bi * params.l + t0;
  let csAt = (bi * h + hh) * params.l + t0;
  for (var k0 = 0u; k0 < len; k0 += KT) {
${stageSlab(
  'As',
  rm,
  'm',
  `let t = k0 + k;
      var w = 0.0;
      if (t < len) { w = exp(fixedValue(cs[csAt + t])); }
      let yr = ((row + t) * h + hh) * params.p;`,
  'let pi = m0 + m + i; if (t < len && pi < params.p) { v[i] = w * dy[yr + pi]; }',
)}
${stageSlab(
  'Bs',
  rn,
  'm',
  'let t = k0 + k; let cr = ((row + t) * params.g + grp) * params.n;',
  'let ni = n0 + m + i; if (t < len && ni < params.n) { v[i] = C[cr + ni]; }',
)}
    ${mma}
  }
  let base = ((bi * params.chunks + c) * h + hh) * params.p * params.n;
  ${eachAcc('pi', 'ni', 'if (pi < params.p && ni < params.n) { G[base + pi * params.n + ni] = v[j]; }')}
}`;
}
