// WGSL kernels: backward of the embedding gather, dWeight[v, j] += Σ_{t: ids[t] = v} dy[t, j],
// deterministic without float atomics (WGSL has none): the positions are grouped by id with a
// stable counting sort made of integer atomics, then one thread per (first position of an id,
// column) sums that id's rows of dy in increasing t. Five passes (`counts` zeroed before):
// - count:   one thread per position: atomicAdd(counts[ids[t]], 1).
// - scan:    one workgroup of 256 threads, each a contiguous run of ids: exclusive prefix sums,
//            start[v] = Σ_{u<v} counts[u]; counts[v] becomes the cursor start[v].
// - scatter: one thread per position: order[atomicAdd(cursor[ids[t]], 1)] = t (the order inside
//            an id's run depends on timing; afterwards cursor[v] is the run's end).
// - rank:    one thread per slot of `order`: its position goes to slot start[v] + (the number of
//            positions of the run below it), which sorts every run by t.
// - gather:  one thread per (slot, column j), idle unless the slot starts its run: sums dy over
//            the run's positions in order and adds the sum into dWeight[v, j].
// Bindings: 0 ids (t) i32 · 1 counts / cursor (vocab) u32 · 2 start (vocab) u32 · 3 order (t) u32 ·
// 4 sorted (t) u32 · 5 dy (t, d), or the buffer it is a column view of (rows dyStride apart from
// dyOffset) · 6 dWeight (vocab, d) · 7 params {t, vocab, d, stride, dyOffset, dyStride, perThread}.
// Not every pass uses every binding. Grids: 1-D (grid.ts) over t (count, scatter, rank) or t·d
// (gather); (1) for the scan. Reference: CpuTraining.embeddingBackward. Ids are not checked here.

import { numel } from '../../../core/tensor.ts';
import { type GpuTensor, viewOf } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';
import { elementwise } from './elementwise.ts';
import { grid1d } from './grid.ts';

const head = (countsType: string) => /* wgsl */ `
struct Params { t: u32, vocab: u32, d: u32, stride: u32, dyOffset: u32, dyStride: u32, perThread: u32 }
@group(0) @binding(0) var<storage, read> ids: array<i32>;
@group(0) @binding(1) var<storage, read_write> counts: array<${countsType}>;
@group(0) @binding(2) var<storage, read_write> start: array<u32>;
@group(0) @binding(3) var<storage, read_write> order: array<u32>;
@group(0) @binding(4) var<storage, read_write> sorted: array<u32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> dWeight: array<f32>;
@group(0) @binding(7) var<uniform> params: Params;`;

const countWgsl = /* wgsl */ `${head('atomic<u32>')}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x + id.y * params.stride;
  if (i >= params.t) { return; }
  atomicAdd(&counts[u32(ids[i])], 1u);
}`;

const scanWgsl = /* wgsl */ `${head('u32')}
var<workgroup> sums: array<u32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lane: u32) {
  let v0 = lane * params.perThread;
  let v1 = min(params.vocab, v0 + params.perThread);
  var total = 0u;
  for (var v = v0; v < v1; v++) { total += counts[v]; }
  sums[lane] = total;
  workgroupBarrier();
  for (var step = 1u; step < 256u; step *= 2u) { // inclusive Hillis–Steele scan of the run totals
    var add = 0u;
    if (lane >= step) { add = sums[lane - step]; }
    workgroupBarrier();
    sums[lane] += add;
    workgroupBarrier();
  }
  var at = sums[lane] - total;
  for (var v = v0; v < v1; v++) {
    let n = counts[v];
    start[v] = at;
    counts[v] = at;
    at += n;
  }
}`;

const scatterWgsl = /* wgsl */ `${head('atomic<u32>')}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x + id.y * params.stride;
  if (i >= params.t) { return; }
  order[atomicAdd(&counts[u32(ids[i])], 1u)] = i;
}`;

const rankWgsl = /* wgsl */ `${head('u32')}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x + id.y * params.stride;
  if (i >= params.t) { return; }
  let pos = order[i];
  let v = u32(ids[pos]);
  let begin = start[v];
  var rank = 0u;
  for (var e = begin; e < counts[v]; e++) { rank += select(0u, 1u, order[e] < pos); }
  sorted[begin + rank] = pos;
}`;

const gatherWgsl = /* wgsl */ `${head('u32')}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x + id.y * params.stride;
  if (i >= params.t * params.d) { return; }
  let slot = i / params.d;
  let j = i % params.d;
  let v = u32(ids[sorted[slot]]);
  if (start[v] != slot) { return; }
  var acc = 0.0;
  for (var e = slot; e < counts[v]; e++) { acc += dy[params.dyOffset + sorted[e] * params.dyStride + j]; }
  dWeight[v * params.d + j] += acc;
}`;

/** dWeight (vocab, d) += the rows of dy (t, d) at ids (t); ids and dWeight dense. */
export function embeddingBackward(
  be: WebGpuBackend,
  ids: GpuTensor,
  dy: GpuTensor,
  dWeight: GpuTensor,
): void {
  const [vocab, d] = dWeight.shape;
  const t = numel(ids.shape);
  be.tidy(() => {
    const counts = be.alloc([vocab], 'i32'); // (vocab) u32
    const start = be.alloc([vocab], 'i32'); // (vocab) u32
    const order = be.alloc([t], 'i32'); // (t) u32
    const sorted = be.alloc([t], 'i32'); // (t) u32
    const view = viewOf(dy);
    const { workgroups, stride } = grid1d(be, t, 256);
    const all = grid1d(be, t * d, 256);
    const perThread = Math.ceil(vocab / 256);
    const buffers = [ids, counts, start, order, sorted, view.base, dWeight];
    const params = (s: number) => [t, vocab, d, s, view.offset, view.stride, perThread];
    elementwise(be, 'zero', counts, null);
    be.dispatch({ name: 'embeddingCount', wgsl: countWgsl }, buffers, params(stride), workgroups);
    be.dispatch({ name: 'embeddingScan', wgsl: scanWgsl }, buffers, params(stride), [1]);
    be.dispatch({ name: 'embeddingScatter', wgsl: scatterWgsl }, buffers, params(stride), workgroups);
    be.dispatch({ name: 'embeddingRank', wgsl: rankWgsl }, buffers, params(stride), workgroups);
    be.dispatch({ name: 'embeddingGather', wgsl: gatherWgsl }, buffers, params(all.stride), all.workgroups);
  });
}
