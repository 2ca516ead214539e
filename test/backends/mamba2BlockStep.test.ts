// Backend.mamba2BlockStep on WebGPU (mambaBlockIn + mamba2BlockOut at small batches) against the
// CPU (Mamba2Mixer.blockStep's ops) on fresh random weights: three decoding steps of a 3-layer
// Mamba-2 (the middle block takes the first one's partial sums and squares, the last one is
// `whole`), comparing each step's logits and every layer's states. Shapes: head dims 64 and 32
// (4 and 8 threads per channel), states 16 and 32, d whose vec4s do not fill the lanes, in_proj's
// last workgroup ragged (its Δ rows); normBeforeGate both ways; with and without the conv bias; a
// Δ limit; batches 1 to 4 (M = 1, 2, 4); the states advanced in place and out of place (3 and 1
// slices of out_proj). The fused kernels must have run (counted); with out_proj's bias, or batch
// 5, the mixer's ops run instead and agree as well.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CpuBackend } from '../../src/backends/cpu/cpuBackend.ts';
import { blockStepTuning } from '../../src/backends/webgpu/kernels/mambaBlockStep.ts';
import type { Kernel, WebGpuBackend } from '../../src/backends/webgpu/webgpuBackend.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import { CausalLM } from '../../src/models/causalLM.ts';
import type { Mamba2Config } from '../../src/models/config.ts';
import { initParameters } from '../../src/models/init.ts';
import { presetConfig } from '../../src/models/presets.ts';
import { webgpuBackend } from '../helpers/backends.ts';
import { relDiff, rngFor } from '../helpers/random.ts';

const TOL = 1e-5;
const gpu = await webgpuBackend();
const cpu = new CpuBackend();
const skip = typeof gpu === 'string' ? gpu : false;

const cases: Array<{
  shape: Partial<Mamba2Config>;
  batch: number;
  separate: boolean;
  fused: boolean;
  slices?: number;
}> = [
  {
    shape: { hiddenSize: 32, headDim: 64, numHeads: 2, stateSize: 16 },
    batch: 1,
    separate: true,
    fused: true,
  },
  {
    shape: { hiddenSize: 32, headDim: 64, numHeads: 2, stateSize: 16 },
    batch: 1,
    separate: false,
    fused: true,
  },
  {
    shape: {
      hiddenSize: 40,
      headDim: 32,
      numHeads: 4,
      stateSize: 32,
      normBeforeGate: true,
      useConvBias: false,
    },
    batch: 3,
    separate: true,
    fused: true,
  },
  {
    shape: { hiddenSize: 36, headDim: 64, numHeads: 2, stateSize: 16, timeStepLimit: [0.02, 0.3] },
    batch: 2,
    separate: true,
    fused: true,
    slices: 1,
  },
  {
    shape: { hiddenSize: 32, headDim: 32, numHeads: 4, stateSize: 32 },
    batch: 4,
    separate: false,
    fused: true,
  },
  {
    shape: { hiddenSize: 32, headDim: 64, numHeads: 2, stateSize: 16, useBias: true },
    batch: 1,
    separate: true,
    fused: false,
  },
  {
    shape: { hiddenSize: 32, headDim: 64, numHeads: 2, stateSize: 16 },
    batch: 5,
    separate: true,
    fused: false,
  },
];

for (const { shape, batch, separate, fused, slices } of cases) {
  test(`mamba2BlockStep ${JSON.stringify(shape)} batch ${batch}${separate ? ', states out of place' : ''}${slices ? `, ${slices} slice` : ''}: the CPU's logits and states${fused ? '' : ' (through the ops)'}`, {
    skip,
  }, async (t) => {
    const g = gpu as WebGpuBackend;
    const rand = rngFor(t);
    const defaults = { ...blockStepTuning };
    if (slices) blockStepTuning.outSlices = slices;
    t.after(() => Object.assign(blockStepTuning, defaults));
    const base = presetConfig('mamba2', 'tiny') as Mamba2Config;
    const config: Mamba2Config = {
      ...base,
      numLayers: 3,
      vocabSize: 64,
      nGroups: 1,
      ...shape,
      intermediateSize: shape.headDim! * shape.numHeads!,
    };
    const params = initParameters(config, Math.floor(rand() * 1000));
    const models = [cpu, g].map((be) => new CausalLM(config, be, (key) => params.get(key)));
    const prompt = Int32Array.from({ length: batch * 4 }, () => Math.floor(rand() * config.vocabSize));
    const states = models.map((m) => [m.newState(batch), m.newState(batch)]);
    for (const [i, m] of models.entries()) m.forward(prompt, batch, { state: states[i][0], lastOnly: true });
    const names: string[] = [];
    const dispatch = g.dispatch;
    g.dispatch = (
      kernel: Kernel,
      ...rest: Parameters<WebGpuBackend['dispatch']> extends [unknown, ...infer R] ? R : never
    ) => {
      names.push(kernel.name);
      dispatch.call(g, kernel, ...rest);
    };
    t.after(() => {
      g.dispatch = dispatch;
    });
    for (let s = 0; s < 3; s++) {
      const tokens = Int32Array.from({ length: batch }, () => Math.floor(rand() * config.vocabSize));
      names.length = 0;
      const logits = models.map((m, i) =>
        separate ? m.step(tokens, states[i][0], states[i][1]) : m.step(tokens, states[i][0]),
      );
      const fusedSteps = names.filter((n) => n === 'mamba2BlockOut').length;
      assert.equal(fusedSteps, fused ? config.numLayers : 0, 'fused blocks in the step');
      const [want, got] = await Promise.all(logits.map((l, i) => [cpu, g][i].read(l)));
      const diff = relDiff(got, want);
      t.diagnostic(`step ${s}: logits max rel diff ${diff.toExponential(2)}`);
      assert.ok(diff < TOL, `step ${s}: logits differ by ${diff}`);
      if (separate) for (const pair of states) pair.reverse();
      for (let layer = 0; layer < config.numLayers; layer++) {
        for (const part of ['conv', 'ssm'] as const) {
          const [a, b] = await Promise.all(
            states.map((pair, i) => [cpu, g][i].read(pair[0].layers[layer][part] as Tensor)),
          );
          const d = relDiff(b, a);
          assert.ok(d < TOL, `step ${s} layer ${layer} ${part} differs by ${d}`);
        }
      }
    }
  });
}
