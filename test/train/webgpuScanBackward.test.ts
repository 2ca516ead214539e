// The WebGPU backward of the selective scan (Mamba) and of SSD (Mamba-2) against central finite
// differences of the float64 reference forwards (src/ssm/reference), of the loss Σ y·dy, on fresh
// random ragged shapes: several chunks (the chunk length forced short), odd widths, lane blocks
// that do not fill a workgroup, g < h, a nonzero initial state, Δ clamping active, parameter
// gradients pre-filled nonzero (the kernels add into them). Shapes are tiny: lavapipe is slow and
// the finite differences rerun the forward twice per input value.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { scanBackwardTuning } from '../../src/backends/webgpu/kernels/scanBackwardPasses.ts';
import type { WebGpuBackend } from '../../src/backends/webgpu/webgpuBackend.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import { softplus } from '../../src/nn/activations.ts';
import { selectiveScanSequential } from '../../src/ssm/reference/selectiveScan.ts';
import { ssdSequential } from '../../src/ssm/reference/ssd.ts';
import { webgpuBackend } from '../helpers/backends.ts';
import { normal, type Rand, relDiff, rngFor, uniform } from '../helpers/random.ts';

const TOL = 1e-4; // f32 kernels against float64 differences, relative to the largest gradient
const gpu = await webgpuBackend();
const skip = typeof gpu === 'string' ? gpu : false;

type Values = Record<string, Float64Array>;

/** Values drawn in f32 (what the GPU sees), kept as float64 for the reference. */
function draw(len: number, sample: () => number): Float64Array {
  return Float64Array.from(Float32Array.from({ length: len }, sample));
}

/** ∂loss/∂v for every value of every named input, by central differences. */
function numericGrads(loss: (v: Values) => number, values: Values): Values {
  const grads: Values = {};
  for (const [name, arr] of Object.entries(values)) {
    const g = new Float64Array(arr.length); // same shape as the input
    for (let i = 0; i < arr.length; i++) {
      const keep = arr[i];
      const eps = 1e-6 * Math.max(1, Math.abs(keep));
      arr[i] = keep + eps;
      const up = loss(values);
      arr[i] = keep - eps;
      const down = loss(values);
      arr[i] = keep;
      g[i] = (up - down) / (2 * eps);
    }
    grads[name] = g;
  }
  return grads;
}

const dot = (a: Float64Array, b: Float64Array) => a.reduce((s, v, i) => s + v * b[i], 0);
const up = (be: WebGpuBackend, v: Float64Array, shape: number[]) => be.upload(Float32Array.from(v), shape);

/** Compares got (read from the GPU, minus `before` for accumulated gradients) with want. */
function checker(t: { diagnostic(m: string): void }) {
  let worst = 0;
  return {
    async check(be: WebGpuBackend, what: string, got: Tensor, want: Float64Array, before?: Float64Array) {
      const read = Float64Array.from(await be.read(got));
      if (before) for (let i = 0; i < read.length; i++) read[i] -= before[i];
      const diff = relDiff(read, want);
      worst = Math.max(worst, diff);
      t.diagnostic(`${what}: max rel diff ${diff.toExponential(2)}`);
      assert.ok(diff < TOL, `${what} differs by ${diff}`);
    },
    done: () => t.diagnostic(`largest relative difference ${worst.toExponential(2)}`),
  };
}

function shortChunks(t: { after(fn: () => void): void }, histValues: number): void {
  scanBackwardTuning.histValues = histValues;
  t.after(() => {
    scanBackwardTuning.histValues = 256;
  });
}

// [b, l, d, n, lc]: lc = the chunk length forced (histValues = lc·n).
for (const [b, l, d, n, lc] of [
  [2, 23, 5, 3, 4],
  [1, 19, 70, 16, 8],
  [2, 9, 3, 2, 32],
] as const) {
  test(`selectiveScanBackward b=${b} l=${l} d=${d} n=${n} chunk=${lc}`, { skip }, async (t) => {
    const be = gpu as WebGpuBackend;
    const rand: Rand = rngFor(t);
    shortChunks(t, lc * n);
    const v: Values = {
      u: draw(b * l * d, () => normal(rand)), // (b, l, d)
      delta: draw(b * l * d, () => normal(rand)), // (b, l, d)
      z: draw(b * l * d, () => normal(rand)), // (b, l, d)
      B: draw(b * l * n, () => normal(rand)), // (b, l, n)
      C: draw(b * l * n, () => normal(rand)), // (b, l, n)
      deltaBias: draw(d, () => uniform(rand, -3, 0)), // (d)
      ALog: draw(d * n, () => uniform(rand, -1, 1.5)), // (d, n)
      D: draw(d, () => normal(rand)), // (d)
    };
    const h0 = draw(b * d * n, () => normal(rand)); // (b, d, n)
    const dy = draw(b * l * d, () => normal(rand)); // (b, l, d)
    const A = (x: Values) => x.ALog.map((a) => -Math.exp(a)); // (d, n)
    const loss = (x: Values) =>
      dot(
        selectiveScanSequential({
          ...{ b, l, d, n, u: x.u, delta: x.delta, z: x.z, B: x.B, C: x.C, D: x.D },
          ...{ A: A(x), deltaBias: x.deltaBias, deltaSoftplus: true, h0 },
        }).y,
        dy,
      );
    const want = numericGrads(loss, v);
    const Af = Float64Array.from(Float32Array.from(A(v)));
    const pre = {
      deltaBias: draw(d, () => normal(rand)),
      ALog: draw(d * n, () => normal(rand)),
      D: draw(d, () => normal(rand)),
    };
    const grads = {
      deltaBias: up(be, pre.deltaBias, [d]),
      ALog: up(be, pre.ALog, [d, n]),
      D: up(be, pre.D, [d]),
    };
    const state = up(be, h0, [b, d, n]);
    const out = be.training.selectiveScanBackward(
      {
        u: up(be, v.u, [b, l, d]),
        delta: up(be, v.delta, [b, l, d]),
        deltaBias: up(be, v.deltaBias, [d]),
        A: up(be, Af, [d, n]),
        B: up(be, v.B, [b, l, n]),
        C: up(be, v.C, [b, l, n]),
        D: up(be, v.D, [d]),
        z: up(be, v.z, [b, l, d]),
        state,
      },
      up(be, dy, [b, l, d]),
      grads,
    );
    const c = checker(t);
    await c.check(be, 'du', out.du, want.u);
    await c.check(be, 'dDelta', out.dDelta, want.delta);
    await c.check(be, 'dz', out.dz, want.z);
    await c.check(be, 'dB', out.dB, want.B);
    await c.check(be, 'dC', out.dC, want.C);
    await c.check(be, 'deltaBias', grads.deltaBias, want.deltaBias, pre.deltaBias);
    await c.check(be, 'ALog', grads.ALog, want.ALog, pre.ALog);
    await c.check(be, 'D', grads.D, want.D, pre.D);
    await c.check(be, 'state unchanged', state, h0);
    c.done();
  });
}

