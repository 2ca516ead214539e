// The WebGPU backward of the selective scan (Mamba) and of SSD (Mamba-2) against their CPU twins
// (src/backends/cpu/selectiveScanBackward.ts, ssdBackward.ts, themselves checked against finite
// differences of the float64 references), on the same fresh random inputs: ragged shapes with
// several chunks (the chunk length forced short), odd widths, lane blocks that do not fill a
// workgroup, g < h, a nonzero initial state, Δ clamping active, and parameter gradients
// pre-filled nonzero (both backends add into them). Shapes are small: lavapipe is slow.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Backend } from '../../src/backends/backend.ts';
import { CpuBackend } from '../../src/backends/cpu/cpuBackend.ts';
import { scanBackwardTuning } from '../../src/backends/webgpu/kernels/scanBackwardPasses.ts';
import { sliceTuning } from '../../src/backends/webgpu/kernels/scanBackwardSlices.ts';
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

/** Compares tensors pairwise and reports the largest difference. */
function checker(t: { diagnostic(m: string): void }) {
  let worst = 0;
  return {
    async same(what: string, want: Tensor, got: Tensor): Promise<void> {
      const diff = relDiff(await (gpu as Backend).read(got), await cpu.read(want));
      worst = Math.max(worst, diff);
      t.diagnostic(`${what}: max rel diff ${diff.toExponential(2)}`);
      assert.ok(diff < TOL, `${what} differs by ${diff}`);
    },
    done: () => t.diagnostic(`largest relative difference ${worst.toExponential(2)}`),
  };
}

function chunkLength(t: { after(fn: () => void): void }, chunk: number): void {
  scanBackwardTuning.chunk = chunk;
  t.after(() => {
    scanBackwardTuning.chunk = 0;
  });
}

/** Makes the backward split the batch into slices of one sequence (scanBackwardSlices.ts). */
function oneRowSlices(t: { after(fn: () => void): void }): void {
  sliceTuning.maxBytes = 1;
  t.after(() => {
    sliceTuning.maxBytes = 0;
  });
}

// [b, l, d, n, lc, sliced]: lc = the chunk length forced; sliced: the batch one sequence at a time.
for (const [b, l, d, n, lc, sliced] of [
  [2, 23, 5, 3, 4, false],
  [1, 45, 70, 16, 8, false],
  [2, 9, 3, 2, 32, false],
  [3, 70, 131, 16, 16, false],
  [3, 21, 9, 4, 8, true],
] as const) {
  test(`selectiveScanBackward b=${b} l=${l} d=${d} n=${n} chunk=${lc}${sliced ? ' in batch slices' : ''}`, {
    skip,
  }, async (t) => {
    const rand = rngFor(t);
    chunkLength(t, lc);
    if (sliced) oneRowSlices(t);
    const [u, delta, z] = [both(rand, [b, l, d]), both(rand, [b, l, d]), both(rand, [b, l, d])];
    const deltaBias = both(rand, [d], () => uniform(rand, -3, 0));
    const A = both(rand, [d, n], () => -Math.exp(uniform(rand, -1, 1.5)));
    const [B, C] = [both(rand, [b, l, n]), both(rand, [b, l, n])];
    const D = both(rand, [d]);
    const state = both(rand, [b, d, n]);
    const dy = both(rand, [b, l, d]);
    const grads = [both(rand, [d]), both(rand, [d, n]), both(rand, [d])];
    const on = (i: 0 | 1) => {
      const be = i === 0 ? cpu : (gpu as Backend);
      const args = { u: u[i], delta: delta[i], deltaBias: deltaBias[i], A: A[i], B: B[i], C: C[i] };
      const g = { deltaBias: grads[0][i], ALog: grads[1][i], D: grads[2][i] };
      return be.training.selectiveScanBackward({ ...args, D: D[i], z: z[i], state: state[i] }, dy[i], g);
    };
    const [want, got] = [on(0), on(1)];
    const c = checker(t);
    for (const key of ['du', 'dDelta', 'dz', 'dB', 'dC'] as const) await c.same(key, want[key], got[key]);
    for (const [k, name] of ['deltaBias', 'ALog', 'D'].entries())
      await c.same(name, grads[k][0], grads[k][1]);
    await c.same('state (unchanged)', state[0], state[1]);
    c.done();
  });
}

