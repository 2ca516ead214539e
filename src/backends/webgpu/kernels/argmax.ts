// WGSL kernel: argmax of each row, the first index on ties: x (t, c) f32 → ids (t) i32, so that a
// greedy decoding step reads back t ids instead of t·c logits.
// Thread mapping: one workgroup of T threads per row (grid.ts rowGrid: row = wg.x + wg.y ·
// rowStride; T = argmaxTuning.threads, fewer for short rows, capped by the device); thread i
// walks elements i, i + T, … (vec4 units when c % 4 == 0, V = 4; scalars otherwise) in runs of U
// loads issued together before they are compared (a loop that compared each load before the next
// issued them one DRAM latency apart: 49 µs for the 50,280 logits of one row on the H100),
// keeping the first largest it sees; a tree reduction in workgroup memory then keeps the larger
// value, the lower index on ties. A thread that saw nothing holds index NONE, which every real
// candidate beats.
// Bindings: 0 x (t, c) · 1 ids (t) i32 · 2 params {c, rows, rowStride}.
// Reference: CpuBackend.argmax (and argmax in src/generate/sampling.ts).

import { numel } from '../../../core/tensor.ts';
import type { GpuTensor } from '../gpuTensor.ts';
import type { Kernel, WebGpuBackend } from '../webgpuBackend.ts';
import { rowGrid } from './grid.ts';

/** threads: per row (a power of two; the device's limit caps it); unroll: loads per run (U). */
export const argmaxTuning = { threads: 1024, unroll: 4 };

const kernels = new Map<string, Kernel>();

function wgsl(vec: 1 | 4, threads: number, unroll: number): string {
  return /* wgsl */ `
alias V = ${vec === 4 ? 'vec4<f32>' : 'f32'};
const VEC = ${vec}u;
const T = ${threads}u;
const U = ${unroll}u;
const NONE = 0xffffffffu;
struct Params { c: u32, rows: u32, rowStride: u32 }
@group(0) @binding(0) var<storage, read> x: array<V>;
@group(0) @binding(1) var<storage, read_write> ids: array<i32>;
@group(0) @binding(2) var<uniform> params: Params;

var<workgroup> values: array<f32, T>;
var<workgroup> indices: array<u32, T>;

fn comp(v: V, k: u32) -> f32 { ${vec === 4 ? 'return v[k];' : 'return v;'} }

// Whether candidate (vb, ib) beats (va, ia): larger, or equal at a lower index.
fn beats(vb: f32, ib: u32, va: f32, ia: u32) -> bool {
  return ib != NONE && (ia == NONE || vb > va || (vb == va && ib < ia));
}

@compute @workgroup_size(T)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  let row = wg.x + wg.y * params.rowStride;
  if (row >= params.rows) { return; }
  let cv = params.c / VEC;
  let base = row * cv;
  var best = 0.0;
  var at = NONE;
  for (var j0 = lane; j0 < cv; j0 += T * U) {
    var run: array<V, U>;
    for (var u = 0u; u < U; u++) {
      let j = j0 + u * T;
      run[u] = V(0.0);
      if (j < cv) { run[u] = x[base + j]; }
    }
    for (var u = 0u; u < U; u++) {
      let j = j0 + u * T;
      for (var k = 0u; k < VEC; k++) {
        let e = comp(run[u], k);
        if (j < cv && (at == NONE || e > best)) { best = e; at = j * VEC + k; }
      }
    }
  }
  values[lane] = best;
  indices[lane] = at;
  workgroupBarrier();
  for (var step = T / 2u; step > 0u; step = step / 2u) {
    if (lane < step && beats(values[lane + step], indices[lane + step], values[lane], indices[lane])) {
      values[lane] = values[lane + step];
      indices[lane] = indices[lane + step];
    }
    workgroupBarrier();
  }
  if (lane == 0u) { ids[row] = i32(indices[0]); }
}`;
}

export function argmax(be: WebGpuBackend, x: GpuTensor): GpuTensor {
  const c = x.shape[x.shape.length - 1];
  const t = numel(x.shape) / c;
  const ids = be.alloc(x.shape.slice(0, -1), 'i32');
  const vec = c % 4 === 0 ? 4 : 1;
  const grid = rowGrid(be, t);
  // Enough threads for one run of loads each (at least 32), within the tuning and the device.
  const runs = Math.ceil(c / vec / argmaxTuning.unroll);
  const enough = 2 ** Math.ceil(Math.log2(Math.max(32, runs)));
  const threads = Math.min(argmaxTuning.threads, enough, be.limits.maxComputeInvocationsPerWorkgroup);
  const key = `${vec}:${threads}:${argmaxTuning.unroll}`;
  let kernel = kernels.get(key);
  if (kernel === undefined) {
    kernel = { name: `argmax${vec}`, wgsl: wgsl(vec, threads, argmaxTuning.unroll) };
    kernels.set(key, kernel);
  }
  be.dispatch(kernel, [x, ids], [c, t, grid.stride], grid.workgroups);
  return ids;
}
