// The selective scan, SSD and causal conv1d, forward and backward, run as lane jobs on the worker pool
// (threads.ts): on fresh random inputs each gives the same bits on 3 threads (two workers sharing
// the chunks) as on the calling thread alone (MAMBA_TS_THREADS=1), outputs and accumulated
// parameter gradients alike. Shapes are large enough to be shared out, with several chunks.
// Each test prints the seed and the largest |threaded − single| (0 when equal).

import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { CpuBackend } from '../../src/backends/cpu/cpuBackend.ts';
import { workerCount } from '../../src/backends/cpu/threads.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import { normal, type Rand, rngFor, uniform } from '../helpers/random.ts';

process.env['MAMBA_TS_THREADS'] = '3';

const be = new CpuBackend();

function random(rand: Rand, shape: number[], draw: () => number = () => normal(rand)): Tensor {
  const data = new Float32Array(shape.reduce((a, s) => a * s, 1));
  for (let i = 0; i < data.length; i++) data[i] = draw();
  return be.upload(data, shape);
}

/** A fresh copy of t (a state the forward updates, a gradient the backward adds into). */
const copy = async (t: Tensor): Promise<Tensor> => be.upload(await be.read(t), t.shape);

/** Runs `once` with MAMBA_TS_THREADS=1 and =3 and checks that every tensor it returns is the same bits. */
async function sameOnThreads(t: TestContext, once: () => Promise<Tensor[]>): Promise<void> {
  process.env['MAMBA_TS_THREADS'] = '1';
  const single = await Promise.all((await once()).map((r) => be.read(r)));
  process.env['MAMBA_TS_THREADS'] = '3';
  const threaded = await Promise.all((await once()).map((r) => be.read(r)));
  assert.ok(workerCount() > 0, 'the worker pool did not start');
  let diff = 0;
  single.forEach((s, i) => {
    for (let j = 0; j < s.length; j++) diff = Math.max(diff, Math.abs(s[j] - threaded[i][j]));
  });
  t.diagnostic(`largest |threaded − single| ${diff} over ${single.length} tensors`);
  for (const [i, s] of single.entries()) assert.deepEqual(threaded[i], s, `tensor ${i} differs`);
}

test('selectiveScan and its backward: 3 threads = 1 thread, bit for bit', async (t) => {
  const rand = rngFor(t);
  const [b, l, d, n] = [2, 64, 96, 8];
  const args = {
    u: random(rand, [b, l, d]),
    delta: random(rand, [b, l, d], () => normal(rand) - 0.5),
    deltaBias: random(rand, [d], () => uniform(rand, -1, 0.5)),
    A: random(rand, [d, n], () => -Math.exp(uniform(rand, -1, 1))),
    B: random(rand, [b, l, n]),
    C: random(rand, [b, l, n]),
    D: random(rand, [d]),
    z: random(rand, [b, l, d]),
    state: random(rand, [b, d, n]),
  };
  const dy = random(rand, [b, l, d]);
  const grads = {
    deltaBias: random(rand, [d], () => 1e-3 * normal(rand)),
    ALog: random(rand, [d, n], () => 1e-3 * normal(rand)),
    D: random(rand, [d], () => 1e-3 * normal(rand)),
  };
  await sameOnThreads(t, async () => {
    const state = await copy(args.state);
    const y = be.selectiveScan({ ...args, state });
    const g = {
      deltaBias: await copy(grads.deltaBias),
      ALog: await copy(grads.ALog),
      D: await copy(grads.D),
    };
    const out = be.training.selectiveScanBackward(args, dy, g);
    return [y, state, out.du, out.dDelta, out.dB, out.dC, out.dz, g.deltaBias, g.ALog, g.D];
  });
});

test('ssd (chunked) and its backward: 3 threads = 1 thread, bit for bit', async (t) => {
  const rand = rngFor(t);
  const [b, l, h, p, g, n] = [2, 40, 8, 16, 2, 8];
  const args = {
    x: random(rand, [b, l, h * p]),
    dt: random(rand, [b, l, h], () => normal(rand) - 1),
    dtBias: random(rand, [h], () => uniform(rand, -1, 0.5)),
    dtLimit: [0, Number.POSITIVE_INFINITY] as const,
    A: random(rand, [h], () => -Math.exp(uniform(rand, -1, 1))),
    B: random(rand, [b, l, g * n]),
    C: random(rand, [b, l, g * n]),
    D: random(rand, [h]),
    state: random(rand, [b, h, p, n]),
    chunkSize: 16,
  };
  const dy = random(rand, [b, l, h * p]);
  const grads = {
    dtBias: random(rand, [h], () => 1e-3 * normal(rand)),
    ALog: random(rand, [h], () => 1e-3 * normal(rand)),
    D: random(rand, [h], () => 1e-3 * normal(rand)),
  };
  await sameOnThreads(t, async () => {
    const state = await copy(args.state);
    const y = be.ssd({ ...args, state });
    const gr = { dtBias: await copy(grads.dtBias), ALog: await copy(grads.ALog), D: await copy(grads.D) };
    const out = be.training.ssdBackward(args, dy, gr);
    return [y, state, out.dx, out.ddt, out.dB, out.dC, gr.dtBias, gr.ALog, gr.D];
  });
});

test('causalConv1d and its backward: 3 threads = 1 thread, bit for bit', async (t) => {
  const rand = rngFor(t);
  const [b, l, c, w] = [2, 50, 200, 4];
  const x = random(rand, [b, l, c]);
  const weight = random(rand, [c, w]);
  const bias = random(rand, [c]);
  const state = random(rand, [b, c, w - 1]);
  const dy = random(rand, [b, l, c]);
  const grads = { weight: random(rand, [c, w], () => 1e-3 * normal(rand)), bias: random(rand, [c]) };
  await sameOnThreads(t, async () => {
    const st = await copy(state);
    const y = be.causalConv1d(x, weight, bias, st, true);
    const g = { weight: await copy(grads.weight), bias: await copy(grads.bias) };
    const dx = be.training.causalConv1dBackward(dy, x, weight, bias, true, g);
    const gNoBias = { weight: await copy(grads.weight), bias: null };
    const dxPlain = be.training.causalConv1dBackward(dy, x, weight, null, false, gNoBias);
    return [y, st, dx, g.weight, g.bias, dxPlain, gNoBias.weight];
  });
});
