// Backend.mambaBlockStep on WebGPU (mambaBlockIn + mambaBlockOut at small batches) against the CPU
// (the composed ops) on fresh random inputs: two steps from random states, comparing the residual,
// the output (its partial sums added on the host), and both states after each step. The second
// step takes the first one's partial sums as its input, as the next block would. Shapes: one and
// several x blocks and channel groups; n = 8, 16 and 32 (2, 4 and 8 threads per channel); d whose
// vec4s do not fill the lanes; with and without every bias; batches 1 to 4 (M = 1, 2, 4 with a
// ragged one); a narrow tuning (16 channels per workgroup, in_proj loads in ragged runs of 2);
// d = 264: two out_proj rows per thread. Out of place, out_proj's rows are cut in slices (the
// default 3, of 14 rows for d = 40; 4 of 66 for d = 264; and 1).
// Three cases advance the states out of place (Backend.mambaStep's statesOut, one through the
// composed ops): the given states must come back unchanged. Shapes and batches the kernels do not
// take run the composed ops (counted dispatches).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Backend, MambaBlockStepArgs } from '../../src/backends/backend.ts';
import { CpuBackend } from '../../src/backends/cpu/cpuBackend.ts';
import { blockStepTuning } from '../../src/backends/webgpu/kernels/mambaBlockStep.ts';
import type { WebGpuBackend } from '../../src/backends/webgpu/webgpuBackend.ts';
import { numel, type Shape, type Tensor } from '../../src/core/tensor.ts';
import { webgpuBackend } from '../helpers/backends.ts';
import { normal, type Rand, relDiff, rngFor, uniform } from '../helpers/random.ts';

const TOL = 1e-5;
const gpu = await webgpuBackend();
const cpu = new CpuBackend();
const skip = typeof gpu === 'string' ? gpu : false;

function draw(rand: Rand, shape: Shape, f = () => normal(rand)): Float32Array {
  return Float32Array.from({ length: numel(shape) }, f);
}

/** The same random data on both backends. */
function both(rand: Rand, shape: Shape, f = () => normal(rand)): [Tensor, Tensor] {
  const data = draw(rand, shape, f);
  return [cpu.upload(data, shape), (gpu as Backend).upload(data, shape)];
}

/** (P, b, 1, d) partial sums → their sum (1, b, 1, d). */
function sumParts(parts: Float32Array, shape: Shape): Float32Array {
  const [p, rest] = [shape[0], numel(shape.slice(1))];
  const out = new Float32Array(rest);
  for (let i = 0; i < p; i++) for (let j = 0; j < rest; j++) out[j] += parts[i * rest + j];
  return out;
}

function check(
  t: { diagnostic(m: string): void },
  what: string,
  got: ArrayLike<number>,
  want: ArrayLike<number>,
) {
  const diff = relDiff(got, want);
  t.diagnostic(`${what}: max rel diff ${diff.toExponential(2)}`);
  assert.ok(diff < TOL, `${what} differs by ${diff}`);
}

