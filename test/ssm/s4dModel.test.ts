// The Mamba block with an S4D layer (config ssm_layer "s4d", src/models/s4dMixer.ts) inside
// CausalLM on the CPU: the config field round-trips and is checked; the parameter table; a
// sequence read at once (S4D's convolution form) = read token by token with the state (its
// recurrence); lossAndGrads with explicit targets = the cross-entropy of forward's logits at the
// counted positions, and its gradients = central differences of that loss along one random
// direction per parameter (a wiring check in float32: each op's backward is checked in float64
// by finite differences beside its kernel, test/ssm/s4d.test.ts and test/train/cpuOps.test.ts).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CpuBackend } from '../../src/backends/cpu/cpuBackend.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import { CausalLM } from '../../src/models/causalLM.ts';
import { parseConfig, toHfConfigJson } from '../../src/models/config.ts';
import { initParameters } from '../../src/models/init.ts';
import { parameterShapes } from '../../src/models/parameters.ts';
import { normal, relDiff, rngFor } from '../helpers/random.ts';

const EXACT = 1e-5; // float32 model, two summation orders (FFT against the recurrence)
const LOSS = 1e-6; // the same float32 loss computed two ways
// Central differences of a float32 loss (~2.5, one rounding ~2.4e-7) at h = 1e-2 along a unit
// direction: rounding error up to 2 · 2.4e-7 / 2h ≈ 2.4e-5 (absolute, FD_ABS holds 4× that), plus
// the curvature term h²·|L'''|/6, under DIRECTIONAL of the slope.
const DIRECTIONAL = 1e-2;
const FD_ABS = 1e-4;

const be = new CpuBackend();
const config = parseConfig(
  {
    model_type: 'mamba',
    hidden_size: 16,
    num_hidden_layers: 2,
    vocab_size: 11,
    state_size: 4,
    ssm_layer: 's4d',
  },
  'test config',
);

function model(seed: number): { lm: CausalLM; params: Map<string, Float32Array> } {
  const params = initParameters(config, seed);
  return { lm: new CausalLM(config, be, (name) => params.get(name)), params };
}

test('s4d config: ssm_layer round-trips, is checked, and gives the S4D parameters', () => {
  assert.equal(config.family === 'mamba' && config.ssmLayer, 's4d');
  assert.deepEqual(parseConfig(toHfConfigJson(config), 'again'), config);
  assert.throws(() => parseConfig({ model_type: 'mamba', ssm_layer: 's5' }, 'bad'), /unknown ssm_layer "s5"/);
  const shapes = parameterShapes(config);
  const mixer = [...shapes.keys()]
    .filter((k) => k.startsWith('backbone.layers.0.mixer.'))
    .map((k) => k.slice(24));
  assert.deepEqual(mixer, [
    'in_proj.weight',
    'conv1d.weight',
    'conv1d.bias',
    'log_dt',
    'A_log',
    'B',
    'C',
    'D',
    'out_proj.weight',
  ]);
  assert.deepEqual(shapes.get('backbone.layers.1.mixer.B'), [32, 4]);
});

test('s4d model: a sequence at once (convolution) = token by token with the state (recurrence)', async (t) => {
  const rand = rngFor(t);
  const { lm } = model(Math.floor(rand() * 1e9));
  const [b, l] = [2, 40];
  const ids = Int32Array.from({ length: b * l }, () => Math.floor(rand() * config.vocabSize));
  const whole = await be.read(lm.forward(ids, b).logits); // (b, l, vocab)
  const state = lm.newState(b);
  const v = config.vocabSize;
  const stepped = new Float32Array(b * l * v); // (b, l, vocab)
  for (let i = 0; i < l; i++) {
    const logits = await be.read(
      lm.step(
        Int32Array.from({ length: b }, (_, bi) => ids[bi * l + i]),
        state,
      ),
    ); // (b, 1, vocab)
    for (let bi = 0; bi < b; bi++) stepped.set(logits.subarray(bi * v, (bi + 1) * v), (bi * l + i) * v);
  }
  const diff = relDiff(stepped, whole);
  t.diagnostic(`step by step vs at once: largest relative difference ${diff.toExponential(2)}`);
  assert.ok(diff <= EXACT, `relative difference ${diff} > ${EXACT}`);
});

test('s4d model: lossAndGrads with explicit targets: the loss, and gradients along random directions', async (t) => {
  const rand = rngFor(t);
  const { lm, params } = model(Math.floor(rand() * 1e9));
  const [b, l, v] = [2, 36, config.vocabSize];
  const ids = Int32Array.from({ length: b * l }, () => Math.floor(rand() * v));
  const targets = Int32Array.from({ length: b * l }, () => (rand() < 0.2 ? Math.floor(rand() * v) : -1));
  targets[l - 1] = 3; // at least one counted target per sequence
  const zeros = () => new Map([...lm.parameters()].map(([name, p]) => [name, be.zeros(p.shape)]));
  const grads = zeros();
  const loss = (await be.read(lm.lossAndGrads(ids, b, grads, targets)))[0];
  // The loss from forward's logits: mean −log softmax at the counted positions.
  const logits = await be.read(lm.forward(ids, b).logits); // (b, l, vocab)
  let sum = 0;
  let count = 0;
  targets.forEach((target, i) => {
    if (target === -1) return;
    const row = Array.from(logits.subarray(i * v, (i + 1) * v));
    const max = Math.max(...row);
    sum += Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0)) + max - row[target];
    count++;
  });
  const lossDiff = Math.abs(loss - sum / count) / (sum / count);
  t.diagnostic(`loss ${loss} vs ${sum / count}: relative difference ${lossDiff.toExponential(2)}`);
  assert.ok(lossDiff <= LOSS);
  // Directional derivatives: each parameter moved along a unit direction by ±h (A refreshed).
  const h = 1e-2;
  let worst = 0;
  for (const [name, p] of lm.parameters()) {
    const base = params.get(name)!;
    const dir = Float32Array.from(base, () => normal(rand));
    const norm = Math.hypot(...dir);
    const moved = async (sign: number) => {
      be.training.zero(p);
      be.training.accumulate(
        p,
        be.upload(
          base.map((x, i) => x + (sign * h * dir[i]) / norm),
          p.shape,
        ),
      );
      lm.refreshDerived();
      return (await be.read(lm.lossAndGrads(ids, b, zeros(), targets)))[0];
    };
    const fd = ((await moved(1)) - (await moved(-1))) / (2 * h);
    be.training.zero(p);
    be.training.accumulate(p, be.upload(base, p.shape));
    lm.refreshDerived();
    const g = (await be.read(grads.get(name) as Tensor)) as Float32Array;
    const analytic = g.reduce((s, x, i) => s + (x * dir[i]) / norm, 0);
    const diff = Math.abs(analytic - fd) / (Math.abs(fd) + FD_ABS / DIRECTIONAL);
    worst = Math.max(worst, diff);
    assert.ok(diff <= DIRECTIONAL, `${name}: slope ${analytic} vs central difference ${fd}`);
  }
  t.diagnostic(
    `largest |slope − difference| / (|difference| + ${FD_ABS / DIRECTIONAL}): ${worst.toExponential(2)}`,
  );
});
