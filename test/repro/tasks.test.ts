// The synthetic task generators (src/train/tasks/) and the evaluator: each sequence has the
// layout the Mamba paper describes (data tokens among noise then markers with the data as
// targets; random tokens with the special token twice and the token after the first as target),
// the same seed gives the same batch, and scoring a batch in small pieces through the recurrent
// state picks the same answers as forward over whole sequences (S6 and S4D models).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CpuBackend } from '../../src/backends/cpu/cpuBackend.ts';
import { CausalLM } from '../../src/models/causalLM.ts';
import { initParameters } from '../../src/models/init.ts';
import { lengthAt, runExperiment, type Setting, taskModelConfig } from '../../src/train/tasks/experiment.ts';
import { inductionHeads } from '../../src/train/tasks/inductionHeads.ts';
import { selectiveCopying } from '../../src/train/tasks/selectiveCopying.ts';
import { evaluate } from '../../src/train/tasks/task.ts';
import { rngFor } from '../helpers/random.ts';

test('selective copying: data tokens in order among noise, then markers whose targets are the data', (t) => {
  const rand = rngFor(t);
  const [b, l, k] = [5, 40, 6];
  const task = selectiveCopying(16, k);
  const { ids, targets } = task.generate(rand, b, l);
  for (let bi = 0; bi < b; bi++) {
    const row = Array.from(ids.subarray(bi * l, (bi + 1) * l));
    const data = row.slice(0, l - k).filter((v) => v !== 0);
    assert.equal(data.length, k, 'k data tokens in the region');
    assert.ok(data.every((v) => v >= 1 && v <= 14));
    assert.deepEqual(row.slice(l - k), Array(k).fill(15), 'then k markers');
    assert.deepEqual(Array.from(targets.subarray(bi * l + l - k, (bi + 1) * l)), data);
    assert.ok(targets.subarray(bi * l, bi * l + l - k).every((v) => v === -1));
  }
});

test('induction heads: the special token twice, the target is the token after the first', (t) => {
  const rand = rngFor(t);
  const [b, l] = [6, 30];
  const { ids, targets } = inductionHeads(16).generate(rand, b, l);
  for (let bi = 0; bi < b; bi++) {
    const row = Array.from(ids.subarray(bi * l, (bi + 1) * l));
    const specials = row.flatMap((v, i) => (v === 15 ? [i] : []));
    assert.equal(specials.length, 2);
    assert.equal(specials[1], l - 1);
    assert.equal(targets[bi * l + l - 1], row[specials[0] + 1]);
    assert.equal(targets.subarray(bi * l, (bi + 1) * l).filter((v) => v !== -1).length, 1);
  }
});

test('task batches: the same seed gives the same batch', () => {
  const seeded = (seed: number) => () => {
    seed = (seed * 16807) % 2147483647;
    return seed / 2147483647;
  };
  for (const task of [selectiveCopying(16, 4), inductionHeads(16)]) {
    const a = task.generate(seeded(7), 3, 20);
    const b = task.generate(seeded(7), 3, 20);
    assert.deepEqual(a, b);
  }
});

test("curriculum: each stage's steps at its length, then the training length", () => {
  const base = {
    steps: 10,
    batch: 1,
    trainLength: 64,
    lr: 1,
    warmup: 0,
    testLengths: [64],
    testBatch: 1,
    piece: 64,
  };
  const staged: Setting = {
    ...base,
    curriculum: [
      { length: 16, steps: 3 },
      { length: 32, steps: 2 },
    ],
  };
  const lengths = Array.from({ length: 10 }, (_, i) => lengthAt(staged, i + 1));
  assert.deepEqual(lengths, [16, 16, 16, 32, 32, 64, 64, 64, 64, 64]);
  assert.equal(lengthAt(base, 1), 64);
});

test('state passing: a run from carried states is its own and repeats exactly', async () => {
  const task = inductionHeads(16);
  const setting: Setting = {
    steps: 6,
    batch: 4,
    trainLength: 12,
    lr: 1e-2,
    warmup: 1,
    testLengths: [12],
    testBatch: 8,
    piece: 12,
  };
  const losses = async (statePassing: number) =>
    (await runExperiment(task, 's6', new CpuBackend(), { ...setting, statePassing }, 3)).history.train.map(
      (p) => p.loss,
    );
  const [passed, again, zero] = [await losses(0.9), await losses(0.9), await losses(0)];
  assert.deepEqual(passed, again);
  assert.equal(passed[0], zero[0], 'the first step starts from zeros either way');
  assert.notDeepEqual(passed, zero);
});

test('evaluate: in pieces through the recurrent state = forward at once (S6 and S4D)', async (t) => {
  const rand = rngFor(t);
  const be = new CpuBackend();
  const [b, l] = [8, 45];
  for (const layer of ['s6', 's4d'] as const) {
    for (const task of [selectiveCopying(16, 3), inductionHeads(16)]) {
      const config = taskModelConfig(task, layer);
      const weights = initParameters(config, Math.floor(rand() * 1e9));
      const model = new CausalLM(config, be, (name) => weights.get(name));
      const data = task.generate(rand, b, l);
      // Answers replaced by what the model predicts reading each sequence at once: accuracy 1.
      const logits = await be.read(model.forward(data.ids, b).logits); // (b, l, vocab)
      const v = config.vocabSize;
      data.targets.forEach((target, i) => {
        if (target === -1) return;
        const row = Array.from(logits.subarray(i * v, (i + 1) * v));
        data.targets[i] = row.indexOf(Math.max(...row));
      });
      assert.equal(await evaluate(model, data, b, l), 1);
      assert.equal(await evaluate(model, data, b, 7), 1, `${task.name} ${layer} in pieces of 7`);
    }
  }
});
