// The three recurrent passes shared by the selective scan backward (Mamba) and the SSD backward
// (Mamba-2), in the manner of mamba_ssm's selective_scan_bwd: the expanded state (b, l, lanes, N)
// is never written; only the states entering each chunk of LC positions and the state gradients
// leaving them are (b, K, lanes, N), and each chunk's states are recomputed on chip.
//   1. local (scanBackwardChunks.ts): per (b, chunk, lane) from zero, the chunk's end state, ΣΔ
//      and the gradient its outputs send to the state entering it;
//   2. carry (same file): the true boundary states and boundary gradients, chunk after chunk;
//   3. grads (scanBackwardGrads.ts): per chunk, recompute forward, walk backward, write du (and
//      Mamba's dδ, dz) and the partial sums that the callers finish with scanBackwardReduce.ts.
// See scanBackwardHeader.ts for the lanes (Mamba: channels; SSD: head × head channel).
// Speed (H100, 2026-11-23; b 8 × l 2048, d 1536, n 16, chunks of 16): local 0.85 ms, carry 0.9
// ms, reductions 0.33 ms, grads 5.2 ms before its lane sums were padded against bank conflicts
// (not re-measured since: the machine's timings of the next run were 2-5× slower throughout).
// Still short of ≥ 5 M tokens/s; next steps: subgroup sums, B/C of a chunk in workgroup memory,
// fewer carry steps. SSD at n = 128 is far slower (N states per thread): see ssdBackward.ts.

import type { GpuTensor } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';
import { grid1d } from './grid.ts';
import { carryWgsl, localWgsl } from './scanBackwardChunks.ts';
import { gradsWgsl, reducedValues } from './scanBackwardGrads.ts';

/**
 * chunk: the chunk length LC (0: automatic, ⌊256/N⌋ within [8, 32], so that the private array of
 * recomputed states, LC·N values per thread, stays small where N is); sharedBytes: the workgroup
 * memory of the grads pass's sums over lanes. Tests and benchmarks may change them.
 */
export const scanBackwardTuning = { chunk: 0, sharedBytes: 16384 };

export interface Recurrence {
  u: GpuTensor; // (b, l, lanes)
  dt: GpuTensor; // (b, l, d) Mamba, (b, l, h) SSD: Δ before bias and softplus
  bias: GpuTensor; // (d) or (h)
  A: GpuTensor; // (d, n) or (h)
  B: GpuTensor; // (b, l, g, n)
  C: GpuTensor; // (b, l, g, n)
  D: GpuTensor; // (d) or (h)
  z: GpuTensor | null; // (b, l, d) Mamba's gate; null for SSD
  dy: GpuTensor; // (b, l, lanes)
  state: GpuTensor; // (b, lanes, n) initial state, read only
  dims: { b: number; l: number; H: number; P: number; G: number; n: number };
  dtLimit: readonly [number, number]; // SSD's clamp of Δ (Mamba: [0, ∞])
}

export interface RecurrenceGrads {
  du: GpuTensor; // (b, l, lanes)
  dDelta: GpuTensor | null; // (b, l, d) Mamba's dδ (before bias); null for SSD
  dz: GpuTensor | null; // (b, l, d) Mamba; null for SSD
  part: GpuTensor; // (b, l, H, PB, R) per lane block: dB (N), dC (N), SSD's dδ (1)
  dAD: GpuTensor; // (b·K, lanes, N + 1) Mamba, (b·K, lanes, 2) SSD: dA, then dD
  chunks: number; // K
  blocks: number; // PB
  values: number; // R
}

interface Plan {
  lc: number; // chunk length LC
  chunks: number; // K
  values: number; // R
  w: number; // lanes per workgroup of the grads pass
  steps: number; // positions per reduction in it
  blocks: number; // PB
}

function plan(be: WebGpuBackend, dims: Recurrence['dims'], ssd: boolean): Plan {
  const { l, P, n } = dims;
  const lc = scanBackwardTuning.chunk || Math.max(8, Math.min(32, Math.floor(256 / n)));
  const values = reducedValues(n, ssd);
  // W lanes per workgroup and T positions per reduction within the workgroup memory budget.
  const budget = Math.min(scanBackwardTuning.sharedBytes, be.limits.maxComputeWorkgroupStorageSize);
  let w = 64;
  while (w > 1 && (w + 1) * values * 4 > budget) w /= 2;
  const steps = Math.max(1, Math.min(lc, Math.floor(budget / ((w + 1) * values * 4))));
  return { lc, chunks: Math.ceil(l / lc), values, w, steps, blocks: Math.ceil(P / w) };
}

/**
 * Bytes per batch row of the largest buffer the passes make (the boundary states (K, lanes, n)
 * or the per-block partial sums (l, H, PB, R)): callers split the batch so that it fits a binding.
 */
export function bytesPerBatchRow(be: WebGpuBackend, dims: Recurrence['dims'], ssd: boolean): number {
  const { chunks, values, blocks } = plan(be, dims, ssd);
  return 4 * Math.max(chunks * dims.H * dims.P * dims.n, dims.l * dims.H * blocks * values);
}

export function recurrenceBackward(be: WebGpuBackend, r: Recurrence): RecurrenceGrads {
  const { b, l, H, P, G, n } = r.dims;
  const ssd = r.z === null;
  const lanes = H * P;
  const { lc, chunks, values, w, steps, blocks } = plan(be, r.dims, ssd);
  const limits = [{ f32: r.dtLimit[0] }, { f32: Math.min(r.dtLimit[1], 3.4e38) }];
  const base = [l, H, P, G, chunks, blocks, ...limits];
  const inputs = [r.u, r.dt, r.bias, r.A, r.B, r.C, r.D, r.z ?? r.dy, r.dy];
  const S = be.alloc([b, chunks, lanes, n]);
  const Gr = be.alloc([b, chunks, lanes, n]);
  const sumDt = be.alloc([b, chunks, lanes]);
  be.dispatch(
    { name: 'scanBackwardLocal', wgsl: localWgsl(n, ssd, lc) },
    [...inputs, S, Gr, sumDt],
    [...base, 0, 0],
    [Math.ceil(lanes / 64), chunks, b],
  );
  const total = b * lanes * n;
  const g1 = grid1d(be, total, 256);
  be.dispatch(
    { name: 'scanBackwardCarry', wgsl: carryWgsl(n, ssd) },
    [...inputs, S, Gr, sumDt, r.state],
    [...base, total, g1.stride],
    g1.workgroups,
  );
  const du = be.alloc([b, l, lanes]);
  const dDelta = ssd ? null : be.alloc([b, l, lanes]);
  const dz = ssd ? null : be.alloc([b, l, lanes]);
  const part = be.alloc([b, l, H, blocks, values]);
  const dAD = be.alloc([b * chunks, lanes, ssd ? 2 : n + 1]);
  // SSD writes no dδ or dz: two distinct unwritten buffers (writable bindings may not alias).
  const unused = ssd ? [be.alloc([1]), be.alloc([1])] : [];
  be.dispatch(
    { name: 'scanBackwardGrads', wgsl: gradsWgsl(n, ssd, lc, w, steps) },
    [...inputs, S, Gr, du, dDelta ?? unused[0], dz ?? unused[1], part, dAD],
    [...base, 0, 0],
    [blocks, H, b * chunks],
  );
  for (const t of [S, Gr, sumDt, ...unused]) be.release(t);
  return { du, dDelta, dz, part, dAD, chunks, blocks, values };
}
