// The chunked WebGPU backward of SSD (src/backends/webgpu/kernels/ssdBackwardChunked.ts) against
// the CPU twin (src/backends/cpu/ssdBackward.ts, itself checked against finite differences), on
// the same fresh random inputs: several chunks with a partial last one, g < h, a nonzero initial
// state, Δ clamping active in one case, parameter gradients pre-filled nonzero (both backends add
// into them), x, B, C, dt as split views of one projection output (as the models pass them) or
// dense, head widths wider than one 64-wide tile, chunks of 128 (two-row-block tiles), and the
// batch in slices. Each case checks that
// the wrapper took the form it should (ssdBackwardTuning.runs). Shapes are tiny: lavapipe is slow.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Backend } from '../../src/backends/backend.ts';
import { CpuBackend } from '../../src/backends/cpu/cpuBackend.ts';
import { sliceTuning } from '../../src/backends/webgpu/kernels/scanBackwardSlices.ts';
import { ssdBackwardTuning } from '../../src/backends/webgpu/kernels/ssdBackward.ts';
import { numel, type Shape, type Tensor } from '../../src/core/tensor.ts';
import { softplus } from '../../src/nn/activations.ts';
import { webgpuBackend } from '../helpers/backends.ts';
import { normal, type Rand, relDiff, rngFor, uniform } from '../helpers/random.ts';

const TOL = 1e-4; // f32 on both sides, sums in different orders; relative to the largest value
const gpu = await webgpuBackend();
const cpu = new CpuBackend();
const skip = typeof gpu === 'string' ? gpu : false;

/** The same random data on both backends: [cpu, gpu]. */
function both(rand: Rand, shape: Shape, sample = () => normal(rand)): [Tensor, Tensor] {
  const data = Float32Array.from({ length: numel(shape) }, sample);
  return [cpu.upload(data, shape), (gpu as Backend).upload(data, shape)];
}

interface Case {
  b: number;
  l: number;
  h: number;
  p: number;
  g: number;
  n: number;
  q: number; // chunk length
  dtMax: number; // finite: part of Δ is clamped
  views: boolean; // x, B, C, dt as split views
  sliced?: boolean; // the batch one sequence at a time
  form: 'chunked' | 'recurrent'; // the form the wrapper must take
  chunked?: boolean; // ssdBackwardTuning.chunked (default true)
}

const cases: Case[] = [
  {
    b: 2,
    l: 37,
    h: 4,
    p: 6,
    g: 2,
    n: 8,
    q: 8,
    dtMax: Number.POSITIVE_INFINITY,
    views: true,
    form: 'chunked',
  },
  { b: 1, l: 40, h: 2, p: 16, g: 1, n: 16, q: 16, dtMax: 0.5, views: true, form: 'chunked' },
  {
    b: 2,
    l: 26,
    h: 3,
    p: 5,
    g: 3,
    n: 4,
    q: 16,
    dtMax: Number.POSITIVE_INFINITY,
    views: false,
    form: 'chunked',
  },
  {
    b: 1,
    l: 19,
    h: 2,
    p: 70,
    g: 1,
    n: 12,
    q: 8,
    dtMax: Number.POSITIVE_INFINITY,
    views: true,
    form: 'chunked',
  },
  // Chunks of 128: the 128-row tiles (ssdTiles.ts RM = 2), a partial second chunk.
  {
    b: 1,
    l: 150,
    h: 2,
    p: 4,
    g: 1,
    n: 4,
    q: 128,
    dtMax: Number.POSITIVE_INFINITY,
    views: true,
    form: 'chunked',
  },
  {
    ...{ b: 3, l: 21, h: 4, p: 4, g: 2, n: 8, q: 8, dtMax: 0.6, views: true, sliced: true },
    form: 'chunked',
  },
  {
    b: 2,
    l: 1,
    h: 4,
    p: 3,
    g: 2,
    n: 8,
    q: 8,
    dtMax: Number.POSITIVE_INFINITY,
    views: true,
    form: 'recurrent',
  },
  {
    ...{ b: 2, l: 23, h: 4, p: 3, g: 2, n: 8, q: 8, dtMax: Number.POSITIVE_INFINITY, views: true },
    ...{ form: 'recurrent', chunked: false },
  },
];