// [b, l, h, p, g, n, lc, dtMax, sliced]: a finite dtMax clamps part of Δ.
for (const [b, l, h, p, g, n, lc, dtMax, sliced] of [
  [2, 21, 4, 3, 2, 5, 4, Number.POSITIVE_INFINITY, false],
  [1, 37, 2, 70, 1, 4, 6, 0.4, false],
  [2, 11, 3, 2, 3, 8, 32, Number.POSITIVE_INFINITY, false],
  [2, 50, 4, 16, 2, 32, 8, 0.6, false],
  [3, 19, 4, 8, 2, 8, 8, 0.6, true],
] as const) {
  const name = `ssdBackward b=${b} l=${l} h=${h} p=${p} g=${g} n=${n} chunk=${lc} dtMax=${dtMax}${sliced ? ' in batch slices' : ''}`;
  test(name, { skip }, async (t) => {
    const rand = rngFor(t);
    chunkLength(t, lc);
    if (sliced) oneRowSlices(t);
    const dtMin = 0.01;
    const x = both(rand, [b, l, h * p]);
    const dtData = Float32Array.from({ length: b * l * h }, () => normal(rand));
    const dt: [Tensor, Tensor] = [cpu.upload(dtData, [b, l, h]), (gpu as Backend).upload(dtData, [b, l, h])];
    const biasData = Float32Array.from({ length: h }, () => uniform(rand, -2, 0));
    const dtBias: [Tensor, Tensor] = [cpu.upload(biasData, [h]), (gpu as Backend).upload(biasData, [h])];
    const clamped = dtData.filter((v, i) => softplus(v + biasData[i % h]) > dtMax).length;
    t.diagnostic(`${clamped} of ${b * l * h} Δ clamped at dtMax`);
    if (dtMax < Number.POSITIVE_INFINITY) assert.ok(clamped > 0, 'the clamp case clamps nothing');
    const A = both(rand, [h], () => -Math.exp(uniform(rand, -1, 1.5)));
    const [B, C] = [both(rand, [b, l, g * n]), both(rand, [b, l, g * n])];
    const D = both(rand, [h]);
    const state = both(rand, [b, h, p, n]);
    const dy = both(rand, [b, l, h * p]);
    const grads = [both(rand, [h]), both(rand, [h]), both(rand, [h])];
    const on = (i: 0 | 1) => {
      const be = i === 0 ? cpu : (gpu as Backend);
      const args = { x: x[i], dt: dt[i], dtBias: dtBias[i], dtLimit: [dtMin, dtMax] as const, A: A[i] };
      const gr = { dtBias: grads[0][i], ALog: grads[1][i], D: grads[2][i] };
      return be.training.ssdBackward(
        { ...args, B: B[i], C: C[i], D: D[i], state: state[i], chunkSize: 8 },
        dy[i],
        gr,
      );
    };
    const [want, got] = [on(0), on(1)];
    const c = checker(t);
    for (const key of ['dx', 'ddt', 'dB', 'dC'] as const) await c.same(key, want[key], got[key]);
    for (const [k, name] of ['dtBias', 'ALog', 'D'].entries()) await c.same(name, grads[k][0], grads[k][1]);
    await c.same('state (unchanged)', state[0], state[1]);
    c.done();
  });
}

// Inputs as the models pass them: column views of one projection output (Backend.split), which
// the kernels read through dense copies or aligned bindings.
test('selectiveScanBackward with z, B, C as split views', { skip }, async (t) => {
  const rand = rngFor(t);
  chunkLength(t, 4);
  const [b, l, d, n, r] = [2, 19, 7, 5, 3];
  const [u, delta, dy] = [both(rand, [b, l, d]), both(rand, [b, l, d]), both(rand, [b, l, d])];
  const xz = both(rand, [b, l, 2 * d]);
  const dbc = both(rand, [b, l, r + 2 * n]);
  const deltaBias = both(rand, [d], () => uniform(rand, -3, 0));
  const A = both(rand, [d, n], () => -Math.exp(uniform(rand, -1, 1.5)));
  const [D, state] = [both(rand, [d]), both(rand, [b, d, n])];
  const grads = [both(rand, [d]), both(rand, [d, n]), both(rand, [d])];
  const on = (i: 0 | 1) => {
    const be = i === 0 ? cpu : (gpu as Backend);
    const [, z] = be.split(xz[i], [d, d]);
    const [, B, C] = be.split(dbc[i], [r, n, n]);
    const rest = { deltaBias: deltaBias[i], A: A[i], D: D[i], state: state[i] };
    const g = { deltaBias: grads[0][i], ALog: grads[1][i], D: grads[2][i] };
    return be.training.selectiveScanBackward({ u: u[i], delta: delta[i], B, C, z, ...rest }, dy[i], g);
  };
  const [want, got] = [on(0), on(1)];
  const c = checker(t);
  for (const key of ['du', 'dDelta', 'dz', 'dB', 'dC'] as const) await c.same(key, want[key], got[key]);
  for (const [k, name] of ['deltaBias', 'ALog', 'D'].entries()) await c.same(name, grads[k][0], grads[k][1]);
  c.done();
});

test('ssdBackward with x, B, C, dt as split views', { skip }, async (t) => {
  const rand = rngFor(t);
  chunkLength(t, 5);
  const [b, l, h, p, g, n] = [2, 17, 4, 3, 2, 6];
  const xbcdt = both(rand, [b, l, h * p + 2 * g * n + h]);
  const dtBias = both(rand, [h], () => uniform(rand, -2, 0));
  const A = both(rand, [h], () => -Math.exp(uniform(rand, -1, 1.5)));
  const [D, state, dy] = [both(rand, [h]), both(rand, [b, h, p, n]), both(rand, [b, l, h * p])];
  const grads = [both(rand, [h]), both(rand, [h]), both(rand, [h])];
  const on = (i: 0 | 1) => {
    const be = i === 0 ? cpu : (gpu as Backend);
    const [x, B, C, dt] = be.split(xbcdt[i], [h * p, g * n, g * n, h]);
    const rest = { dtBias: dtBias[i], dtLimit: [0, Number.POSITIVE_INFINITY] as const, A: A[i], D: D[i] };
    const gr = { dtBias: grads[0][i], ALog: grads[1][i], D: grads[2][i] };
    return be.training.ssdBackward({ x, B, C, dt, ...rest, state: state[i], chunkSize: 8 }, dy[i], gr);
  };
  const [want, got] = [on(0), on(1)];
  const c = checker(t);
  for (const key of ['dx', 'ddt', 'dB', 'dC'] as const) await c.same(key, want[key], got[key]);
  for (const [k, name] of ['dtBias', 'ALog', 'D'].entries()) await c.same(name, grads[k][0], grads[k][1]);
  c.done();
});
