// WGSL kernel `mambaStepConv`, the first of Backend.mambaStep's two dispatches (mambaStep.ts):
// u = SiLU(conv1d(x) + bias), advancing the conv state, then each block's share of x_proj · u.
// A workgroup of `threads` threads (mambaStepTuning.convThreads) owns a block of C channels
// (convChannels) of one sequence:
// - it first loads its slice of x_proj into registers (these loads wait for nothing): the block's
//   E = R + 2n rows of C channels are split into G = C / V lanes per row (V = 4 channels per
//   vec4 load when dInner % 4 == 0, else 1) and threads / G rows at a time, so a thread holds
//   ⌈E / (threads / G)⌉ loads;
// - threads c < C run the conv of channel c0 + c from its window in the state, write u and the
//   new state, and put u in workgroup memory;
// - each thread multiplies its loads with its lane's u, the products of a row go to workgroup
//   memory (rows padded to G + 1 floats: the threads that add them read different banks), and
//   thread e < E adds its row's G products (in lane order) into partial[b, block, e].
// Grid (K = ⌈dInner / C⌉, b). Bindings: 0 xz (b, 2·dInner) · 1 convWeight (dInner, w) ·
// 2 convBias (dInner) · 3 convState (b, dInner, w−1) rw · 4 xProj (R + 2n, dInner) · 5 u (b, dInner)
// · 6 partial (b, K, R + 2n) · 7 params {hasBias}. dInner, w (≥ 2), n and R are compile-time.
// Reference: the conv1d, SiLU and x_proj of mambaStepOps in src/backends/composedOps.ts.

/** What both kernels of the step are compiled for. */
export interface StepShape {
  dInner: number;
  w: number;
  n: number;
  r: number;
}

/** WGSL constants and helpers shared by the step's kernels. */
export function stepHead({ dInner, w, n, r }: StepShape): string {
  return /* wgsl */ `
const DI = ${dInner}u;
const W = ${w}u;
const N = ${n}u;
const R = ${r}u;
const E = ${r + 2 * n}u;
struct Params { hasBias: u32 }
fn silu(v: f32) -> f32 { return v / (1.0 + exp(-v)); }`;
}

const sources = new Map<string, string>();

export function convWgsl(shape: StepShape, channels: number, threads: number): string {
  const key = `${Object.values(shape)}:${channels}:${threads}`;
  let source = sources.get(key);
  if (source !== undefined) return source;
  const v = shape.dInner % 4 === 0 ? 4 : 1;
  const lanes = channels / v;
  const rowsInFlight = threads / lanes;
  const perThread = Math.ceil((shape.r + 2 * shape.n) / rowsInFlight);
  const uRun = v === 4 ? 'vec4<f32>(us[c], us[c + 1u], us[c + 2u], us[c + 3u])' : 'us[c]';
  source = /* wgsl */ `${stepHead(shape)}
alias VX = ${v === 4 ? 'vec4<f32>' : 'f32'};
const C = ${channels}u;
const K = (DI + C - 1u) / C; // blocks
const THREADS = ${threads}u;
const V = ${v}u;
const LANES = ${lanes}u;
const ROWS = ${rowsInFlight}u; // x_proj rows in flight
const PER = ${perThread}u; // x_proj loads per thread
@group(0) @binding(0) var<storage, read> xz: array<f32>;
@group(0) @binding(1) var<storage, read> convWeight: array<f32>;
@group(0) @binding(2) var<storage, read> convBias: array<f32>;
@group(0) @binding(3) var<storage, read_write> convState: array<f32>;
@group(0) @binding(4) var<storage, read> xProj: array<VX>;
@group(0) @binding(5) var<storage, read_write> u: array<f32>;
@group(0) @binding(6) var<storage, read_write> partial: array<f32>;
@group(0) @binding(7) var<uniform> params: Params;

var<workgroup> us: array<f32, C>;
var<workgroup> products: array<f32, ${perThread * rowsInFlight * (lanes + 1)}>; // (row, lane), rows padded

fn dotV(a: VX, b: VX) -> f32 { return ${v === 4 ? 'dot(a, b)' : 'a * b'}; }

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let block = wg.x;
  let bi = wg.y;
  let c0 = block * C;
  let lane = li % LANES;
  let c = lane * V; // the thread's first channel in the block
  var wx: array<VX, PER>;
  for (var i = 0u; i < PER; i++) {
    let e = li / LANES + i * ROWS;
    wx[i] = VX(0.0);
    if (e < E && c0 + c < DI) { wx[i] = xProj[(e * DI + c0 + c) / V]; }
  }
  let ch = c0 + li;
  var v = 0.0;
  if (li < C && ch < DI) {
    let s0 = (bi * DI + ch) * (W - 1u);
    var acc = 0.0;
    if (params.hasBias != 0u) { acc = convBias[ch]; }
    for (var j = 0u; j < W - 1u; j++) { acc += convWeight[ch * W + j] * convState[s0 + j]; }
    let xv = xz[bi * 2u * DI + ch];
    acc += convWeight[ch * W + W - 1u] * xv;
    for (var j = 0u; j + 2u < W; j++) { convState[s0 + j] = convState[s0 + j + 1u]; }
    convState[s0 + W - 2u] = xv;
    v = silu(acc);
    u[bi * DI + ch] = v;
  }
  if (li < C) { us[li] = v; }
  workgroupBarrier();
  let uc = ${uRun};
  for (var i = 0u; i < PER; i++) { products[(li / LANES + i * ROWS) * (LANES + 1u) + lane] = dotV(wx[i], uc); }
  workgroupBarrier();
  for (var e = li; e < E; e += THREADS) {
    var s = 0.0;
    for (var l = 0u; l < LANES; l++) { s += products[e * (LANES + 1u) + l]; }
    partial[(bi * K + block) * E + e] = s;
  }
}`;
  sources.set(key, source);
  return source;
}