for (const c of cases) {
  const { b, l, h, p, g, n, q, dtMax, views } = c;
  const name = `ssdBackward (${c.form}) b=${b} l=${l} h=${h} p=${p} g=${g} n=${n} chunk=${q} dtMax=${dtMax}${views ? ' views' : ''}${c.sliced ? ' in batch slices' : ''}`;
  test(name, { skip }, async (t) => {
    const rand = rngFor(t);
    ssdBackwardTuning.chunked = c.chunked ?? true;
    if (c.sliced) sliceTuning.maxBytes = 1;
    t.after(() => {
      ssdBackwardTuning.chunked = true;
      sliceTuning.maxBytes = 0;
    });
    const dtMin = 0.01;
    const widths = [h * p, g * n, g * n, h];
    const packed = both(rand, [b, l, widths.reduce((s, w) => s + w, 0)]); // (b, l, h·p + 2·g·n + h)
    const biasData = Float32Array.from({ length: h }, () => uniform(rand, -2, 0));
    const dtBias: [Tensor, Tensor] = [cpu.upload(biasData, [h]), (gpu as Backend).upload(biasData, [h])];
    const packedData = await cpu.read(packed[0]);
    const hp = h * p + 2 * g * n;
    const clamped = Array.from(
      { length: b * l * h },
      (_, i) => packedData[((i / h) | 0) * (hp + h) + hp + (i % h)],
    ).filter((v, i) => softplus(v + biasData[i % h]) > dtMax).length;
    t.diagnostic(`${clamped} of ${b * l * h} Δ clamped at dtMax`);
    if (dtMax < Number.POSITIVE_INFINITY) assert.ok(clamped > 0, 'the clamp case clamps nothing');
    const A = both(rand, [h], () => -Math.exp(uniform(rand, -1, 1.5)));
    const D = both(rand, [h]);
    const state = both(rand, [b, h, p, n]);
    const dy = both(rand, [b, l, h * p]);
    const grads = [both(rand, [h]), both(rand, [h]), both(rand, [h])];
    const before = { ...ssdBackwardTuning.runs };
    const on = (i: 0 | 1) => {
      const be = i === 0 ? cpu : (gpu as Backend);
      const parts = be.split(packed[i], widths);
      const [x, B, C, dt] = views ? parts : parts.map((v) => be.training.concat([v]));
      const rest = { dtBias: dtBias[i], dtLimit: [dtMin, dtMax] as const, A: A[i], D: D[i] };
      const gr = { dtBias: grads[0][i], ALog: grads[1][i], D: grads[2][i] };
      return be.training.ssdBackward({ x, B, C, dt, ...rest, state: state[i], chunkSize: q }, dy[i], gr);
    };
    const [want, got] = [on(0), on(1)];
    assert.equal(
      ssdBackwardTuning.runs[c.form],
      before[c.form] + 1,
      `the wrapper did not take the ${c.form} form`,
    );
    let worst = 0;
    const same = async (what: string, w: Tensor, g: Tensor) => {
      const diff = relDiff(await (gpu as Backend).read(g), await cpu.read(w));
      worst = Math.max(worst, diff);
      t.diagnostic(`${what}: max rel diff ${diff.toExponential(2)}`);
      assert.ok(diff < TOL, `${what} differs by ${diff}`);
    };
    for (const key of ['dx', 'ddt', 'dB', 'dC'] as const) await same(key, want[key], got[key]);
    for (const [k, what] of ['dtBias', 'ALog', 'D'].entries()) await same(what, grads[k][0], grads[k][1]);
    await same('state (unchanged)', state[0], state[1]);
    t.diagnostic(`largest relative difference ${worst.toExponential(2)}`);
  });
}
