// The WebGPU TrainingOps (except the scan and SSD backward, tested beside their kernels) against
// their CPU twin (itself checked against float64 finite differences in cpuOps.test.ts), on fresh
// random small shapes that are ragged against the tile and workgroup sizes: inputs as split parts
// (strided views on WebGPU), biases present and absent, parameter gradients added onto random
// existing values, ignored targets; and the reductions' determinism (same inputs, same bits).

import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import type { Backend } from '../../src/backends/backend.ts';
import { CpuBackend } from '../../src/backends/cpu/cpuBackend.ts';
import { linearGradTuning } from '../../src/backends/webgpu/kernels/linearGrad.ts';
import type { WebGpuBackend } from '../../src/backends/webgpu/webgpuBackend.ts';
import { numel, type Shape, type Tensor } from '../../src/core/tensor.ts';
import { webgpuBackend } from '../helpers/backends.ts';
import { normal, type Rand, relDiff, rngFor } from '../helpers/random.ts';

const TOL = 1e-5; // float32 on both sides, sums in different orders
const gpuOrReason = await webgpuBackend();
const skip = typeof gpuOrReason === 'string' ? gpuOrReason : false;
const gpu = gpuOrReason as Backend;
const cpu = new CpuBackend();
/** More rows than one dimension of a dispatch grid holds (one workgroup per row kernels fold them). */
const pastGridLimit = skip ? 0 : (gpu as WebGpuBackend).limits.maxComputeWorkgroupsPerDimension + 3;

type Pair = [Tensor, Tensor]; // [cpu, webgpu]

/** The same values on both backends; as the middle part of a split when `view` (a strided view on WebGPU). */
function both(rand: Rand, shape: Shape, view = false, draw = () => normal(rand)): Pair {
  const width = shape[shape.length - 1];
  const [before, after] = view ? [3, 2] : [0, 0];
  const wide = [...shape.slice(0, -1), before + width + after];
  const data = Float32Array.from({ length: numel(wide) }, draw);
  const on = (be: Backend): Tensor => {
    const t = be.upload(data, wide);
    return view ? be.split(t, [before, width, after])[1] : t;
  };
  return [on(cpu), on(gpu)];
}

function ints(data: Int32Array, shape: Shape): Pair {
  return [cpu.upload(data, shape), gpu.upload(data, shape)];
}

async function same(
  t: TestContext,
  what: string,
  pair: readonly [Tensor | null, Tensor | null],
): Promise<void> {
  const [c, g] = pair;
  assert.ok(c !== null && g !== null, `${what}: missing`);
  assert.deepEqual(g.shape, c.shape, `${what}: shape`);
  const diff = relDiff(await gpu.read(g), await cpu.read(c));
  t.diagnostic(`${what}: largest relative difference ${diff.toExponential(2)}`);
  assert.ok(diff < TOL, `${what} differs by ${diff}`);
}

test('zero, accumulate, negExp and concat on views', { skip }, async (t) => {
  const rand = rngFor(t);
  const dst = both(rand, [5, 7]);
  const src = both(rand, [5, 7], true);
  cpu.training.accumulate(dst[0], src[0]);
  gpu.training.accumulate(dst[1], src[1]);
  await same(t, 'accumulate', dst);
  const flat = both(rand, [35]);
  cpu.training.accumulate(dst[0], flat[0]);
  gpu.training.accumulate(dst[1], flat[1]);
  await same(t, 'accumulate (35) into (5, 7)', dst);
  cpu.training.negExp(src[0], dst[0]);
  gpu.training.negExp(src[1], dst[1]);
  await same(t, 'negExp', dst);
  cpu.training.zero(dst[0]);
  gpu.training.zero(dst[1]);
  assert.ok(
    (await gpu.read(dst[1])).every((v) => v === 0),
    'zero',
  );
  const parts = [both(rand, [2, 3, 4], true), both(rand, [2, 3, 1]), both(rand, [2, 3, 6], true)];
  await same(t, 'concat', [
    cpu.training.concat(parts.map((p) => p[0])),
    gpu.training.concat(parts.map((p) => p[1])),
  ]);
});

for (const [rows, v] of [
  [7, 1000],
  [3, 5],
  [40, 257],
] as const) {
  test(`crossEntropy t=${rows} v=${v} with ignored targets`, { skip }, async (t) => {
    const rand = rngFor(t);
    const logits = both(rand, [rows, v], false, () => 4 * normal(rand));
    const targets = Int32Array.from({ length: rows }, (_, i) => (i % 3 === 1 ? -1 : Math.floor(rand() * v)));
    const ids = ints(targets, [rows]);
    const scale = 1 / targets.filter((x) => x !== -1).length;
    const c = cpu.training.crossEntropy(logits[0], ids[0], scale);
    const g = gpu.training.crossEntropy(logits[1], ids[1], scale);
    await same(t, 'loss', [c.loss, g.loss]);
    await same(t, 'dLogits', [c.dLogits, g.dLogits]);
  });
}

