// WGSL kernel `scanBackwardGrads`: the last pass of the scan and SSD backward (scanBackwardPasses.ts).
// Workgroup (lane block, head, b·K + chunk): W lanes of one head (Mamba: W channels), one thread
// per lane with its N states in registers. Each thread recomputes its chunk's states forward from
// S_c (the state entering the chunk), keeping them in a private LC × N array (the only copy of the
// expanded state: never in device memory), then walks the chunk backward from G_c (the gradient
// reaching the chunk's end state from later chunks):
//   g_t = a_{t+1} g_{t+1} + dout_t C_t  with a_t = exp(Δ_t A), dout_t = dy_t·SiLU(z_t) (SSD: dy_t)
//   du_t = Σ_i g_t Δ_t B_t + dout_t D
//   dΔ_t = Σ_i g_t (B_t u_t + A a_t h_{t−1}),  dA += g_t Δ_t a_t h_{t−1},  dD += dout_t u_t
//   dB_t = Σ_lanes g_t Δ_t u_t,  dC_t = Σ_lanes dout_t h_t
// Mamba writes du, dδ = dΔ·softplus' and dz = dy·(C·h + D u)·SiLU'(z) per (position, channel).
// Sums over lanes (dB, dC; SSD also dΔ over the head's channels, times softplus' and the clamp
// mask) go through workgroup memory, T positions at a time (T·R·(W + 1), R = 2N (+1); after a
// barrier each thread sums whole rows of W): R values per position and lane block go to `part`;
// per-chunk sums of dA and dD per lane go to `dAD`. The reduction kernel (scanBackwardReduce.ts)
// finishes every sum in a fixed order: deterministic.
// Bindings: 0..8 the inputs (scanBackwardHeader.ts) · 9 S (b, K, lanes, N) · 10 G (b, K, lanes, N)
// · 11 du (b, l, lanes) · 12 dδ (b, l, d) · 13 dz (b, l, d) (SSD: any buffers, unwritten) ·
// 14 part (b, l, H, PB, R) · 15 dAD (b·K, lanes, N + 1) (SSD: (b·K, lanes, 2)): dA then dD ·
// 16 params (16 storage buffers: the adapter must allow that many per stage).
// Reference: the CPU twins src/backends/cpu/selectiveScanBackward.ts and ssdBackward.ts.

import { inputsWgsl } from './scanBackwardHeader.ts';

/** Values per position and lane block that pass 3 reduces: dB, dC (N each), SSD's dΔ. */
export const reducedValues = (n: number, ssd: boolean) => 2 * n + (ssd ? 1 : 0);

