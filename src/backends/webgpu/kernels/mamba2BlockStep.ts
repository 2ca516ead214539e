// Backend.mamba2BlockStep on WebGPU: a decoding Mamba-2 block in two dispatches at small batches
// (b ≤ blockStepTuning.maxBatch, one group of B and C, no out_proj bias), where the mixer's ops
// take five (norm + in_proj, conv, the SSD step, the gated norm, out_proj):
//   mambaBlockIn (mambaBlockIn.ts): Σ of the input's partial sums (scaled by the previous block's
//     gated norm) + residual, RMSNorm, in_proj, and the conv + SiLU of its xBC rows;
//   mamba2BlockOut (mamba2BlockOut.ts): the SSD step per head, the gate, and each head's share of
//     out_proj with the squares of its gated norm: the block's output leaves as H partial sums
//     (H, b, 1, d) and H squares (H, b), whose scale the next block's mambaBlockIn applies (the
//     last block, `whole`, writes y, then the gated norm and out_proj run as ops).
// With statesOut both kernels read the states and write the advanced ones there. Elsewhere this
// returns null and Mamba2Mixer.blockStep runs the ops (also the reference).

import type { Mamba2BlockStepArgs } from '../../backend.ts';
import type { GpuTensor } from '../gpuTensor.ts';
import type { Kernel, WebGpuBackend } from '../webgpuBackend.ts';
import { linear } from './linear.ts';
import { type Block2Shape, out2Fits, out2Wgsl } from './mamba2BlockOut.ts';
import { type InLayout, inBindings, inFits, inMemory, inWgsl } from './mambaBlockIn.ts';
import { blockStepTuning } from './mambaBlockStep.ts';
import { PlanCache } from './tuning.ts';

const STORAGE_BUFFERS = 12; // mambaBlockIn's, scaled, with the separate conv state out

interface Plan {
  shape: Block2Shape;
  layout: InLayout;
  m: number;
  kernels: Map<number, Kernel>;
}

/** Plans by the layer's out_proj weight and batch size. */
const plans = new PlanCache<Plan>(blockStepTuning);

function plan(be: WebGpuBackend, a: Mamba2BlockStepArgs, b: number, parts: number): Plan | null {
  const tuning = blockStepTuning;
  const cached = plans.get(a.outProj, b);
  if (cached !== undefined) return cached;
  const [d, dInner] = a.outProj.shape;
  const [, heads, p, n] = a.ssmState.shape;
  const [convDim, w] = a.convWeight.shape;
  const rows = a.inProj.shape[0];
  const shape: Block2Shape = { d, dInner, heads, p, n, rows, normBeforeGate: a.normBeforeGate };
  const layout: InLayout = { d, rows, convFirst: dInner, convRows: convDim, w, xProj: 0, scaled: dInner };
  const m = b <= 1 ? 1 : b <= 2 ? 2 : 4;
  const cin = tuning.inChannels;
  const limits = be.limits;
  const fits =
    b <= Math.min(tuning.maxBatch, 4) &&
    parts <= 64 &&
    a.groups === 1 &&
    a.outProjBias === null &&
    convDim === dInner + 2 * n &&
    rows === dInner + convDim + heads &&
    heads * p === dInner &&
    w >= 2 &&
    m * cin <= 256 &&
    inFits(layout, cin) &&
    out2Fits(shape) &&
    limits.maxStorageBuffersPerShaderStage >= STORAGE_BUFFERS &&
    inMemory(layout, m, cin) <= limits.maxComputeWorkgroupStorageSize;
  return plans.set(a.outProj, b, fits ? { shape, layout, m, kernels: new Map() } : null);
}

/** mamba2BlockOut's slices of out_proj's rows: only its shares, only with the states out of place. */
function slices(whole: boolean, separate: boolean): number {
  return !whole && separate ? Math.max(1, Math.floor(blockStepTuning.outSlices)) : 1;
}

/**
 * A plan's kernel: mambaBlockIn for an input of `parts` partial sums (`scaled` by squares, or plain:
 * the embedding), or mamba2BlockOut writing out_proj's shares ('out') or y ('y').
 */
function kernel(
  p: Plan,
  which: 'in' | 'out' | 'y',
  parts: number,
  separate: boolean,
  scaled: boolean,
): Kernel {
  const key =
    (which === 'in' ? parts * 4 + (scaled ? 3 : 0) : which === 'out' ? 1 : 2) * 2 + (separate ? 1 : 0);
  let made = p.kernels.get(key);
  if (made === undefined) {
    const { inChannels, maxLoads } = blockStepTuning;
    const whole = which === 'y';
    const layout = scaled ? p.layout : { ...p.layout, scaled: 0 };
    made =
      which === 'in'
        ? { name: 'mambaBlockIn', wgsl: inWgsl(layout, p.m, inChannels, maxLoads, parts, separate) }
        : { name: 'mamba2BlockOut', wgsl: out2Wgsl(p.shape, !whole, separate, slices(whole, separate)) };
    p.kernels.set(key, made);
  }
  return made;
}

export function mamba2BlockStep(
  be: WebGpuBackend,
  a: Mamba2BlockStepArgs,
): { residual: GpuTensor; hidden: GpuTensor; squares: GpuTensor | null } | null {
  const shape = a.hidden.shape;
  const [parts, b, d] = [shape[0], shape[1], shape[3]];
  const p = shape[2] === 1 ? plan(be, a, b, parts) : null;
  if (p === null) return null;
  const { dInner, heads, rows } = p.shape;
  const squares = a.squares && be.dense(a.squares as GpuTensor);
  const residualOut = be.alloc([b, 1, d]);
  const zxbcdt = be.alloc([b, rows]);
  const statesOut = a.statesOut;
  const separate = statesOut !== undefined;
  be.dispatch(
    kernel(p, 'in', parts, separate, squares !== null),
    inBindings(be, a, residualOut, zxbcdt, squares ? [squares] : []),
    [b, a.residual ? 1 : 0, a.inProjBias ? 1 : 0, a.convBias ? 1 : 0, { f32: a.eps }],
    [Math.ceil(rows / blockStepTuning.inChannels)],
  );
  const whole = a.whole;
  const out = whole ? be.alloc([b, dInner]) : be.alloc([heads, b, 1, d]);
  const squaresOut = be.alloc(whole ? [1] : [heads, b]); // a stand-in when whole
  const outputs = [
    zxbcdt,
    a.dtBias,
    a.A,
    a.D,
    a.ssmState,
    a.gateNorm,
    a.outProj,
    out,
    squaresOut,
  ] as GpuTensor[];
  if (statesOut) outputs.push(statesOut.ssm as GpuTensor);
  be.dispatch(
    kernel(p, whole ? 'y' : 'out', parts, separate, false),
    outputs,
    [b, { f32: a.dtLimit[0] }, { f32: Math.min(a.dtLimit[1], 3.4e38) }],
    [heads, b, slices(whole, separate)],
  );
  if (!whole) {
    be.release(zxbcdt);
    return { residual: residualOut, hidden: out, squares: squaresOut };
  }
  const [z] = be.split(zxbcdt, [dInner, rows - dInner]); // (b, dInner)
  const gated = be.gatedRmsNorm(out, z, a.gateNorm, a.eps, dInner, a.normBeforeGate); // (b, dInner)
  const projected = linear(be, gated as GpuTensor, a.outProj as GpuTensor, null); // (b, d)
  for (const t of [out, zxbcdt, gated, squaresOut]) be.release(t);
  return { residual: residualOut, hidden: be.reshape(projected, [1, b, 1, d]) as GpuTensor, squares: null };
}
