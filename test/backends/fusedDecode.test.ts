// Decoding a tiny Mamba on WebGPU through the fused ops (src/bench/fusedPreview.ts: mambaStep, and
// addRmsNormLinear before in_proj and the LM head) gives the logits of the model's own ops, step
// after step from the same prompt state, at batch 1 and 3.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fusedMambaPreview } from '../../src/bench/fusedPreview.ts';
import { CausalLM } from '../../src/models/causalLM.ts';
import { initParameters } from '../../src/models/init.ts';
import { presetConfig } from '../../src/models/presets.ts';
import { webgpuBackend } from '../helpers/backends.ts';
import { relDiff, rngFor } from '../helpers/random.ts';

const gpu = await webgpuBackend();

for (const batch of [1, 3]) {
  test(`fused decoding preview = the model's steps (tiny Mamba, batch ${batch})`, {
    skip: typeof gpu === 'string' ? gpu : false,
  }, async (t) => {
    if (typeof gpu === 'string') return;
    const rand = rngFor(t);
    const config = presetConfig('mamba', 'tiny');
    const params = initParameters(config, Math.floor(rand() * 1000));
    const model = new CausalLM(config, gpu, (name) => params.get(name));
    const prompt = Int32Array.from({ length: batch * 5 }, () => Math.floor(rand() * config.vocabSize));
    const logits: Float32Array[][] = [];
    for (const level of [null, 'mixer', 'norm'] as const) {
      const state = model.newState(batch);
      model.forward(prompt, batch, { state, lastOnly: true });
      fusedMambaPreview(level);
      t.after(() => fusedMambaPreview(null));
      const steps: Float32Array[] = [];
      for (let s = 0; s < 3; s++) {
        const tokens = Int32Array.from({ length: batch }, (_, i) => (s * 7 + i * 13) % config.vocabSize);
        steps.push((await gpu.read(model.step(tokens, state))) as Float32Array);
      }
      fusedMambaPreview(null);
      logits.push(steps);
    }
    for (const [i, level] of [
      [1, 'mixer'],
      [2, 'norm'],
    ] as const) {
      for (let s = 0; s < 3; s++) {
        const diff = relDiff(logits[i][s], logits[0][s]);
        t.diagnostic(`${level} step ${s}: max rel diff ${diff.toExponential(2)}`);
        assert.ok(diff < 1e-5, `${level} step ${s} differs by ${diff}`);
      }
    }
  });
}
