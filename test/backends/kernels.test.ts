// The CPU kernels against their float64 reference twins (src/ssm/reference, src/nn/reference) on
// fresh random inputs, with initial states and final states; each test prints the seed and the
// largest relative difference. Inputs are rounded to float32 first so both sides see the same.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { causalConv1d } from '../../src/backends/cpu/conv1d.ts';
import { addRmsNorm, gatedRmsNorm } from '../../src/backends/cpu/norm.ts';
import { selectiveScan } from '../../src/backends/cpu/selectiveScan.ts';
import { ssdChunked, ssdRecurrent } from '../../src/backends/cpu/ssd.ts';
import { softplus } from '../../src/nn/activations.ts';
import { causalConv1dRef, gatedRmsNormRef, rmsNormRef } from '../../src/nn/reference.ts';
import { selectiveScanParallel, selectiveScanSequential } from '../../src/ssm/reference/selectiveScan.ts';
import { ssdChunked as ssdChunkedRef, ssdSequential } from '../../src/ssm/reference/ssd.ts';
import { normal, type Rand, relDiff, rngFor, uniform } from '../helpers/random.ts';

const TOL = 1e-5; // float32 storage against float64

/** A random float32 array and its float64 copy (same values). */
function pair(rand: Rand, length: number, draw = () => normal(rand)): [Float32Array, Float64Array] {
  const f32 = Float32Array.from({ length }, draw);
  return [f32, Float64Array.from(f32)];
}

function check(t: { diagnostic(msg: string): void }, what: string, got: Float32Array, want: Float64Array) {
  const diff = relDiff(Float64Array.from(got), want);
  t.diagnostic(`${what}: max rel diff ${diff.toExponential(2)}`);
  assert.ok(diff < TOL, `${what} differs by ${diff}`);
}

/** Positions [from, to) of a (b, l, w) array as a (b, to − from, w) array. */
function cut(x: Float32Array, b: number, l: number, w: number, from: number, to: number): Float32Array {
  const out = new Float32Array(b * (to - from) * w);
  for (let bi = 0; bi < b; bi++)
    out.set(x.subarray((bi * l + from) * w, (bi * l + to) * w), bi * (to - from) * w);
  return out;
}

/** Writes a (b, len, w) piece into positions [from, from + len) of a (b, l, w) array. */
function paste(into: Float32Array, piece: Float32Array, b: number, l: number, w: number, from: number): void {
  const len = piece.length / (b * w);
  for (let bi = 0; bi < b; bi++)
    into.set(piece.subarray(bi * len * w, (bi + 1) * len * w), (bi * l + from) * w);
}

test('selectiveScan = reference sequential and parallel scans, with states', (t) => {
  const rand = rngFor(t);
  const [b, l, d, n] = [2, 37, 6, 5];
  const [u, u64] = pair(rand, b * l * d);
  const [delta, delta64] = pair(rand, b * l * d);
  const [deltaBias, deltaBias64] = pair(rand, d, () => uniform(rand, -4, -1));
  const [A, A64] = pair(rand, d * n, () => -Math.exp(uniform(rand, -1, 2)));
  const [B, B64] = pair(rand, b * l * n);
  const [C, C64] = pair(rand, b * l * n);
  const [D, D64] = pair(rand, d);
  const [z, z64] = pair(rand, b * l * d);
  const [h0, h064] = pair(rand, b * d * n);
  const want = {
    ...{ b, l, d, n, u: u64, delta: delta64, A: A64, B: B64, C: C64, D: D64, z: z64 },
    ...{ deltaBias: deltaBias64, deltaSoftplus: true, h0: h064 },
  };
  const y = new Float32Array(b * l * d);
  const state = h0.slice();
  selectiveScan({ y, u, delta, deltaBias, A, B, C, D, z, state }, b, l, d, n);
  for (const [name, ref] of [
    ['sequential', selectiveScanSequential(want)],
    ['parallel', selectiveScanParallel(want)],
  ] as const) {
    check(t, `y vs ${name}`, y, ref.y);
    check(t, `final state vs ${name}`, state, ref.hLast);
  }
});

test('selectiveScan: pieces through the state (and one token at a time) = one pass', (t) => {
  const rand = rngFor(t);
  const [b, l, d, n] = [2, 11, 4, 3];
  const r = (len: number) => Float32Array.from({ length: len }, () => normal(rand));
  const [u, delta, B, C, z] = [r(b * l * d), r(b * l * d), r(b * l * n), r(b * l * n), r(b * l * d)];
  const A = Float32Array.from({ length: d * n }, () => -Math.exp(normal(rand)));
  const [deltaBias, D] = [r(d), r(d)];
  const run = (from: number, to: number, state: Float32Array) => {
    const y = new Float32Array(b * (to - from) * d);
    const inD = (x: Float32Array) => cut(x, b, l, d, from, to);
    const inN = (x: Float32Array) => cut(x, b, l, n, from, to);
    const args = { y, u: inD(u), delta: inD(delta), deltaBias, A, B: inN(B), C: inN(C), D, z: inD(z), state };
    selectiveScan(args, b, to - from, d, n);
    return y;
  };
  const whole = new Float32Array(b * d * n);
  const yWhole = run(0, l, whole);
  for (const cuts of [[0, 4, l], Array.from({ length: l + 1 }, (_, i) => i)]) {
    const state = new Float32Array(b * d * n);
    const joined = new Float32Array(b * l * d);
    for (let i = 0; i + 1 < cuts.length; i++)
      paste(joined, run(cuts[i], cuts[i + 1], state), b, l, d, cuts[i]);
    check(t, `y in ${cuts.length - 1} pieces`, joined, Float64Array.from(yWhole));
    check(t, `state in ${cuts.length - 1} pieces`, state, Float64Array.from(whole));
  }
});

