// The CPU TrainingOps (except the scan and SSD backward, tested beside their kernels) on tiny random
// shapes: every gradient against float64 finite differences of Σ dy · forward (test/helpers/
// finiteDiff.ts), parameter gradients added onto random existing values (tied weights, accumulation),
// inputs taken from split; linearBackward also against float64 products at sizes that reach the
// packed kernel, the worker pool and more than one block of tokens and outputs; AdamW against a
// float64 transcription of torch.optim.AdamW over 3 steps; the plain ops (zero, accumulate, concat,
// sumOfSquares, negExp) against direct loops.

import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { CpuBackend } from '../../src/backends/cpu/cpuBackend.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import { causalConv1dRef, gatedRmsNormRef, rmsNormRef } from '../../src/nn/reference.ts';
import { checkGrad } from '../helpers/finiteDiff.ts';
import { normal, type Rand, relDiff, rngFor } from '../helpers/random.ts';

const TOL = 1e-4; // float32 kernel against float64 finite differences
const EXACT = 1e-6; // float32 kernel against the same math in float64
process.env['MAMBA_TS_THREADS'] = '3';

const be = new CpuBackend();
const ops = be.training;

/** Random float32-representable values, so that the kernel and the float64 forward see the same inputs. */
const draw = (rand: Rand, len: number, scale = 1) =>
  Float64Array.from({ length: len }, () => Math.fround(scale * normal(rand)));
/**
 * Scale of pre-filled parameter gradients: small so that the f32 sum onto them keeps a small
 * gradient's low bits, nonzero so that `=` instead of `+=` fails.
 */
const PREFILL = 1e-3;
const up = (a: Float64Array, shape: number[]) => be.upload(Float32Array.from(a), shape);
const read = async (t: Tensor) => Float64Array.from(await be.read(t));
const minus = (a: Float64Array, b: Float64Array) => a.map((v, i) => v - b[i]);

function close(t: TestContext, label: string, got: ArrayLike<number>, want: ArrayLike<number>, tol: number) {
  const diff = relDiff(got, want);
  t.diagnostic(`${label}: largest relative difference ${diff.toExponential(2)}`);
  assert.ok(diff <= tol, `${label}: relative difference ${diff} > ${tol}`);
}

/** y (t, n) = x (t, k) · Wᵀ + b in float64. */
function linearRef(
  x: Float64Array,
  W: Float64Array,
  b: Float64Array | null,
  t: number,
  n: number,
  k: number,
) {
  const y = new Float64Array(t * n); // (t, n)
  for (let i = 0; i < t; i++) {
    for (let j = 0; j < n; j++) {
      let s = b ? b[j] : 0;
      for (let p = 0; p < k; p++) s += x[i * k + p] * W[j * k + p];
      y[i * n + j] = s;
    }
  }
  return y;
}

test('linearBackward: dx, dW and db against finite differences, added onto existing gradients', async (t) => {
  const rand = rngFor(t);
  const [b, l, n, k, extra] = [2, 3, 5, 7, 3];
  for (const withBias of [false, true]) {
    const x = draw(rand, b * l * k);
    const W = draw(rand, n * k);
    const bias = draw(rand, n);
    const dy = draw(rand, b * l * n);
    const W0 = draw(rand, n * k, PREFILL);
    const b0 = draw(rand, n, PREFILL);
    // x as the first part of a split, as the models pass it
    const xWide = new Float64Array(b * l * (k + extra)); // (b, l, k + extra)
    for (let r = 0; r < b * l; r++) xWide.set(x.subarray(r * k, (r + 1) * k), r * (k + extra));
    const [xPart] = be.split(up(xWide, [b, l, k + extra]), [k, extra]);
    const grads = { weight: up(W0, [n, k]), bias: withBias ? up(b0, [n]) : null };
    const dx = ops.linearBackward(up(dy, [b, l, n]), xPart, up(W, [n, k]), grads, true);
    assert.ok(dx !== null);
    assert.deepEqual(dx.shape, [b, l, k]);
    const analytic: Record<string, Float64Array> = {
      x: await read(dx),
      W: minus(await read(grads.weight), W0),
    };
    if (grads.bias) analytic['bias'] = minus(await read(grads.bias), b0);
    checkGrad(t, {
      name: `linear bias=${withBias}`,
      inputs: { x, W, bias },
      forward: (v) => linearRef(v['x'], v['W'], withBias ? v['bias'] : null, b * l, n, k),
      analytic,
      dy,
      tol: TOL,
    });
    const again = { weight: up(W0, [n, k]), bias: null };
    assert.equal(
      ops.linearBackward(up(dy, [b * l, n]), up(x, [b * l, k]), up(W, [n, k]), again, false),
      null,
    );
    close(t, 'dW without dx', minus(await read(again.weight), W0), analytic['W'], EXACT);
  }
});

