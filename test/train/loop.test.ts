// Tests for src/train/loop.ts and optimizer.ts: a tiny model's loss falls on a tiny corpus in a
// fixed number of CPU steps (both families), gradient accumulation equals one larger batch, the
// parameter groups without weight decay, clipping and accumulation scales reaching AdamW, and the
// warmup + cosine schedule.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { Backend } from '../../src/backends/backend.ts';
import { CpuBackend } from '../../src/backends/cpu/cpuBackend.ts';
import type { AdamWHyper } from '../../src/backends/training.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import { parameterShapes } from '../../src/models/parameters.ts';
import { presetConfig } from '../../src/models/presets.ts';
import { trainLoop } from '../../src/train/loop.ts';
import { AdamW, learningRate, noWeightDecay, type OptimizerConfig } from '../../src/train/optimizer.ts';
import { startRun, type TrainHyper } from '../../src/train/run.ts';
import { tmpRoot } from '../helpers/cli.ts';
import { normal, relDiff, rngFor } from '../helpers/random.ts';

const root = tmpRoot('loop');
let counter = 0;
const corpus = path.join(root, 'corpus.txt');
fs.writeFileSync(corpus, 'the cat sat on the mat. the dog sat on the log. '.repeat(40));

function hyper(family: 'mamba' | 'mamba2', edits: Partial<TrainHyper> = {}): TrainHyper {
  return {
    family,
    preset: 'tiny',
    init: null,
    tokenizer: 'bytes',
    backend: 'cpu',
    steps: 20,
    batch: 4,
    seqLen: 32,
    lr: 5e-3,
    minLr: 5e-4,
    warmup: 2,
    accum: 1,
    beta1: 0.9,
    beta2: 0.95,
    eps: 1e-8,
    weightDecay: 0.1,
    clip: 1,
    valEvery: 10,
    saveEvery: 1000,
    seed: 1,
    valFraction: 0.1,
    valBatches: 2,
    ...edits,
  };
}

for (const family of ['mamba', 'mamba2'] as const) {
  test(`${family}: a tiny model's loss falls on a tiny corpus in 20 CPU steps`, async (t) => {
    const run = startRun(path.join(root, `${counter++}`), corpus, hyper(family), new CpuBackend());
    await trainLoop(run);
    const train = run.history.train.map((p) => p.loss);
    const val = run.history.val.map((p) => p.loss);
    t.diagnostic(
      `train loss ${train[0].toFixed(3)} → ${train.at(-1)!.toFixed(3)}, validation ${val.map((v) => v.toFixed(3)).join(' → ')}`,
    );
    assert.equal(train.length, 20);
    assert.ok(Math.abs(train[0] - Math.log(256)) < 0.3, `starts near ln 256: ${train[0]}`);
    assert.ok(train.at(-1)! < train[0] - 1.5, `train loss ${train[0]} → ${train.at(-1)}`);
    assert.equal(val.length, 2);
    assert.ok(val[1] < train[0] - 1.5, `validation loss ${val[1]}`);
  });
}

test('gradient accumulation: 2 micro-batches of 2 update as one batch of 4', async (t) => {
  // eps = 1 makes the first AdamW step nearly linear in the gradient (|g| ≪ 1), so rounding in
  // the gradient sums shows as rounding in the update rather than flipping signs of tiny updates.
  const edits = { steps: 1, eps: 1, weightDecay: 0, valEvery: 1000 };
  const one = startRun(
    path.join(root, `${counter++}`),
    corpus,
    hyper('mamba', { ...edits, batch: 4 }),
    new CpuBackend(),
  );
  const two = startRun(
    path.join(root, `${counter++}`),
    corpus,
    hyper('mamba', { ...edits, batch: 2, accum: 2 }),
    new CpuBackend(),
  );
  const before = new Map<string, Float32Array>();
  for (const [name, p] of one.model.parameters())
    before.set(name, (await one.model.backend.read(p)) as Float32Array);
  await trainLoop(one);
  await trainLoop(two);
  assert.ok(Math.abs(one.history.train[0].loss - two.history.train[0].loss) < 1e-5);
  let worst = 0;
  for (const [name, p] of one.model.parameters()) {
    const p0 = before.get(name)!;
    const a = ((await one.model.backend.read(p)) as Float32Array).map((v, i) => v - p0[i]);
    const b = ((await two.model.backend.read(two.model.parameters().get(name)!)) as Float32Array).map(
      (v, i) => v - p0[i],
    );
    worst = Math.max(worst, relDiff(b, a));
  }
  t.diagnostic(`largest relative difference of the updates ${worst.toExponential(2)}`);
  assert.ok(worst < 1e-3, `updates differ by ${worst}`);
});

