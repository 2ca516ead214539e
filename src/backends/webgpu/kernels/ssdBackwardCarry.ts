// WGSL kernel `ssdBackwardCarry`: pass 2 of the chunked SSD backward (ssdBackwardChunked.ts), the
// state passing run backwards. Thread (b, head, p·n element), chunks from the last:
//   dS_c = gradient reaching the state leaving chunk c (0 for the last chunk),
//   dS_{c−1} = exp(cs_last,c) dS_c + G_c;
// G_c is overwritten with dS_c, and prod_c = exp(cs_last,c) dS_c ⊙ h_{c−1} (h_{c−1}: the state
// entering chunk c) is written: summed over (p, n) by the caller, it is the part of the gradient
// of every cs_t of chunk c that flows through exp(cs_last,c) h_{c−1}.
// Grid 1-D over b·h·p·n (grid1d).
// Bindings: 0 cs (b, h, l) fixed point · 1 S (b, K, h, p, n) the states entering the chunks ·
// 2 G (b, K, h, p, n) rw · 3 prod (b, K, h, p, n) out · 4 params (ssdTiles.ts; stride, total).
// Reference: the reverse walk of ∂h in src/backends/cpu/ssdBackward.ts.

import { accessors, params } from './ssdTiles.ts';

export const backwardCarryWgsl = /* wgsl */ `${params}
@group(0) @binding(0) var<storage, read> cs: array<vec2<u32>>;
@group(0) @binding(1) var<storage, read> S: array<f32>;
@group(0) @binding(2) var<storage, read_write> G: array<f32>;
@group(0) @binding(3) var<storage, read_write> prod: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
${accessors}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let e = id.x + id.y * params.stride; // (b, head, p·n element)
  if (e >= params.total) { return; }
  let pn = params.p * params.n;
  let hh = (e / pn) % params.h;
  let bi = e / (pn * params.h);
  let rest = e % pn;
  let csAt = (bi * params.h + hh) * params.l;
  var s = 0.0;
  for (var c = params.chunks; c > 0u; c--) {
    let at = ((bi * params.chunks + c - 1u) * params.h + hh) * pn + rest;
    let local = G[at];
    G[at] = s;
    let decay = exp(fixedValue(cs[csAt + min(c * params.q, params.l) - 1u]));
    prod[at] = decay * s * S[at];
    s = decay * s + local;
  }
}`;
