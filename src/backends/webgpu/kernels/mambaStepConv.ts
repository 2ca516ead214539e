// WGSL kernel `mambaStepConv`, the first of Backend.mambaStep's two dispatches (mambaStep.ts):
// u = SiLU(conv1d(x) + bias), advancing the conv state, then each block's share of x_proj · u.
// A workgroup of `threads` threads (mambaStepTuning.convThreads) owns a block of C channels
// (convChannels) of SQ sequences (convSeqs; ≤ b), seq0 = SQ·wg.y ..:
// - it first loads its slice of x_proj into registers (these loads wait for nothing): the block's
//   E = R + 2n rows of C channels are split into G = C / V lanes per row (V = 4 channels per
//   vec4 load when dInner % 4 == 0, else 1) and threads / G rows at a time, so a thread holds
//   ⌈E / (threads / G)⌉ loads;
// - thread t runs the conv of channel c0 + t % C of sequence seq0 + t / C from its window in the
//   state (t < SQ·C, several per thread when SQ·C > threads), writes u and the new state, and puts
//   u in workgroup memory;
// - for each of its sequences, each thread multiplies its loads with its lane's u, the products
//   of a row go to workgroup memory (rows padded to G + 1 floats: the threads that add them read
//   different banks), and thread e < E adds its row's G products (in lane order) into
//   partial[b, block, e].
// At batch 64 with SQ = 1 every sequence's workgroups read all of x_proj (0.5 MB, 31 MB per call
// through L2); SQ sequences per workgroup read it once for SQ of them, at the price of SQ rounds
// of products (two barriers each) and SQ times fewer workgroups (1536 at SQ = 1).
// Grid (K = ⌈dInner / C⌉, ⌈b / SQ⌉). Bindings: 0 xz (b, 2·dInner) · 1 convWeight (dInner, w) ·
// 2 convBias (dInner) · 3 convState (b, dInner, w−1) rw · 4 xProj (R + 2n, dInner) · 5 u (b, dInner)
// · 6 partial (b, K, R + 2n) · 7 params {hasBias, batch}; separate (the advanced state written
// elsewhere, stateDecl): 3 convState read · 7 convStateOut (b, dInner, w−1) · 8 params. dInner, w (≥ 2), n, R, SQ are
// compile-time.
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
struct Params { hasBias: u32, batch: u32 }
fn silu(v: f32) -> f32 { return v / (1.0 + exp(-v)); }`;
}

/**
 * The binding of a state that a step kernel advances: read_write, updated in place, or (separate:
 * Backend.mambaStep's statesOut) read only, the advanced state going to `<name>Out` at outBinding.
 */
export function stateDecl(
  name: string,
  type: string,
  binding: number,
  separate: boolean,
  outBinding: number,
): string {
  const state = `@group(0) @binding(${binding}) var<storage, ${separate ? 'read' : 'read_write'}> ${name}: array<${type}>;`;
  if (!separate) return state;
  return `${state}\n@group(0) @binding(${outBinding}) var<storage, read_write> ${name}Out: array<${type}>;`;
}

/**
 * WGSL: the sum of the shares partial[at + k·E] for k = first, first + every, … < count (none
 * unless live), all KP loads issued before the first add (a loop adding each load waited one L2
 * latency per share). The kernel declares `partial`, E and KP.
 */
export const addShares = /* wgsl */ `
fn addShares(at: u32, first: u32, every: u32, count: u32, live: bool) -> f32 {
  var got: array<f32, KP>;
  for (var j = 0u; j < KP; j++) {
    let k = first + j * every;
    got[j] = 0.0;
    if (live && k < count) { got[j] = partial[at + k * E]; }
  }
  var s = 0.0;
  for (var j = 0u; j < KP; j++) { s += got[j]; }
  return s;
}`;

const sources = new Map<string, string>();

export function convWgsl(
  shape: StepShape,
  channels: number,
  threads: number,
  seqs: number,
  separate: boolean,
): string {
  const key = `${Object.values(shape)}:${channels}:${threads}:${seqs}:${separate}`;
  let source = sources.get(key);
  if (source !== undefined) return source;
  const v = shape.dInner % 4 === 0 ? 4 : 1;
  const lanes = channels / v;
  const rowsInFlight = threads / lanes;
  const perThread = Math.ceil((shape.r + 2 * shape.n) / rowsInFlight);
  const out = separate ? 'convStateOut' : 'convState';
  const uRun = v === 4 ? 'vec4<f32>(us[at], us[at + 1u], us[at + 2u], us[at + 3u])' : 'us[at]';
  source = /* wgsl */ `${stepHead(shape)}