// dx: t ≤ 8 reaches linear.ts's matvec, 8 < t ≤ 64 its skinnyLinear, t = 300 with few output
// tiles its split-k. dW (linearGrad.ts): 128-tiles when n and k are ≥ 128, vec4 loads unless a
// view is misaligned (the views here start 3 values into their rows), split over t where `split`
// lowers its minimum chunk.
for (const [rows, n, k, bias, view, needDx, split] of [
  [3, 5, 7, true, true, true, false],
  [40, 6, 9, false, false, true, true],
  [70, 33, 50, true, true, true, false],
  [130, 70, 20, false, true, false, true],
  [300, 20, 12, true, false, true, true],
  [96, 130, 64, true, false, true, false],
  [150, 132, 140, false, false, true, true],
  [77, 129, 130, true, true, false, false],
] as const) {
  const name = `linearBackward t=${rows} n=${n} k=${k} bias=${bias} views=${view} dx=${needDx} split=${split}`;
  test(name, { skip }, async (t) => {
    if (split) {
      linearGradTuning.minChunk = 16;
      t.after(() => {
        linearGradTuning.minChunk = 256;
      });
    }
    const rand = rngFor(t);
    const dy = both(rand, [rows, n], view);
    const x = both(rand, [rows, k], view);
    const w = both(rand, [n, k]);
    const dW = both(rand, [n, k]);
    const db = both(rand, [n]);
    const grads = (i: 0 | 1) => ({ weight: dW[i], bias: bias ? db[i] : null });
    const dx = [
      cpu.training.linearBackward(dy[0], x[0], w[0], grads(0), needDx),
      gpu.training.linearBackward(dy[1], x[1], w[1], grads(1), needDx),
    ] as const;
    if (needDx) await same(t, 'dx', dx);
    else assert.ok(dx[1] === null);
    await same(t, 'dW', dW);
    await same(t, 'db', db);
  });
}

for (const [rows, vocab, d] of [
  [40, 11, 7],
  [100, 300, 5],
  [9, 4, 70],
] as const) {
  test(`embeddingBackward t=${rows} vocab=${vocab} d=${d} (repeated ids, dy a view)`, { skip }, async (t) => {
    const rand = rngFor(t);
    const ids = ints(
      Int32Array.from({ length: rows }, () => Math.floor(rand() * Math.min(vocab, 8))),
      [rows],
    );
    const dy = both(rand, [rows, d], true);
    const dW = both(rand, [vocab, d]);
    const before = await gpu.read(dW[1]);
    cpu.training.embeddingBackward(ids[0], dy[0], dW[0]);
    gpu.training.embeddingBackward(ids[1], dy[1], dW[1]);
    await same(t, 'dWeight', dW);
    // Deterministic: the same gradient again from the same start gives the same bits.
    const first = await gpu.read(dW[1]);
    const again = gpu.upload(before as Float32Array, [vocab, d]);
    gpu.training.embeddingBackward(ids[1], dy[1], again);
    assert.deepEqual(await gpu.read(again), first);
  });
}

for (const [rows, d, withDSum] of [
  [5, 300, true],
  [3, 7, false],
  [70, 64, true],
] as const) {
  test(`addRmsNormBackward t=${rows} d=${d} dSum=${withDSum}`, { skip }, async (t) => {
    const rand = rngFor(t);
    const dNormed = both(rand, [rows, d], true);
    const dSum = both(rand, [rows, d]);
    const sum = both(rand, [rows, d], true);
    const weight = both(rand, [d]);
    const dWeight = both(rand, [d]);
    const run = (i: 0 | 1, be: Backend) =>
      be.training.addRmsNormBackward(
        dNormed[i],
        withDSum ? dSum[i] : null,
        sum[i],
        weight[i],
        1e-5,
        dWeight[i],
      );
    await same(t, 'dSum', [run(0, cpu), run(1, gpu)]);
    await same(t, 'dWeight', dWeight);
  });
}