test('linearBackward: packed and threaded sizes against float64 products', async (t) => {
  const rand = rngFor(t);
  for (const [m, n, k] of [
    [1, 9, 5],
    [13, 17, 11],
    [64, 48, 40],
    [130, 96, 72],
    [2100, 2060, 3], // two blocks of tokens and of outputs
    [2050, 24, 20],
    [5, 2100, 8],
    [40, 24, 64],
    [300, 2100, 256], // transposes (and transposed sums) shared out over the threads
  ]) {
    const x = draw(rand, m * k);
    const W = draw(rand, n * k);
    const dy = draw(rand, m * n);
    const W0 = draw(rand, n * k, PREFILL);
    const b0 = draw(rand, n, PREFILL);
    const grads = { weight: up(W0, [n, k]), bias: up(b0, [n]) };
    const dx = ops.linearBackward(up(dy, [m, n]), up(x, [m, k]), up(W, [n, k]), grads);
    assert.ok(dx !== null);
    const wantDx = new Float64Array(m * k); // (m, k)
    const wantDw = Float64Array.from(W0); // (n, k)
    const wantDb = Float64Array.from(b0); // (n)
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        const g = dy[i * n + j];
        wantDb[j] += g;
        for (let p = 0; p < k; p++) {
          wantDx[i * k + p] += g * W[j * k + p];
          wantDw[j * k + p] += g * x[i * k + p];
        }
      }
    }
    close(t, `dx m=${m} n=${n} k=${k}`, await read(dx), wantDx, EXACT);
    close(t, `dW m=${m} n=${n} k=${k}`, await read(grads.weight), wantDw, EXACT);
    close(t, `db m=${m} n=${n} k=${k}`, await read(grads.bias), wantDb, EXACT);
  }
});

test('crossEntropy: loss and dLogits against finite differences, ignored targets, large logits', async (t) => {
  const rand = rngFor(t);
  const [rows, v] = [6, 5];
  const logits = draw(rand, rows * v, 3);
  const targets = Int32Array.from([2, -1, 0, 4, -1, 1]);
  const scale = 1 / 4;
  const lossRef = (x: Float64Array) => {
    let loss = 0;
    for (let r = 0; r < rows; r++) {
      if (targets[r] < 0) continue;
      const row = x.subarray(r * v, (r + 1) * v);
      const max = Math.max(...row);
      const logSum = max + Math.log(row.reduce((s, a) => s + Math.exp(a - max), 0));
      loss -= row[targets[r]] - logSum;
    }
    return Float64Array.of(scale * loss);
  };
  const ids = be.upload(targets, [2, 3]);
  for (const offset of [0, 1000]) {
    const x = logits.map((a) => Math.fround(a + offset));
    const { loss, dLogits } = ops.crossEntropy(up(x, [2, 3, v]), ids, scale);
    assert.deepEqual(loss.shape, [1]);
    close(t, `loss, logits + ${offset}`, await read(loss), lossRef(x), EXACT);
    const grad = await read(dLogits);
    for (const r of [1, 4])
      assert.ok(
        grad.subarray(r * v, (r + 1) * v).every((g) => g === 0),
        `row ${r} ignored`,
      );
    checkGrad(t, {
      name: `crossEntropy logits + ${offset}`,
      inputs: { logits: x },
      forward: (inputs) => lossRef(inputs['logits']),
      analytic: { logits: grad },
      dy: Float64Array.of(1),
      tol: TOL,
    });
  }
});