for (const [d, dInner, n, r, w, biases, b, fused, tuning, separate] of [
  [40, 128, 16, 4, 4, true, 1, true, {}],
  [40, 128, 16, 4, 4, true, 1, true, {}, true],
  [40, 128, 16, 4, 4, false, 2, true, {}],
  [48, 128, 8, 8, 2, true, 3, true, {}],
  [20, 64, 32, 8, 4, false, 4, true, {}],
  [20, 64, 32, 8, 4, false, 3, true, {}, true],
  [36, 64, 16, 12, 3, true, 4, true, { inChannels: 16, maxLoads: 2 }],
  [264, 128, 16, 4, 4, true, 1, true, {}],
  [264, 128, 16, 4, 4, true, 1, true, { outSlices: 4 }, true],
  [40, 128, 16, 4, 4, true, 2, true, { outSlices: 1 }, true],
  [40, 128, 16, 4, 4, true, 5, false, {}],
  [40, 128, 16, 4, 4, true, 5, false, {}, true],
  [40, 128, 16, 5, 4, true, 1, false, {}],
] as const) {
  for (const whole of [false, true]) {
    const name = `mambaBlockStep d=${d} dInner=${dInner} n=${n} R=${r} w=${w} biases=${biases} b=${b} whole=${whole} ${JSON.stringify(tuning)}${separate ? ' states out of place' : ''}`;
    test(`${name} (two steps)`, { skip }, async (t) => {
      const rand = rngFor(t);
      const g = gpu as WebGpuBackend;
      const defaults = { ...blockStepTuning };
      Object.assign(blockStepTuning, tuning);
      t.after(() => Object.assign(blockStepTuning, defaults));
      const small = () => uniform(rand, -0.2, 0.2);
      const weights = {
        norm: both(rand, [d], () => uniform(rand, 0.5, 1.5)),
        inProj: both(rand, [2 * dInner, d], small),
        inProjBias: both(rand, [2 * dInner]),
        convWeight: both(rand, [dInner, w], () => uniform(rand, -0.5, 0.5)),
        convBias: both(rand, [dInner]),
        xProj: both(rand, [r + 2 * n, dInner], small),
        dtProj: both(rand, [dInner, r], () => uniform(rand, -0.5, 0.5)),
        dtBias: both(rand, [dInner], () => uniform(rand, -4, -1)),
        A: both(rand, [dInner, n], () => -Math.exp(uniform(rand, -1, 2))),
        D: both(rand, [dInner]),
        outProj: both(rand, [d, dInner], small),
        outProjBias: both(rand, [d]),
      };
      let convState = both(rand, [b, dInner, w - 1]);
      let ssmState = both(rand, [b, dInner, n]);
      // Step 0: one part and no residual (the first block); step 1: the parts step 0 made.
      let parts: { data: Float32Array; shape: Shape } = {
        data: draw(rand, [1, b, 1, d]),
        shape: [1, b, 1, d],
      };
      let residual: [Tensor, Tensor] | null = null;
      for (let step = 0; step < 2; step++) {
        const summed = sumParts(parts.data, parts.shape);
        const input: [Tensor, Tensor] = [cpu.upload(summed, [1, b, 1, d]), g.upload(parts.data, parts.shape)];
        // Out of place (separate): the states advance into other tensors (random until written).
        const out = separate
          ? { conv: both(rand, [b, dInner, w - 1]), ssm: both(rand, [b, dInner, n]) }
          : null;
        const kept = separate ? [await g.read(convState[1]), await g.read(ssmState[1])] : [];
        const on = (i: 0 | 1): MambaBlockStepArgs => ({
          hidden: input[i],
          residual: residual?.[i] ?? null,
          norm: weights.norm[i],
          eps: 1e-5,
          inProj: weights.inProj[i],
          inProjBias: biases ? weights.inProjBias[i] : null,
          convWeight: weights.convWeight[i],
          convBias: biases ? weights.convBias[i] : null,
          xProj: weights.xProj[i],
          dtProj: weights.dtProj[i],
          dtBias: weights.dtBias[i],
          A: weights.A[i],
          D: weights.D[i],
          outProj: weights.outProj[i],
          outProjBias: biases ? weights.outProjBias[i] : null,
          convState: convState[i],
          ssmState: ssmState[i],
          statesOut: out ? { conv: out.conv[i], ssm: out.ssm[i] } : undefined,
          whole,
        });
        const before = g.dispatchCount;
        const got = g.mambaBlockStep(on(1));
        const dispatches = g.dispatchCount - before;
        const want = cpu.mambaBlockStep(on(0));
        if (fused) assert.equal(dispatches, whole ? 3 : 2, 'the fused kernels (and out_proj when whole)');
        else assert.ok(dispatches > 3, `the composed ops: ${dispatches} dispatches`);
        const gotParts = (await g.read(got.hidden)) as Float32Array;
        if (whole || !fused) assert.deepEqual(got.hidden.shape, [1, b, 1, d]);
        check(t, `residual step ${step}`, await g.read(got.residual), await cpu.read(want.residual));
        check(t, `output step ${step}`, sumParts(gotParts, got.hidden.shape), await cpu.read(want.hidden));
        if (out) {
          assert.deepEqual(await g.read(convState[1]), kept[0], 'the conv state read, not written');
          assert.deepEqual(await g.read(ssmState[1]), kept[1], 'the ssm state read, not written');
          [convState, ssmState] = [out.conv, out.ssm];
        }
        check(t, `conv state step ${step}`, await g.read(convState[1]), await cpu.read(convState[0]));
        check(t, `ssm state step ${step}`, await g.read(ssmState[1]), await cpu.read(ssmState[0]));
        residual = [want.residual, got.residual];
        parts = { data: gotParts, shape: got.hidden.shape };
      }
    });
  }
}
