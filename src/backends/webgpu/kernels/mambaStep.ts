// Backend.mambaStep on WebGPU: Mamba's mixer for one token per sequence, everything between
// in_proj and out_proj in two dispatches instead of three (conv, x_proj, scan; four when x_proj
// splits k):
//   u = SiLU(conv1d(x) + bias) (advancing the conv state); [Δ_low, B, C] = x_proj · u;
//   Δ = softplus(dt_proj · Δ_low + dt_bias); h = exp(ΔA) h + Δ B u; y = (C·h + D u) · SiLU(z).
// x_proj needs all of u, so the work meets once in memory: each of K blocks of channels adds its
// share of x_proj into partial sums (mambaStepConv.ts), and the scan adds the K shares up
// (mambaStepScan.ts). Both kernels are latency-bound at batch 1 (a few µs of loads each), so each
// thread issues all its loads first and the loops over channels and blocks are spread over the
// workgroup. dInner, w (≥ 2), n and R are compile-time constants; other shapes take the unfused ops.
// Reference: mambaStepOps in src/backends/composedOps.ts (the model's ops), run on the CPU.

import type { Tensor } from '../../../core/tensor.ts';
import type { MambaStepArgs } from '../../backend.ts';
import { mambaStepOps } from '../../composedOps.ts';
import type { GpuTensor } from '../gpuTensor.ts';
import type { Kernel, WebGpuBackend } from '../webgpuBackend.ts';
import { convWgsl, type StepShape } from './mambaStepConv.ts';
import { scanWgsl } from './mambaStepScan.ts';
import { retuned } from './tuning.ts';

/**
 * The work decomposition (powers of two; read when a step is recorded):
 * convChannels: channels per mambaStepConv workgroup (K = ⌈dInner / convChannels⌉ blocks, the
 * partial sums the scan adds; 1536 channels give 24 workgroups per sequence at 64);
 * convThreads: its threads (≥ convChannels, ≤ 256), which split the block's x_proj rows;
 * scanChannels: channels (and threads, ≤ 256) per mambaStepScan workgroup;
 * convSeqs, scanSeqs: sequences per workgroup of each (capped at the batch, so batch 1 runs as
 * before): the weights a workgroup loads (x_proj's block, dt_proj and A) serve that many.
 * scanSeqs 2: Mamba 130m at batch 64 took 2.29 ms per greedy step against 2.35–2.40 at 1 in all
 * three rounds of the H100 sweep (gpuKernels --only=tune, 2026-11-23 19:05 UTC; 2.34 against 2.36
 * in the sweep before); the other values were no better than 1.
 * convSeqs 4: 2.256 against 2.291 ms and 2.231 against 2.268 (the median of three rounds each) in
 * the two sweeps of 20:01 and 20:17 UTC (no better in the one of 19:05).
 */
export const mambaStepTuning = {
  convChannels: 64,
  convThreads: 256,
  scanChannels: 128,
  convSeqs: 4,
  scanSeqs: 2,
};

/**
 * The two kernels of a layer's step by its dt_proj weight, then batch and whether the states are
 * written in place (b·2 + separate), under the tuning in `builtWith`.
 */
let made = new WeakMap<Tensor, Map<number, StepKernels>>();
const builtWith = { ...mambaStepTuning };

/**
 * The step's kernels, their sources found once per shape, batch and tuning: building the sources'
 * cache keys on every call cost ~1 µs of JS each, 48 times per batched decoding step.
 */
/** A step's two kernels, with the blocks of channels and the sequences per workgroup they take. */
interface StepKernels {
  conv: Kernel;
  scan: Kernel;
  blocks: number;
  convSeqs: number;
  scanSeqs: number;
}

function kernels(dtProj: Tensor, shape: StepShape, b: number, separate: boolean): StepKernels {
  const t = mambaStepTuning;
  if (retuned(builtWith, t)) made = new WeakMap();
  let layer = made.get(dtProj);
  if (layer === undefined) {
    layer = new Map();
    made.set(dtProj, layer);
  }
  const key = b * 2 + (separate ? 1 : 0);
  let k = layer.get(key);
  if (k === undefined) {
    const { convChannels, convThreads, scanChannels } = t;
    const blocks = Math.ceil(shape.dInner / convChannels);
    const [convSeqs, scanSeqs] = [Math.min(t.convSeqs, b), Math.min(t.scanSeqs, b)];
    k = {
      conv: { name: 'mambaStepConv', wgsl: convWgsl(shape, convChannels, convThreads, convSeqs, separate) },
      scan: { name: 'mambaStepScan', wgsl: scanWgsl(shape, blocks, scanChannels, scanSeqs, separate) },
      blocks,
      convSeqs,
      scanSeqs,
    };
    layer.set(key, k);
  }
  return k;
}

export function mambaStep(be: WebGpuBackend, a: MambaStepArgs): GpuTensor {
  const [b, l, twice] = a.xz.shape;
  const [dInner, r] = a.dtProj.shape;
  const [w, n] = [a.convWeight.shape[1], a.A.shape[1]];
  const xz = a.xz as GpuTensor;
  if (l !== 1 || twice !== 2 * dInner || w < 2 || !xz.contiguous) return mambaStepOps(be, a) as GpuTensor;
  const { convChannels, convThreads, scanChannels } = mambaStepTuning;
  if (convThreads < convChannels) throw new Error('mambaStepTuning: convThreads < convChannels');
  const out = a.statesOut; // the advanced states go there (the given ones are only read)
  const step = kernels(a.dtProj, { dInner, w, n, r }, b, out !== undefined);
  const { blocks, convSeqs, scanSeqs } = step;
  const xzd = be.dense(xz);
  const u = be.alloc([b, dInner]);
  const partial = be.alloc([b, blocks, r + 2 * n]);
  const y = be.alloc([b, 1, dInner]);
  const params = [a.convBias ? 1 : 0, b];
  const convBias = (a.convBias ?? a.convWeight) as GpuTensor;
  const convBuffers = [xzd, a.convWeight, convBias, a.convState, a.xProj, u, partial] as GpuTensor[];
  const scanBuffers = [u, partial, a.dtProj, a.dtBias, a.A, a.D, xzd, a.ssmState, y] as GpuTensor[];
  if (out) {
    convBuffers.push(out.conv as GpuTensor);
    scanBuffers.push(out.ssm as GpuTensor);
  }
  be.dispatch(step.conv, convBuffers, params, [blocks, Math.ceil(b / convSeqs)]);
  be.dispatch(step.scan, scanBuffers, params, [Math.ceil(dInner / scanChannels), Math.ceil(b / scanSeqs)]);
  be.release(u);
  be.release(partial);
  return y;
}