alias VX = ${v === 4 ? 'vec4<f32>' : 'f32'};
const C = ${channels}u;
const K = (DI + C - 1u) / C; // blocks
const THREADS = ${threads}u;
const V = ${v}u;
const LANES = ${lanes}u;
const ROWS = ${rowsInFlight}u; // x_proj rows in flight
const PER = ${perThread}u; // x_proj loads per thread
const SQ = ${seqs}u; // sequences per workgroup
@group(0) @binding(0) var<storage, read> xz: array<f32>;
@group(0) @binding(1) var<storage, read> convWeight: array<f32>;
@group(0) @binding(2) var<storage, read> convBias: array<f32>;
${stateDecl('convState', 'f32', 3, separate, 7)}
@group(0) @binding(4) var<storage, read> xProj: array<VX>;
@group(0) @binding(5) var<storage, read_write> u: array<f32>;
@group(0) @binding(6) var<storage, read_write> partial: array<f32>;
@group(0) @binding(${separate ? 8 : 7}) var<uniform> params: Params;

var<workgroup> us: array<f32, ${seqs * channels}>; // (sequence, channel)
var<workgroup> products: array<f32, ${perThread * rowsInFlight * (lanes + 1)}>; // (row, lane), rows padded

fn dotV(a: VX, b: VX) -> f32 { return ${v === 4 ? 'dot(a, b)' : 'a * b'}; }

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let block = wg.x;
  let seq0 = wg.y * SQ;
  let c0 = block * C;
  let lane = li % LANES;
  let c = lane * V; // the thread's first channel in the block
  var wx: array<VX, PER>;
  for (var i = 0u; i < PER; i++) {
    let e = li / LANES + i * ROWS;
    wx[i] = VX(0.0);
    if (e < E && c0 + c < DI) { wx[i] = xProj[(e * DI + c0 + c) / V]; }
  }
  for (var t = li; t < SQ * C; t += THREADS) {
    let ch = c0 + t % C;
    let bi = seq0 + t / C;
    var v = 0.0;
    if (ch < DI && bi < params.batch) {
      let s0 = (bi * DI + ch) * (W - 1u);
      var acc = 0.0;
      if (params.hasBias != 0u) { acc = convBias[ch]; }
      for (var j = 0u; j < W - 1u; j++) { acc += convWeight[ch * W + j] * convState[s0 + j]; }
      let xv = xz[bi * 2u * DI + ch];
      acc += convWeight[ch * W + W - 1u] * xv;
      for (var j = 0u; j + 2u < W; j++) { ${out}[s0 + j] = convState[s0 + j + 1u]; }
      ${out}[s0 + W - 2u] = xv;
      v = silu(acc);
      u[bi * DI + ch] = v;
    }
    us[t] = v;
  }
  for (var sq = 0u; sq < SQ; sq++) {
    workgroupBarrier(); // us is written; the previous sequence's products have been added
    let at = sq * C + c; // the lane's u of this sequence
    let uc = ${uRun};
    for (var i = 0u; i < PER; i++) { products[(li / LANES + i * ROWS) * (LANES + 1u) + lane] = dotV(wx[i], uc); }
    workgroupBarrier();
    let bi = seq0 + sq;
    for (var e = li; e < E; e += THREADS) {
      var s = 0.0;
      for (var l = 0u; l < LANES; l++) { s += products[e * (LANES + 1u) + l]; }
      if (bi < params.batch) { partial[(bi * K + block) * E + e] = s; }
    }
  }
}`;
  sources.set(key, source);
  return source;
}