test('embeddingBackward: rows scattered onto existing values, repeated ids summed', async (t) => {
  const rand = rngFor(t);
  const [vocab, d] = [5, 4];
  const ids = Int32Array.from([3, 0, 3, 4, 3]);
  const table = draw(rand, vocab * d);
  const dy = draw(rand, ids.length * d);
  const before = draw(rand, vocab * d, PREFILL);
  const dWeight = up(before, [vocab, d]);
  ops.embeddingBackward(be.upload(ids, [1, ids.length]), up(dy, [1, ids.length, d]), dWeight);
  checkGrad(t, {
    name: 'embedding',
    inputs: { table },
    forward: (v) => {
      const y = new Float64Array(ids.length * d); // (t, d)
      for (const [i, id] of ids.entries()) y.set(v['table'].subarray(id * d, (id + 1) * d), i * d);
      return y;
    },
    analytic: { table: minus(await read(dWeight), before) },
    dy,
    tol: TOL,
  });
});

test('addRmsNormBackward: with and without the later gradient dSum', async (t) => {
  const rand = rngFor(t);
  const [rows, d, eps] = [4, 6, 1e-5];
  for (const withDSum of [false, true]) {
    const sum = draw(rand, rows * d);
    const weight = draw(rand, d);
    const dNormed = draw(rand, rows * d);
    const dSum = draw(rand, rows * d);
    const before = draw(rand, d, PREFILL);
    const dWeight = up(before, [d]);
    const dx = ops.addRmsNormBackward(
      up(dNormed, [2, 2, d]),
      withDSum ? up(dSum, [2, 2, d]) : null,
      up(sum, [2, 2, d]),
      up(weight, [d]),
      eps,
      dWeight,
    );
    checkGrad(t, {
      name: `addRmsNorm dSum=${withDSum}`,
      inputs: { sum, weight },
      forward: (v) => {
        const normed = rmsNormRef(v['sum'], v['weight'], eps, d);
        if (!withDSum) return normed;
        const both = new Float64Array(2 * rows * d); // (normed, sum)
        both.set(normed);
        both.set(v['sum'], rows * d);
        return both;
      },
      analytic: { sum: await read(dx), weight: minus(await read(dWeight), before) },
      dy: withDSum ? Float64Array.from([...dNormed, ...dSum]) : dNormed,
      tol: TOL,
    });
  }
});

test('causalConv1dBackward: with and without bias and SiLU, l below and above the width', async (t) => {
  const rand = rngFor(t);
  const [b, c, w] = [2, 3, 4];
  for (const [l, withBias, applySilu] of [
    [5, true, true],
    [5, false, false],
    [3, false, true],
    [6, true, false],
  ] as const) {
    const x = draw(rand, b * l * c);
    const weight = draw(rand, c * w);
    const bias = draw(rand, c);
    const dy = draw(rand, b * l * c);
    const [w0, b0] = [draw(rand, c * w), draw(rand, c)];
    const grads = { weight: up(w0, [c, w]), bias: withBias ? up(b0, [c]) : null };
    const dx = ops.causalConv1dBackward(
      up(dy, [b, l, c]),
      up(x, [b, l, c]),
      up(weight, [c, w]),
      withBias ? up(bias, [c]) : null,
      applySilu,
      grads,
    );
    const analytic: Record<string, Float64Array> = {
      x: await read(dx),
      weight: minus(await read(grads.weight), w0),
    };
    if (grads.bias) analytic['bias'] = minus(await read(grads.bias), b0);
    const history = new Float64Array(b * (w - 1) * c); // (b, w-1, c) zeros
    checkGrad(t, {
      name: `conv1d l=${l} bias=${withBias} silu=${applySilu}`,
      inputs: { x, weight, bias },
      forward: (v) =>
        causalConv1dRef(v['x'], history, v['weight'], withBias ? v['bias'] : null, applySilu, b, l, c, w),
      analytic,
      dy,
      tol: TOL,
    });
  }
});