test('parameter groups: no weight decay on A_log, D, dt bias, biases and norm weights', () => {
  const decayed = (family: string) =>
    [...parameterShapes({ ...presetConfig(family, 'tiny'), numLayers: 1, useBias: true }).keys()]
      .filter((name) => !noWeightDecay(name))
      .sort();
  assert.deepEqual(decayed('mamba'), [
    'backbone.embeddings.weight',
    'backbone.layers.0.mixer.conv1d.weight',
    'backbone.layers.0.mixer.dt_proj.weight',
    'backbone.layers.0.mixer.in_proj.weight',
    'backbone.layers.0.mixer.out_proj.weight',
    'backbone.layers.0.mixer.x_proj.weight',
  ]);
  assert.deepEqual(decayed('mamba2'), [
    'backbone.embeddings.weight',
    'backbone.layers.0.mixer.conv1d.weight',
    'backbone.layers.0.mixer.in_proj.weight',
    'backbone.layers.0.mixer.out_proj.weight',
  ]);
  assert.ok(noWeightDecay('lm_head.bias') && !noWeightDecay('lm_head.weight'));
});

test('AdamW gets the clip and accumulation scales, the schedule and the groups', async (t) => {
  const rand = rngFor(t);
  const cpu = new CpuBackend();
  const calls: Array<{ name: string; hyper: AdamWHyper }> = [];
  const names = new Map<Tensor, string>();
  const spy = {
    read: (x: Tensor) => cpu.read(x),
    zeros: (shape: number[]) => cpu.zeros(shape),
    tidy: <T>(fn: () => T) => fn(),
    training: {
      zero: (x: Tensor) => cpu.training.zero(x),
      accumulate: (dst: Tensor, src: Tensor) => cpu.training.accumulate(dst, src),
      sumOfSquares: (ts: readonly Tensor[]) => cpu.training.sumOfSquares(ts),
      adamw: (p: Tensor, _g: Tensor, _m: Tensor, _v: Tensor, h: AdamWHyper) =>
        calls.push({ name: names.get(p)!, hyper: h }),
    },
  } as unknown as Backend;
  const params = new Map<string, Tensor>();
  const grads = new Map<string, Tensor>();
  let sumSq = 0;
  for (const [name, size] of [
    ['x.weight', 6],
    ['x.bias', 3],
    ['A_log', 2],
  ] as const) {
    const g = Float32Array.from({ length: size }, () => normal(rand));
    sumSq += g.reduce((s, v) => s + v * v, 0);
    params.set(name, cpu.zeros([size]));
    names.set(params.get(name)!, name);
    grads.set(name, cpu.upload(g, [size]));
  }
  const config: OptimizerConfig = {
    lr: 1,
    minLr: 0.1,
    warmup: 2,
    steps: 10,
    beta1: 0.9,
    beta2: 0.99,
    eps: 1e-8,
    weightDecay: 0.5,
    clip: 0.5,
  };
  const opt = new AdamW(spy, params, config);
  const { gradNorm, lr } = await opt.update(grads, 4);
  assert.ok(Math.abs(gradNorm - Math.sqrt(sumSq) / 4) < 1e-6 * gradNorm);
  assert.equal(lr, 0.5);
  const scale = Math.min(1, 0.5 / (gradNorm + 1e-6)) / 4;
  assert.deepEqual(
    calls.map((c) => [c.name, c.hyper.weightDecay, c.hyper.step, c.hyper.gradScale, c.hyper.lr]),
    [
      ['x.weight', 0.5, 1, scale, 0.5],
      ['x.bias', 0, 1, scale, 0.5],
      ['A_log', 0, 1, scale, 0.5],
    ],
  );
  const nan = new Map(
    [...grads].map(([n, g]) => [n, n === 'A_log' ? cpu.upload(new Float32Array([Number.NaN, 0]), [2]) : g]),
  );
  await assert.rejects(opt.update(nan, 1), {
    name: 'MambaError',
    message: 'training diverged at step 2: the gradient norm is NaN',
  });
});

test('schedule: linear warmup to lr, then cosine down to minLr at the last step', () => {
  const c: OptimizerConfig = {
    lr: 1e-3,
    minLr: 1e-4,
    warmup: 10,
    steps: 110,
    beta1: 0,
    beta2: 0,
    eps: 0,
    weightDecay: 0,
    clip: 0,
  };
  assert.equal(learningRate(c, 1), 1e-4);
  assert.equal(learningRate(c, 10), 1e-3);
  assert.ok(Math.abs(learningRate(c, 60) - 5.5e-4) < 1e-15);
  assert.ok(Math.abs(learningRate(c, 110) - 1e-4) < 1e-15);
  for (let s = 11; s <= 110; s++) assert.ok(learningRate(c, s) < learningRate(c, s - 1));
  assert.ok(learningRate({ ...c, warmup: 0 }, 0) === 1e-3 && learningRate({ ...c, warmup: 0 }, 1) < 1e-3);
});
