// Backend.mambaBlockStep on WebGPU: a decoding Mamba block in two dispatches at small batches
// (b ≤ blockStepTuning.maxBatch), where the unfused ops take four (norm + in_proj, conv + x_proj's
// share, scan, out_proj): at batch 1 each dispatch costs ~10 µs of GPU time and as much of
// recording whatever its work, which bounds decoding, not the bytes of weights read.
//   mambaBlockIn (mambaBlockIn.ts): Σ of the input's partial sums + residual, RMSNorm, in_proj,
//     conv + SiLU, and each x block's share of x_proj;
//   mambaBlockOut (mambaBlockOut.ts): x_proj's shares added, dt_proj, the scan step and the gate,
//     and each channel block's share of out_proj: the block's output leaves as G partial sums
//     (G, b, 1, d), added by the next block's mambaBlockIn (the last block, `whole`, writes y and
//     runs out_proj as a projection instead: the final norm's LM head has 50k rows to feed).
// With statesOut both kernels read the states and write the advanced ones there (their `separate`
// variants). Other batches and shapes take the unfused ops (composedOps.ts), also the reference.

import type { MambaBlockStepArgs } from '../../backend.ts';
import { mambaBlockStepOps } from '../../composedOps.ts';
import type { GpuTensor } from '../gpuTensor.ts';
import type { Kernel, WebGpuBackend } from '../webgpuBackend.ts';
import { linear } from './linear.ts';
import { type InLayout, inBindings, inFits, inMemory, inWgsl } from './mambaBlockIn.ts';
import { type BlockShape, outChannels, outWgsl } from './mambaBlockOut.ts';
import { PlanCache } from './tuning.ts';

/**
 * maxBatch: the largest batch that takes the two kernels (each workgroup holds every sequence's
 * normed input; weights are read once per workgroup for all of them; at most 4);
 * inChannels: in_proj rows (channels) per mambaBlockIn workgroup: 32 gives 96 workgroups for
 * Mamba 130m and 48 x_proj shares for mambaBlockOut to add;
 * maxLoads: in_proj loads a lane issues before using them;
 * outSlices: mambaBlockOut workgroups sharing a channel group's out_proj rows when the states
 * advance out of place (each runs the group's scan; in place it is 1).
 */
export const blockStepTuning = { maxBatch: 4, inChannels: 32, maxLoads: 24, outSlices: 3 };

const STORAGE_BUFFERS = 13; // mambaBlockIn's, with the separate conv state out

/** What a block's step dispatches at one batch size, or null where it takes the composed ops. */
interface Plan {
  shape: BlockShape;
  layout: InLayout;
  m: number;
  kernels: Map<number, Kernel>; // by kernelKey
  xBlocks: number;
  groups: number;
  e: number;
}

/**
 * Plans by the layer's dt_proj weight and batch size: working them out (and finding the kernels'
 * sources) took ~5 µs of JS per block and step, on the critical path of batch-1 decoding.
 */
const plans = new PlanCache<Plan>(blockStepTuning);

function plan(be: WebGpuBackend, a: MambaBlockStepArgs, b: number): Plan | null {
  const tuning = blockStepTuning;
  const cached = plans.get(a.dtProj, b);
  if (cached !== undefined) return cached;
  const d = a.hidden.shape[3];
  const [dInner, r] = a.dtProj.shape;
  const shape: BlockShape = { d, dInner, w: a.convWeight.shape[1], n: a.A.shape[1], r };
  const m = b <= 1 ? 1 : b <= 2 ? 2 : 4;
  const cin = tuning.inChannels;
  let made: Plan | null = null;
  const layout: InLayout = {
    d,
    rows: 2 * dInner,
    convFirst: 0,
    convRows: dInner,
    w: shape.w,
    xProj: r + 2 * shape.n,
    scaled: 0,
  };
  if (b <= Math.min(tuning.maxBatch, 4) && fits(be, shape, layout, m, cin)) {
    const xBlocks = dInner / cin;
    made = {
      shape,
      layout,
      m,
      kernels: new Map(),
      xBlocks,
      groups: dInner / outChannels(shape.n),
      e: r + 2 * shape.n,
    };
  }
  return plans.set(a.dtProj, b, made);
}