test('gatedRmsNormBackward: both gate orders, two groups, inputs from split', async (t) => {
  const rand = rngFor(t);
  const [rows, c, groupSize, eps] = [3, 8, 4, 1e-6];
  for (const normBeforeGate of [false, true]) {
    const y = draw(rand, rows * c);
    const z = draw(rand, rows * c, 2);
    const weight = draw(rand, c);
    const dOut = draw(rand, rows * c);
    const before = draw(rand, c, PREFILL);
    const dWeight = up(before, [c]);
    const yz = new Float64Array(2 * rows * c); // (rows, 2c): [y, z] per row, as from in_proj
    for (let r = 0; r < rows; r++) {
      yz.set(y.subarray(r * c, (r + 1) * c), 2 * r * c);
      yz.set(z.subarray(r * c, (r + 1) * c), (2 * r + 1) * c);
    }
    const [yPart, zPart] = be.split(up(yz, [1, rows, 2 * c]), [c, c]);
    const grad = ops.gatedRmsNormBackward(
      up(dOut, [1, rows, c]),
      yPart,
      zPart,
      up(weight, [c]),
      eps,
      groupSize,
      normBeforeGate,
      dWeight,
    );
    checkGrad(t, {
      name: `gatedRmsNorm normBeforeGate=${normBeforeGate}`,
      inputs: { y, z, weight },
      forward: (v) => gatedRmsNormRef(v['y'], v['z'], v['weight'], eps, groupSize, normBeforeGate),
      analytic: {
        y: await read(grad.dy),
        z: await read(grad.dz),
        weight: minus(await read(dWeight), before),
      },
      dy: dOut,
      tol: TOL,
    });
  }
});

test('adamw: three steps against a float64 transcription of torch.optim.AdamW', async (t) => {
  const rand = rngFor(t);
  const len = 37;
  const hyper = { lr: 0.01, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, gradScale: 0.5 };
  const p = draw(rand, len);
  const [param, m, v] = [up(p, [len]), be.zeros([len]), be.zeros([len])];
  const [wantP, wantM, wantV] = [Float64Array.from(p), new Float64Array(len), new Float64Array(len)];
  for (let step = 1; step <= 3; step++) {
    const grad = draw(rand, len);
    ops.adamw(param, up(grad, [len]), m, v, { ...hyper, step });
    const { lr, beta1, beta2, eps, weightDecay, gradScale } = hyper;
    for (let i = 0; i < len; i++) {
      const g = grad[i] * gradScale;
      wantP[i] -= lr * weightDecay * wantP[i];
      wantM[i] = beta1 * wantM[i] + (1 - beta1) * g;
      wantV[i] = beta2 * wantV[i] + (1 - beta2) * g * g;
      const mHat = wantM[i] / (1 - beta1 ** step);
      const vHat = wantV[i] / (1 - beta2 ** step);
      wantP[i] -= (lr * mHat) / (Math.sqrt(vHat) + eps);
    }
  }
  close(t, 'param', await read(param), wantP, EXACT);
  close(t, 'm', await read(m), wantM, EXACT);
  close(t, 'v', await read(v), wantV, EXACT);
});

test('zero, accumulate, concat, sumOfSquares, negExp', async (t) => {
  const rand = rngFor(t);
  const a = draw(rand, 12);
  const bArr = draw(rand, 12);
  const dst = up(a, [3, 4]);
  ops.accumulate(dst, up(bArr, [12]));
  close(
    t,
    'accumulate',
    await read(dst),
    a.map((v, i) => v + bArr[i]),
    EXACT,
  );
  ops.zero(dst);
  assert.ok((await read(dst)).every((v) => v === 0));
  const whole = up(a, [1, 3, 4]);
  const parts = be.split(whole, [1, 2, 1]);
  const joined = ops.concat(parts);
  assert.deepEqual(joined.shape, [1, 3, 4]);
  assert.deepEqual(await read(joined), a);
  const sum = ops.sumOfSquares([up(a, [12]), up(bArr, [3, 4])]);
  close(t, 'sumOfSquares', await read(sum), [[...a, ...bArr].reduce((s, v) => s + v * v, 0)], EXACT);
  const neg = be.zeros([12]);
  ops.negExp(up(a, [12]), neg);
  close(
    t,
    'negExp',
    await read(neg),
    a.map((v) => -Math.exp(v)),
    EXACT,
  );
});

test('checkGrad: a gradient off by a factor 1 + 1e-3 or with one wrong element fails', (t) => {
  const rand = rngFor(t);
  const x = draw(rand, 6);
  const dy = draw(rand, 6);
  const grad = x.map((v, i) => dy[i] * Math.cos(v)); // d Σ dy · sin(x)
  const check = (analytic: Float64Array) =>
    checkGrad(t, {
      name: 'sin',
      inputs: { x },
      forward: (v) => v['x'].map(Math.sin),
      analytic: { x: analytic },
      dy,
      tol: TOL,
    });
  assert.ok(check(grad) <= 1e-8);
  assert.throws(() => check(grad.map((g) => g * (1 + 1e-3))));
  assert.throws(() => check(grad.map((g, i) => (i === 3 ? g + 0.01 : g))));
});
