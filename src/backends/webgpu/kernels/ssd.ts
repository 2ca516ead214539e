// WGSL kernel: Mamba-2's SSD as its recurrence, with the Δ preprocessing fused in:
//   Δ = clamp(softplus(dt + dtBias)), h = exp(ΔA) h + Δ x B_tᵀ, y = h C_t + D x.
// One thread per (batch, head, channel p) keeps its row of the state (n values, a compile-time
// constant) in registers and walks the length; B_t, C_t of the head's group are shared reads.
// This is the simple, exact form; the chunked (matmul-shaped) algorithm is the fast path to come.
// Bindings: 0 x (b, l, h, p) · 1 dt (b, l, h) · 2 dtBias (h) · 3 A (h) · 4 B (b, l, g, n) ·
// 5 C (b, l, g, n) · 6 D (h) · 7 state (b, h, p, n) read-write · 8 y (b, l, h, p) ·
// 9 params {l, h, p, g, dtMin, dtMax}. Grid: (⌈p/64⌉, h, b).
// Reference: ssdRecurrent / ssdChunked in src/backends/cpu/ssd.ts.

import type { SsdArgs } from '../../backend.ts';
import type { GpuTensor } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';

const wgsl = (n: number) => /* wgsl */ `
const N = ${n}u;
struct Params { l: u32, h: u32, p: u32, g: u32, dtMin: f32, dtMax: f32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dt: array<f32>;
@group(0) @binding(2) var<storage, read> dtBias: array<f32>;
@group(0) @binding(3) var<storage, read> A: array<f32>;
@group(0) @binding(4) var<storage, read> B: array<f32>;
@group(0) @binding(5) var<storage, read> C: array<f32>;
@group(0) @binding(6) var<storage, read> D: array<f32>;
@group(0) @binding(7) var<storage, read_write> state: array<f32>;
@group(0) @binding(8) var<storage, read_write> y: array<f32>;
@group(0) @binding(9) var<uniform> params: Params;

fn softplus(v: f32) -> f32 { return select(log(1.0 + exp(v)), v, v > 20.0); }

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let pi = id.x;
  let hh = id.y;
  let bi = id.z;
  if (pi >= params.p) { return; }
  let group = hh / (params.h / params.g);
  var s: array<f32, N>;
  let s0 = ((bi * params.h + hh) * params.p + pi) * N;
  for (var i = 0u; i < N; i++) { s[i] = state[s0 + i]; }
  for (var t = 0u; t < params.l; t++) {
    let row = bi * params.l + t;
    let delta = clamp(softplus(dt[row * params.h + hh] + dtBias[hh]), params.dtMin, params.dtMax);
    let decay = exp(delta * A[hh]);
    let at = (row * params.h + hh) * params.p + pi;
    let dx = delta * x[at];
    let bc = (row * params.g + group) * N;
    var acc = 0.0;
    for (var i = 0u; i < N; i++) {
      s[i] = decay * s[i] + dx * B[bc + i];
      acc += s[i] * C[bc + i];
    }
    y[at] = acc + D[hh] * x[at];
  }
  for (var i = 0u; i < N; i++) { state[s0 + i] = s[i]; }
}`;

export function ssd(be: WebGpuBackend, args: SsdArgs): GpuTensor {
  const [b, l] = args.x.shape;
  const [, h, p, n] = args.state.shape;
  const g = args.B.shape[2] / n;
  const y = be.alloc(args.x.shape);
  const { x, dt, dtBias, A, B, C, D, state } = args;
  const [dtMin, dtMax] = args.dtLimit;
  const params = [l, h, p, g, { f32: dtMin }, { f32: Math.min(dtMax, 3.4e38) }];
  be.dispatch({ name: 'ssd', wgsl: wgsl(n) }, [x, dt, dtBias, A, B, C, D, state, y], params, [
    Math.ceil(p / 64),
    h,
    b,
  ]);
  return y;
}