for (const [kernel, q, l, dtMax] of [
  [ssdChunked, 8, 37, Number.POSITIVE_INFINITY],
  [ssdChunked, 16, 16, 0.05],
  [ssdChunked, 64, 5, Number.POSITIVE_INFINITY],
  [ssdChunked, 4, 1, Number.POSITIVE_INFINITY],
  [ssdRecurrent, 0, 9, 0.05],
  [ssdRecurrent, 0, 1, Number.POSITIVE_INFINITY],
] as const) {
  test(`${kernel.name} (chunk ${q}, length ${l}, dt max ${dtMax}) = reference sequential and chunked, with states`, (t) => {
    const rand = rngFor(t);
    const [b, h, p, g, n] = [2, 4, 3, 2, 5];
    const [x, x64] = pair(rand, b * l * h * p);
    const [dt, dt64raw] = pair(rand, b * l * h);
    const [dtBias, dtBias64] = pair(rand, h, () => uniform(rand, -3, 0));
    const [A, A64] = pair(rand, h, () => -Math.exp(uniform(rand, -1, 2)));
    const [B, B64] = pair(rand, b * l * g * n);
    const [C, C64] = pair(rand, b * l * g * n);
    const [D, D64] = pair(rand, h);
    const [h0, h064] = pair(rand, b * h * p * n);
    const dtMin = 0.001;
    const dt64 = dt64raw.map((v, i) => Math.min(Math.max(softplus(v + dtBias64[i % h]), dtMin), dtMax));
    const y = new Float32Array(b * l * h * p);
    const state = h0.slice();
    kernel({ y, x, dt, dtBias, A, B, C, D, state }, { b, l, h, p, g, n, q, dtMin, dtMax });
    const inputs = { b, l, h, p, g, n, x: x64, dt: dt64, A: A64, B: B64, C: C64, D: D64, h0: h064 };
    for (const [name, ref] of [
      ['sequential', ssdSequential(inputs)],
      ['chunked', ssdChunkedRef(inputs, 7)],
    ] as const) {
      check(t, `y vs ${name}`, y, ref.y);
      check(t, `final state vs ${name}`, state, ref.hLast);
    }
  });
}

test('causalConv1d = reference (explicit left padding), whole and one token at a time', (t) => {
  const rand = rngFor(t);
  const [b, l, c, w] = [2, 9, 5, 4];
  const [x, x64] = pair(rand, b * l * c);
  const [weight, weight64] = pair(rand, c * w);
  const [bias, bias64] = pair(rand, c);
  const [history, history64] = pair(rand, b * (w - 1) * c); // (b, w-1, c)
  const state = new Float32Array(b * c * (w - 1)); // (b, c, w-1): the kernel's layout of the same history
  for (let bi = 0; bi < b; bi++) {
    for (let j = 0; j < w - 1; j++) {
      for (let ci = 0; ci < c; ci++)
        state[(bi * c + ci) * (w - 1) + j] = history[(bi * (w - 1) + j) * c + ci];
    }
  }
  for (const applySilu of [false, true]) {
    const y = new Float32Array(b * l * c);
    causalConv1d(y, x, weight, bias, state.slice(), applySilu, b, l, c, w);
    check(
      t,
      `y (silu ${applySilu})`,
      y,
      causalConv1dRef(x64, history64, weight64, bias64, applySilu, b, l, c, w),
    );
  }
  const y = new Float32Array(b * l * c);
  const whole = state.slice();
  causalConv1d(y, x, weight, null, whole, false, b, l, c, w);
  const stepState = state.slice();
  const stepped = new Float32Array(b * l * c);
  for (let ti = 0; ti < l; ti++) {
    const yt = new Float32Array(b * c);
    causalConv1d(yt, cut(x, b, l, c, ti, ti + 1), weight, null, stepState, false, b, 1, c, w);
    paste(stepped, yt, b, l, c, ti);
  }
  check(t, 'y token by token', stepped, Float64Array.from(y));
  check(t, 'final state token by token', stepState, Float64Array.from(whole));
  for (let bi = 0; bi < b; bi++) {
    for (let ci = 0; ci < c; ci++) {
      for (let j = 0; j < w - 1; j++) {
        assert.equal(
          whole[(bi * c + ci) * (w - 1) + j],
          x[(bi * l + l - (w - 1) + j) * c + ci],
          'state = last inputs',
        );
      }
    }
  }
});

test('addRmsNorm and gatedRmsNorm (groups, both gate orders) = reference', (t) => {
  const rand = rngFor(t);
  const [rows, c, eps] = [3, 24, 1e-5];
  const [x, x64] = pair(rand, rows * c);
  const [res, res64] = pair(rand, rows * c);
  const [weight, weight64] = pair(rand, c);
  const out = new Float32Array(rows * c);
  const residual = res.slice();
  addRmsNorm(out, residual, x, true, weight, eps, rows, c);
  const sum64 = x64.map((v, i) => v + res64[i]);
  check(t, 'residual', residual, sum64);
  check(t, 'normed', out, rmsNormRef(sum64, weight64, eps, c));
  const [z, z64] = pair(rand, rows * c);
  for (const groupSize of [c, c / 4]) {
    for (const normBeforeGate of [false, true]) {
      gatedRmsNorm(out, x, z, weight, eps, groupSize, normBeforeGate, rows, c);
      const want = gatedRmsNormRef(x64, z64, weight64, eps, groupSize, normBeforeGate);
      check(t, `gated (group ${groupSize}, norm before gate ${normBeforeGate})`, out, want);
    }
  }
});
