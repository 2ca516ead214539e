// WGSL kernel: the gradient of S4D's convolution kernel, a direct correlation summed over the batch:
//   dK̄[c, k] = Σ_b Σ_{t=k}^{l−1} dy[b, t, c] u[b, t − k, c]   (dK̄[c, 0] is also dD[c]).
// One thread per (channel c fastest, lag k), a fixed order of sums (deterministic).
// Grid (⌈d/64⌉, l).
// Bindings: 0 dy (b, l, d) · 1 u (b, l, d) · 2 dK (d, l) · 3 params {b, l, d}.
// Reference: dK̄ in s4dBackward, src/ssm/s4d.ts (IFFT(Σ_b DY · conj U) there).

export const s4dBackwardKernelGradSource = /* wgsl */ `
struct Params { b: u32, l: u32, d: u32 }
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> u: array<f32>;
@group(0) @binding(2) var<storage, read_write> dK: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let c = id.x;
  let k = id.y;
  if (c >= params.d) { return; }
  var acc = 0.0;
  for (var bi = 0u; bi < params.b; bi++) {
    let row = bi * params.l;
    for (var t = k; t < params.l; t++) {
      acc += dy[(row + t) * params.d + c] * u[(row + t - k) * params.d + c];
    }
  }
  dK[c * params.l + k] = acc;
}`;