for (const [b, l, c, w, silu, bias] of [
  [2, 70, 20, 4, true, true],
  [1, 5, 3, 3, false, false],
  [3, 130, 65, 4, false, true],
  [1, 2, 4, 4, true, false],
] as const) {
  test(`causalConv1dBackward b=${b} l=${l} c=${c} w=${w} silu=${silu} bias=${bias}`, { skip }, async (t) => {
    const rand = rngFor(t);
    const x = both(rand, [b, l, c], true);
    const dy = both(rand, [b, l, c]);
    const weight = both(rand, [c, w]);
    const bi = both(rand, [c]);
    const dW = both(rand, [c, w]);
    const dB = both(rand, [c]);
    const run = (i: 0 | 1, be: Backend) =>
      be.training.causalConv1dBackward(dy[i], x[i], weight[i], bias ? bi[i] : null, silu, {
        weight: dW[i],
        bias: bias ? dB[i] : null,
      });
    await same(t, 'dx', [run(0, cpu), run(1, gpu)]);
    await same(t, 'dWeight', dW);
    await same(t, 'dBias', dB);
  });
}

for (const [rows, c, group, before] of [
  [4, 48, 48, false],
  [3, 48, 16, true],
  [6, 200, 100, false],
  [2, 10, 5, true],
  [pastGridLimit, 8, 4, true],
] as const) {
  test(`gatedRmsNormBackward t=${rows} c=${c} group=${group} normBeforeGate=${before}`, {
    skip,
  }, async (t) => {
    const rand = rngFor(t);
    const dOut = both(rand, [rows, c]);
    const y = both(rand, [rows, c], true);
    const z = both(rand, [rows, c], true);
    const weight = both(rand, [c]);
    const dWeight = both(rand, [c]);
    const run = (i: 0 | 1, be: Backend) =>
      be.training.gatedRmsNormBackward(dOut[i], y[i], z[i], weight[i], 1e-5, group, before, dWeight[i]);
    const [gc, gg] = [run(0, cpu), run(1, gpu)];
    await same(t, 'dy', [gc.dy, gg.dy]);
    await same(t, 'dz', [gc.dz, gg.dz]);
    await same(t, 'dWeight', dWeight);
  });
}

test('sumOfSquares over tensors, views and several workgroups', { skip }, async (t) => {
  const rand = rngFor(t);
  const tensors = [both(rand, [10000]), both(rand, [7, 5], true), both(rand, [1]), both(rand, [300, 33])];
  const sum = [
    cpu.training.sumOfSquares(tensors.map((p) => p[0])),
    gpu.training.sumOfSquares(tensors.map((p) => p[1])),
  ] as Pair;
  await same(t, 'sum', sum);
  const again = await gpu.read(gpu.training.sumOfSquares(tensors.map((p) => p[1])));
  assert.deepEqual(again, await gpu.read(sum[1]), 'deterministic');
  await same(t, 'no tensors', [cpu.training.sumOfSquares([]), gpu.training.sumOfSquares([])]);
});

test('adamw over 3 steps', { skip }, async (t) => {
  const rand = rngFor(t);
  const param = both(rand, [1000]);
  const grad = both(rand, [1000]);
  const m = both(rand, [1000], false, () => 0.1 * normal(rand));
  const v = both(rand, [1000], false, () => 0.01 * rand());
  for (let step = 1; step <= 3; step++) {
    const hyper = { lr: 0.01, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step, gradScale: 0.5 };
    cpu.training.adamw(param[0], grad[0], m[0], v[0], hyper);
    gpu.training.adamw(param[1], grad[1], m[1], v[1], hyper);
  }
  await same(t, 'param', param);
  await same(t, 'm', m);
  await same(t, 'v', v);
});

test('linearBackward and crossEntropy are deterministic', { skip }, async (t) => {
  const rand = rngFor(t);
  const [, dy] = both(rand, [300, 20]);
  const [, x] = both(rand, [300, 12]);
  const [, w] = both(rand, [20, 12]);
  const grads = () => ({ weight: gpu.zeros([20, 12]), bias: gpu.zeros([20]) });
  const [g1, g2] = [grads(), grads()];
  gpu.training.linearBackward(dy, x, w, g1);
  gpu.training.linearBackward(dy, x, w, g2);
  assert.deepEqual(await gpu.read(g2.weight), await gpu.read(g1.weight));
  assert.deepEqual(await gpu.read(g2.bias), await gpu.read(g1.bias));
  const [, logits] = both(rand, [50, 300]);
  const [, targets] = ints(
    Int32Array.from({ length: 50 }, () => Math.floor(rand() * 300)),
    [50],
  );
  const l1 = gpu.training.crossEntropy(logits, targets, 0.02).loss;
  const l2 = gpu.training.crossEntropy(logits, targets, 0.02).loss;
  assert.deepEqual(await gpu.read(l2), await gpu.read(l1));
});
