// Golden tests: forward, the token-by-token step loop and greedy decoding, on every backend,
// against the reference outputs that transformers' PyTorch path computed for ../shared/fixtures/hf.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { generate } from '../../src/generate/generate.ts';
import { loadModel } from '../../src/io/hf.ts';
import { readNpy } from '../../src/io/npy.ts';
import { testBackends } from '../helpers/backends.ts';
import { fixture } from '../helpers/fixtures.ts';
import { relDiff } from '../helpers/random.ts';

const tolerance = 1e-5;

for (const { name: backendName, backend } of await testBackends()) {
  for (const name of ['mamba-tiny-0', 'mamba2-tiny-0', 'mamba2-groups-0']) {
    describe(`${name} on ${backendName}`, { skip: typeof backend === 'string' && backend }, () => {
      if (typeof backend === 'string') return;
      const dir = fixture('hf', name);
      const model = loadModel(dir, backend);
      const ids = readNpy(fixture('hf', name, 'input_ids.npy'));
      const [batch, length] = ids.shape;
      const vocab = model.config.vocabSize;

      test('forward: logits and last hidden state', async (t) => {
        const { logits, hidden } = model.forward(ids.data as Int32Array, batch);
        const logitsDiff = relDiff(
          await model.backend.read(logits),
          readNpy(fixture('hf', name, 'logits.npy')).data as Float32Array,
        );
        const hiddenDiff = relDiff(
          await model.backend.read(hidden),
          readNpy(fixture('hf', name, 'hidden_last.npy')).data as Float32Array,
        );
        t.diagnostic(`logits rel diff ${logitsDiff.toExponential(2)}, hidden ${hiddenDiff.toExponential(2)}`);
        assert.ok(logitsDiff < tolerance, `logits differ by ${logitsDiff}`);
        assert.ok(hiddenDiff < tolerance, `hidden state differs by ${hiddenDiff}`);
      });

      test('step loop: logits token by token', async (t) => {
        const all = ids.data as Int32Array;
        const state = model.newState(batch);
        const stepped = new Float32Array(batch * length * vocab);
        for (let pos = 0; pos < length; pos++) {
          const tokens = Int32Array.from({ length: batch }, (_, b) => all[b * length + pos]);
          const logits = (await model.backend.read(model.step(tokens, state))) as Float32Array; // (b, 1, vocab)
          for (let b = 0; b < batch; b++) {
            stepped.set(logits.subarray(b * vocab, (b + 1) * vocab), (b * length + pos) * vocab);
          }
        }
        const diff = relDiff(stepped, readNpy(fixture('hf', name, 'logits.npy')).data as Float32Array);
        t.diagnostic(`step logits rel diff ${diff.toExponential(2)}`);
        assert.ok(diff < tolerance, `step logits differ by ${diff}`);
      });

      test('greedy ids equal greedy.json', async () => {
        const { prompt, greedy } = JSON.parse(readFileSync(fixture('hf', name, 'greedy.json'), 'utf8'));
        const run = generate(model, null, [prompt[0]], {
          greedy: true,
          maxNewTokens: greedy[0].length - prompt[0].length,
        });
        let next = await run.next();
        while (!next.done) next = await run.next();
        assert.deepEqual(next.value.ids[0], greedy[0]);
      });
    });
  }
}
