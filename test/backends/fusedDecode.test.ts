// Decoding steps go through the fused ops (Mamba's Backend.mambaBlockStep; Backend.addRmsNormLinear
// before Mamba-2's in_proj and the LM head): CausalLM.step gives the logits of forward() on one token per
// sequence with the same state, step after step, for both families at batch 1, 3 and 20 (on
// WebGPU: the fused block at 1 and 3, skinnyLinear past linearTuning.matvecMaxM), on every
// backend; the later steps advance into a second state (double buffering), leaving the first.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CausalLM } from '../../src/models/causalLM.ts';
import { initParameters } from '../../src/models/init.ts';
import { presetConfig } from '../../src/models/presets.ts';
import { testBackends } from '../helpers/backends.ts';
import { relDiff, rngFor } from '../helpers/random.ts';

for (const { name, backend } of await testBackends()) {
  for (const family of ['mamba', 'mamba2']) {
    for (const batch of [1, 3, 20]) {
      test(`step = forward on one token (${family} tiny, batch ${batch}, ${name})`, {
        skip: typeof backend === 'string' ? backend : false,
      }, async (t) => {
        if (typeof backend === 'string') return;
        const rand = rngFor(t);
        const config = presetConfig(family, 'tiny');
        const params = initParameters(config, Math.floor(rand() * 1000));
        const model = new CausalLM(config, backend, (key) => params.get(key));
        const prompt = Int32Array.from({ length: batch * 5 }, () => Math.floor(rand() * config.vocabSize));
        let [stepped, spare] = [model.newState(batch), model.newState(batch)];
        const forwarded = model.newState(batch);
        model.forward(prompt, batch, { state: stepped, lastOnly: true });
        model.forward(prompt, batch, { state: forwarded, lastOnly: true });
        for (let s = 0; s < 3; s++) {
          const tokens = Int32Array.from({ length: batch }, () => Math.floor(rand() * config.vocabSize));
          // Steps 1 and 2 advance into the other state (CausalLM.step's `next`), leaving this one.
          const kept: Float32Array | Int32Array | null =
            s > 0 ? await backend.read(stepped.layers[0].ssm) : null;
          const got = await backend.read(
            s > 0 ? model.step(tokens, stepped, spare) : model.step(tokens, stepped),
          );
          if (kept) {
            assert.deepEqual(
              await backend.read(stepped.layers[0].ssm),
              kept,
              'the state stepped from is kept',
            );
            [stepped, spare] = [spare, stepped];
          }
          const want = await backend.read(model.forward(tokens, batch, { state: forwarded }).logits);
          const diff = relDiff(got, want);
          t.diagnostic(`step ${s}: max rel diff ${diff.toExponential(2)}`);
          assert.ok(diff < 1e-5, `step ${s} differs by ${diff}`);
        }
      });
    }
  }
}