// [b, l, h, p, g, n, lc, dtMax]: a finite dtMax clamps part of Δ.
for (const [b, l, h, p, g, n, lc, dtMax] of [
  [2, 21, 4, 3, 2, 5, 4, Number.POSITIVE_INFINITY],
  [1, 17, 2, 70, 1, 4, 6, 0.4],
  [2, 11, 3, 2, 3, 8, 32, Number.POSITIVE_INFINITY],
] as const) {
  test(`ssdBackward b=${b} l=${l} h=${h} p=${p} g=${g} n=${n} chunk=${lc} dtMax=${dtMax}`, {
    skip,
  }, async (t) => {
    const be = gpu as WebGpuBackend;
    const rand: Rand = rngFor(t);
    shortChunks(t, lc * n);
    const dtMin = 0.01;
    const v: Values = {
      x: draw(b * l * h * p, () => normal(rand)), // (b, l, h·p)
      dt: draw(b * l * h, () => normal(rand)), // (b, l, h)
      B: draw(b * l * g * n, () => normal(rand)), // (b, l, g·n)
      C: draw(b * l * g * n, () => normal(rand)), // (b, l, g·n)
      dtBias: draw(h, () => uniform(rand, -2, 0)), // (h)
      ALog: draw(h, () => uniform(rand, -1, 1.5)), // (h)
      D: draw(h, () => normal(rand)), // (h)
    };
    const h0 = draw(b * h * p * n, () => normal(rand)); // (b, h, p, n)
    const dy = draw(b * l * h * p, () => normal(rand)); // (b, l, h·p)
    const A = (x: Values) => x.ALog.map((a) => -Math.exp(a)); // (h)
    const delta = (x: Values) =>
      x.dt.map((raw, i) => Math.min(Math.max(softplus(raw + x.dtBias[i % h]), dtMin), dtMax)); // (b, l, h)
    const loss = (x: Values) =>
      dot(
        ssdSequential({ b, l, h, p, g, n, x: x.x, B: x.B, C: x.C, D: x.D, dt: delta(x), A: A(x), h0 }).y,
        dy,
      );
    const clamped = delta(v).filter((d) => d === dtMax).length;
    t.diagnostic(`${clamped} of ${b * l * h} Δ clamped at dtMax`);
    if (dtMax < Number.POSITIVE_INFINITY) assert.ok(clamped > 0, 'the clamp case clamps nothing');
    const want = numericGrads(loss, v);
    const Af = Float64Array.from(Float32Array.from(A(v)));
    const pre = {
      dtBias: draw(h, () => normal(rand)),
      ALog: draw(h, () => normal(rand)),
      D: draw(h, () => normal(rand)),
    };
    const grads = { dtBias: up(be, pre.dtBias, [h]), ALog: up(be, pre.ALog, [h]), D: up(be, pre.D, [h]) };
    const state = up(be, h0, [b, h, p, n]);
    const out = be.training.ssdBackward(
      {
        x: up(be, v.x, [b, l, h * p]),
        dt: up(be, v.dt, [b, l, h]),
        dtBias: up(be, v.dtBias, [h]),
        dtLimit: [dtMin, dtMax],
        A: up(be, Af, [h]),
        B: up(be, v.B, [b, l, g * n]),
        C: up(be, v.C, [b, l, g * n]),
        D: up(be, v.D, [h]),
        state,
        chunkSize: 8,
      },
      up(be, dy, [b, l, h * p]),
      grads,
    );
    const c = checker(t);
    await c.check(be, 'dx', out.dx, want.x);
    await c.check(be, 'ddt', out.ddt, want.dt);
    await c.check(be, 'dB', out.dB, want.B);
    await c.check(be, 'dC', out.dC, want.C);
    await c.check(be, 'dtBias', grads.dtBias, want.dtBias, pre.dtBias);
    await c.check(be, 'ALog', grads.ALog, want.ALog, pre.ALog);
    await c.check(be, 'D', grads.D, want.D, pre.D);
    await c.check(be, 'state unchanged', state, h0);
    c.done();
  });
}