/**
 * A plan's kernel: mambaBlockIn for an input of `parts` partial sums, or mambaBlockOut writing
 * out_proj's shares ('out') or y ('y'); each updating the states in place or (separate) not.
 */
function kernel(p: Plan, which: 'in' | 'out' | 'y', parts: number, separate: boolean): Kernel {
  const key = (which === 'in' ? parts * 4 : which === 'out' ? 1 : 2) * 2 + (separate ? 1 : 0);
  let made = p.kernels.get(key);
  if (made === undefined) {
    const { inChannels, maxLoads } = blockStepTuning;
    made =
      which === 'in'
        ? { name: 'mambaBlockIn', wgsl: inWgsl(p.layout, p.m, inChannels, maxLoads, parts, separate) }
        : {
            name: 'mambaBlockOut',
            wgsl: outWgsl(p.shape, p.xBlocks, which === 'out', separate, slices(which, separate)),
          };
    p.kernels.set(key, made);
  }
  return made;
}

export function mambaBlockStep(
  be: WebGpuBackend,
  a: MambaBlockStepArgs,
): { residual: GpuTensor; hidden: GpuTensor } {
  // Indexing, not destructuring: a batch-1 step records this 24 times, and the iterators and
  // spread arrays it made were half of the step's garbage.
  const shape = a.hidden.shape;
  const [parts, b, d] = [shape[0], shape[1], shape[3]];
  const p = shape[2] === 1 ? plan(be, a, b) : null;
  if (p === null) return mambaBlockStepOps(be, a) as { residual: GpuTensor; hidden: GpuTensor };
  const dInner = a.dtProj.shape[0];
  const residualOut = be.alloc([b, 1, d]);
  const uz = be.alloc([b, 2 * dInner]);
  const partial = be.alloc([b, p.xBlocks, p.e]);
  const statesOut = a.statesOut;
  const separate = statesOut !== undefined;
  be.dispatch(
    kernel(p, 'in', parts, separate),
    inBindings(be, a, residualOut, uz, [a.xProj, partial]),
    [b, a.residual ? 1 : 0, a.inProjBias ? 1 : 0, a.convBias ? 1 : 0, { f32: a.eps }],
    [2 * p.xBlocks],
  );
  const out = a.whole ? be.alloc([b, 1, dInner]) : be.alloc([p.groups, b, 1, d]);
  const outputs = [
    uz,
    partial,
    a.dtProj,
    a.dtBias,
    a.A,
    a.D,
    a.ssmState,
    a.outProj,
    a.outProjBias ?? a.outProj,
    out,
  ] as GpuTensor[];
  if (statesOut) outputs.push(statesOut.ssm as GpuTensor);
  be.dispatch(
    kernel(p, a.whole ? 'y' : 'out', parts, separate),
    outputs,
    [b, a.outProjBias ? 1 : 0],
    [p.groups, b, slices(a.whole ? 'y' : 'out', separate)],
  );
  be.release(uz);
  be.release(partial);
  if (!a.whole) return { residual: residualOut, hidden: out };
  const projected = linear(be, out, a.outProj as GpuTensor, a.outProjBias as GpuTensor | null); // (b, 1, d)
  be.release(out);
  return { residual: residualOut, hidden: be.reshape(projected, [1, b, 1, d]) as GpuTensor };
}

/** mambaBlockOut's slices of out_proj's rows: only its shares, only with the states out of place. */
function slices(which: 'in' | 'out' | 'y', separate: boolean): number {
  return which === 'out' && separate ? Math.max(1, Math.floor(blockStepTuning.outSlices)) : 1;
}

/** Whether the two kernels take this shape on this device. */
function fits(
  be: WebGpuBackend,
  { dInner, w, n, r }: BlockShape,
  layout: InLayout,
  m: number,
  cin: number,
): boolean {
  const q = n / 4; // mambaBlockOut's threads per channel
  const limits = be.limits;
  return (
    inFits(layout, cin) &&
    r % 4 === 0 &&
    n % 4 === 0 &&
    256 % q === 0 &&
    w >= 2 &&
    m * cin <= 256 &&
    dInner % outChannels(n) === 0 &&
    limits.maxStorageBuffersPerShaderStage >= STORAGE_BUFFERS &&
    inMemory(layout, m, cin) <= limits.maxComputeWorkgroupStorageSize
  );
}