export function gradsWgsl(n: number, ssd: boolean, lc: number, w: number, steps: number): string {
  const r = reducedValues(n, ssd);
  return /* wgsl */ `${inputsWgsl(n, ssd)}
@group(0) @binding(9) var<storage, read> S: array<f32>;
@group(0) @binding(10) var<storage, read> G: array<f32>;
@group(0) @binding(11) var<storage, read_write> du: array<f32>;
@group(0) @binding(12) var<storage, read_write> dDelta: array<f32>;
@group(0) @binding(13) var<storage, read_write> dz: array<f32>;
@group(0) @binding(14) var<storage, read_write> part: array<f32>;
@group(0) @binding(15) var<storage, read_write> dAD: array<f32>;
@group(0) @binding(16) var<uniform> params: Params;
const LC = ${lc}u;
const W = ${w}u;
const R = ${r}u;
const T = ${steps}u;
const W1 = ${w + 1}u; // a row of W lanes, padded: the row sums read without bank conflicts
var<workgroup> red: array<f32, ${steps * r * (w + 1)}>; // (T, R, W + 1)

@compute @workgroup_size(${w})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let pb = wid.x;
  let hh = wid.y;
  let bk = wid.z;
  let bi = bk / params.chunks;
  let c = bk % params.chunks;
  let lanes = params.H * params.P;
  let valid = pb * W + lid < params.P;
  let lane = hh * params.P + min(pb * W + lid, params.P - 1u);
  let t0 = c * LC;
  let t1 = min(t0 + LC, params.l);
  let s0 = (bk * lanes + lane) * N;
  var a: array<f32, N>;
  var h0: array<f32, N>;
  var h: array<f32, N>;
  var g: array<f32, N>;
  var dA: array<f32, N>;
  for (var i = 0u; i < N; i++) {
    a[i] = aAt(lane, i);
    h0[i] = S[s0 + i];
    h[i] = h0[i];
    g[i] = G[s0 + i];
  }
  var hist: array<f32, ${lc * n}>; // h_t of the chunk, (LC, N)
  for (var t = t0; t < t1; t++) {
    let row = bi * params.l + t;
    let dl = deltaAt(row, lane).x;
    let dx = dl * u[row * lanes + lane];
    let bc = bcAt(row, lane);
    let e0 = headDecay(dl, a[0]);
    for (var i = 0u; i < N; i++) {
      h[i] = decayAt(e0, dl, a[i]) * h[i] + dx * B[bc + i];
      hist[(t - t0) * N + i] = h[i];
    }
  }
  let skip = D[paramIndex(lane)];
  var dD = 0.0;
  var t = t1;
  while (t > t0) { // blocks of up to T positions, last first
    let steps = min(T, t - t0);
    for (var j = 0u; j < steps; j++) {
      t -= 1u;
      let k = t - t0;
      let row = bi * params.l + t;
      let at = row * lanes + lane;
      let dd = deltaAt(row, lane);
      let dl = dd.x;
      let x = u[at];
      let bc = bcAt(row, lane);
      let dout = doutAt(row, lane);
      var dx = dout * skip;
      var ddl = 0.0;
      var cy = 0.0;
      let slot = j * R * W1 + lid;
      let e0 = headDecay(dl, a[0]);
      for (var i = 0u; i < N; i++) {
        let ht = h[i]; // h_t: the previous step's h_{t−1}, or the chunk's last state
        var hp = h0[i];
        if (k > 0u) { hp = hist[(k - 1u) * N + i]; }
        h[i] = hp;
        let ci = C[bc + i];
        let bv = B[bc + i];
        let gi = g[i] + dout * ci;
        let e = decayAt(e0, dl, a[i]);
        cy += ci * ht;
        dx += gi * dl * bv;
        ddl += gi * (bv * x + a[i] * e * hp);
        dA[i] += gi * dl * e * hp;
        g[i] = e * gi;
        red[slot + i * W1] = select(0.0, gi * dl * x, valid);
        red[slot + (N + i) * W1] = select(0.0, dout * ht, valid);
      }
      dD += dout * x;
      if (valid) {
        du[at] = dx;
        if (!SSD) {
          let zz = z[at];
          let sg = sigmoid(zz);
          dz[at] = dy[at] * (cy + skip * x) * sg * (1.0 + zz * (1.0 - sg));
          dDelta[at] = ddl * dd.y;
        }
      }
      if (SSD) { red[slot + 2u * N * W1] = select(0.0, ddl * dd.y, valid); }
    }
    // Position t + steps − 1 − j of the block is slot j: each thread sums whole rows of W.
    workgroupBarrier();
    for (var q = lid; q < steps * R; q += W) {
      let j = q / R;
      let row = bi * params.l + t + steps - 1u - j;
      var s = 0.0;
      for (var k = 0u; k < W; k++) { s += red[q * W1 + k]; }
      part[((row * params.H + hh) * params.PB + pb) * R + q % R] = s;
    }
    workgroupBarrier();
  }
  if (valid) {
    if (SSD) {
      var s = 0.0;
      for (var i = 0u; i < N; i++) { s += dA[i]; }
      dAD[(bk * lanes + lane) * 2u] = s;
      dAD[(bk * lanes + lane) * 2u + 1u] = dD;
    } else {
      let at = (bk * lanes + lane) * (N + 1u);
      for (var i = 0u; i < N; i++) { dAD[at + i] = dA[i]; }
      dAD[at + N] = dD;
    }
  }
}`;
}
