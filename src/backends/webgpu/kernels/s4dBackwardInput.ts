// WGSL kernel: du of the S4D backward as a direct causal correlation (the transpose of y = K̄ * u):
//   du[b, t, c] = D_c dy[b, t, c] + Σ_{k=0}^{l−1−t} dy[b, t + k, c] K̄[c, k].
// One thread per output (channel c fastest, position t, batch b). Grid (⌈d/64⌉, l, b).
// Bindings: 0 dy (b, l, d) · 1 K (d, l) · 2 D (d) · 3 du (b, l, d) · 4 params {b, l, d}.
// Reference: du in s4dBackward, src/ssm/s4d.ts (IFFT(DY · conj K̄) there).

export const s4dBackwardInputSource = /* wgsl */ `
struct Params { b: u32, l: u32, d: u32 }
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> K: array<f32>;
@group(0) @binding(2) var<storage, read> D: array<f32>;
@group(0) @binding(3) var<storage, read_write> du: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let c = id.x;
  let t = id.y;
  let bi = id.z;
  if (c >= params.d) { return; }
  let row = bi * params.l;
  var acc = D[c] * dy[(row + t) * params.d + c];
  for (var k = 0u; t + k < params.l; k++) {
    acc += dy[(row + t + k) * params.d + c] * K[c * params.l + k];
  }
  du[(row + t) * params.d + c] = acc;
}`;
