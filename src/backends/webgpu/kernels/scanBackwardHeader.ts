// WGSL shared by the backward kernels of the selective scan (Mamba) and of SSD (Mamba-2): the
// uniform params, the input bindings and the per-position helpers. Both are one recurrence per
// "lane" holding N state values (a compile-time constant):
//   Mamba: lane = channel ch (H = 1 head of P = d lanes, G = 1 group), A per (ch, i), Δ per lane,
//          y = (C·h + D u)·SiLU(z) (GATE);
//   SSD:   lane = (head hh, channel pi) (H heads of P lanes, G groups), A and Δ per head, Δ
//          clamped to [dtMin, dtMax], y = C·h + D x (no gate).
//   Δ = softplus(dt + bias); h_t = exp(Δ A) h_{t−1} + Δ u_t B_t; lanes = H·P.
// Bindings 0..8 of every pass that reads inputs: 0 u (b, l, lanes) · 1 dt (b, l, d or h) ·
// 2 bias (d or h) · 3 A (d, n) or (h) · 4 B (b, l, g, n) · 5 C (b, l, g, n) · 6 D (d or h) ·
// 7 z (b, l, d) (SSD: any buffer, unread) · 8 dy (b, l, lanes); params {l, H, P, G, chunks, PB,
// dtMin, dtMax, total, stride} (PB: lane blocks of W per head, for the grads pass; total and
// stride: the thread count and fold of a 1-D grid, for the carry pass).

import { softplusWgsl } from './softplus.ts';

export const paramsWgsl = /* wgsl */ `
struct Params { l: u32, H: u32, P: u32, G: u32, chunks: u32, PB: u32, dtMin: f32, dtMax: f32,
  total: u32, stride: u32 }`;

/** Constants, input bindings 0..8 and helpers for an N-state recurrence (ssd: Mamba-2's form). */
export function inputsWgsl(n: number, ssd: boolean): string {
  return /* wgsl */ `${paramsWgsl}
const N = ${n}u;
const SSD = ${ssd};
@group(0) @binding(0) var<storage, read> u: array<f32>;
@group(0) @binding(1) var<storage, read> dt: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> A: array<f32>;
@group(0) @binding(4) var<storage, read> B: array<f32>;
@group(0) @binding(5) var<storage, read> C: array<f32>;
@group(0) @binding(6) var<storage, read> D: array<f32>;
@group(0) @binding(7) var<storage, read> z: array<f32>;
@group(0) @binding(8) var<storage, read> dy: array<f32>;

${softplusWgsl}
fn sigmoid(v: f32) -> f32 { return 1.0 / (1.0 + exp(-v)); }
// Where Δ of (row, lane) and its parameters live: per channel (Mamba) or per head (SSD).
fn paramIndex(lane: u32) -> u32 { return select(lane, lane / params.P, SSD); }
fn aAt(lane: u32, i: u32) -> f32 {
  if (SSD) { return A[lane / params.P]; }
  return A[lane * N + i];
}
// exp(Δ A_i): SSD's A is one scalar per head, so its decay is computed once per position
// (headDecay) and shared by the N states.
fn headDecay(dl: f32, a0: f32) -> f32 { if (SSD) { return exp(dl * a0); } return 0.0; }
fn decayAt(perHead: f32, dl: f32, ai: f32) -> f32 { if (SSD) { return perHead; } return exp(dl * ai); }
// Δ, and dΔ/d(dt): softplus' (1 above 20), times 0 where SSD's clamp is active.
fn deltaAt(row: u32, lane: u32) -> vec2<f32> {
  let k = paramIndex(lane);
  let v = dt[row * select(params.P, params.H, SSD) + k] + bias[k];
  let sp = softplus(v);
  let slope = select(sigmoid(v), 1.0, v > 20.0);
  if (SSD) {
    let inside = sp >= params.dtMin && sp <= params.dtMax;
    return vec2<f32>(clamp(sp, params.dtMin, params.dtMax), select(0.0, slope, inside));
  }
  return vec2<f32>(sp, slope);
}
// Row (b, l, group) of B and C for a lane.
fn bcAt(row: u32, lane: u32) -> u32 { return (row * params.G + (lane / params.P) / (params.H / params.G)) * N; }
// dy_t · SiLU(z_t) (Mamba) or dy_t (SSD): the gradient of C·h + D u.
fn doutAt(row: u32, lane: u32) -> f32 {
  let at = row * params.H * params.P + lane;
  if (SSD) { return dy[at]; }
  let g = z[at];
  return dy[at] * g * sigmoid(g);
}`;
}
