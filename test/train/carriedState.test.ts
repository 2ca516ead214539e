// Training from carried SSM states (CausalLM.lossAndGrads's ssmStates; MambaMixer.forwardSaving's
// ssm): the loss equals forward's from the same state, the states come back advanced as forward
// advances them, the gradients match central differences of the float32 loss on their largest
// entries (CPU; a coarse check, the op-level ones are tight) and differ from those of zero states;
// WebGPU's gradients equal the CPU's. Mamba-2 and S4D refuse a carried state in one line.

import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import type { Backend } from '../../src/backends/backend.ts';
import { CpuBackend } from '../../src/backends/cpu/cpuBackend.ts';
import type { CpuTensor } from '../../src/backends/cpu/cpuTensor.ts';
import { MambaError } from '../../src/core/errors.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import { loadModel } from '../../src/io/hf.ts';
import { CausalLM } from '../../src/models/causalLM.ts';
import { initParameters } from '../../src/models/init.ts';
import { zeroGrads } from '../../src/train/gradients.ts';
import { taskModelConfig } from '../../src/train/tasks/experiment.ts';
import { inductionHeads } from '../../src/train/tasks/inductionHeads.ts';
import { webgpuBackend } from '../helpers/backends.ts';
import { fixture } from '../helpers/fixtures.ts';
import { normal, relDiff, rngFor } from '../helpers/random.ts';

const [batch, length] = [2, 9];

/** The inputs of one check: ids (b, l) and one random SSM state (b, dInner, n) per layer. */
function inputs(t: TestContext, model: CausalLM) {
  const rand = rngFor(t);
  const ids = Int32Array.from({ length: batch * length }, () => Math.floor(rand() * model.config.vocabSize)); // (b, l)
  const h0 = model.newState(batch).layers.map((layer) => {
    const size = layer.ssm.shape.reduce((a, b) => a * b, 1);
    return { shape: layer.ssm.shape, data: Float32Array.from({ length: size }, () => normal(rand)) };
  });
  return { ids, h0 };
}

type Inputs = ReturnType<typeof inputs>;

/** lossAndGrads from fresh copies of the states: loss, gradients and the states after. */
async function train(model: CausalLM, { ids, h0 }: Inputs, carried = true) {
  const be = model.backend;
  const grads = zeroGrads(model);
  const states = h0.map((s) => be.upload(s.data, s.shape)); // (b, dInner, n) each
  const loss = await be.read(model.lossAndGrads(ids, batch, grads, undefined, carried ? states : undefined));
  const read = async (tensors: Iterable<[string, Tensor]>) =>
    new Map(await Promise.all([...tensors].map(async ([k, v]) => [k, await be.read(v)] as const)));
  return { loss: loss[0], grads: await read(grads), after: await Promise.all(states.map((s) => be.read(s))) };
}

/** Forward from the same states (conv states zero) and the next-token loss on the host. */
async function forwardLoss(model: CausalLM, { ids, h0 }: Inputs) {
  const be = model.backend;
  const state = model.newState(batch);
  for (const [i, layer] of state.layers.entries()) layer.ssm = be.upload(h0[i].data, h0[i].shape);
  const logits = (await be.read(model.forward(ids, batch, { state }).logits)) as Float32Array; // (b, l, vocab)
  const vocab = model.config.vocabSize;
  let sum = 0;
  for (let bi = 0; bi < batch; bi++) {
    for (let t = 0; t + 1 < length; t++) {
      const row = logits.subarray((bi * length + t) * vocab, (bi * length + t + 1) * vocab);
      const max = Math.max(...row);
      const logSum = Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0)) + max;
      sum += logSum - row[ids[bi * length + t + 1]];
    }
  }
  return {
    loss: sum / (batch * (length - 1)),
    states: await Promise.all(state.layers.map((l) => be.read(l.ssm))),
  };
}

test('carried SSM states: loss and final states as forward from them, gradients as finite differences', async (t) => {
  const model = loadModel(fixture('hf', 'mamba-tiny-0'), new CpuBackend());
  const x = inputs(t, model);
  const got = await train(model, x);
  const want = await forwardLoss(model, x);
  const lossDiff = Math.abs(got.loss - want.loss) / want.loss;
  t.diagnostic(`loss ${got.loss} vs forward's ${want.loss}: rel diff ${lossDiff.toExponential(2)}`);
  assert.ok(lossDiff < 1e-5);
  for (const [i, state] of got.after.entries()) {
    const diff = relDiff(state, want.states[i]);
    assert.ok(diff < 1e-5, `layer ${i}: final state differs by ${diff}`);
  }
  const zero = await train(model, x, false);
  const parameters = model.parameters();
  for (const name of [
    'backbone.layers.0.mixer.A_log',
    'backbone.layers.0.mixer.x_proj.weight',
    'backbone.layers.1.mixer.dt_proj.bias',
  ]) {
    const analytic = got.grads.get(name)!;
    assert.ok(
      relDiff(zero.grads.get(name)!, analytic) > 1e-2,
      `${name}: the carried state changes the gradient`,
    );
    const data = (parameters.get(name) as CpuTensor).data as Float32Array;
    // The three largest entries of the gradient, by central differences of the loss.
    const order = Array.from(analytic.keys()).sort((a, b) => Math.abs(analytic[b]) - Math.abs(analytic[a]));
    for (const at of order.slice(0, 3)) {
      const h = 1e-2 * Math.max(1, Math.abs(data[at]));
      const original = data[at];
      const lossAt = async (value: number) => {
        data[at] = value;
        model.refreshDerived();
        return (await train(model, x)).loss;
      };
      const fd = ((await lossAt(original + h)) - (await lossAt(original - h))) / (2 * h);
      data[at] = original;
      model.refreshDerived();
      const diff = Math.abs(fd - analytic[at]) / Math.abs(analytic[at]);
      t.diagnostic(`${name}[${at}]: analytic ${analytic[at].toExponential(4)}, fd ${fd.toExponential(4)}`);
      assert.ok(diff < 2e-3, `${name}[${at}]: analytic ${analytic[at]} vs finite difference ${fd}`);
    }
  }
});

test("carried SSM states on WebGPU: the CPU's loss, final states and gradients", async (t) => {
  const gpu = await webgpuBackend();
  if (typeof gpu === 'string') return t.skip(gpu);
  const [onCpu, onGpu] = [new CpuBackend(), gpu as Backend].map((be) =>
    loadModel(fixture('hf', 'mamba-tiny-0'), be),
  );
  const x = inputs(t, onCpu);
  const [want, got] = [await train(onCpu, x), await train(onGpu, x)];
  assert.ok(Math.abs(got.loss - want.loss) / want.loss < 1e-5, `loss ${got.loss} vs ${want.loss}`);
  for (const [i, state] of got.after.entries())
    assert.ok(relDiff(state, want.after[i]) < 1e-5, `layer ${i} state`);
  let worst = 0;
  for (const [name, g] of got.grads) {
    const diff = relDiff(g, want.grads.get(name)!);
    worst = Math.max(worst, diff);
    assert.ok(diff < 1e-4, `${name}: gradient differs by ${diff}`);
  }
  t.diagnostic(`largest gradient rel diff ${worst.toExponential(2)}`);
});

test('Mamba-2 and S4D refuse a carried SSM state in one line', () => {
  const config = taskModelConfig(inductionHeads(16), 's4d');
  const weights = initParameters(config, 0);
  const models = {
    'Mamba-2': loadModel(fixture('hf', 'mamba2-tiny-0'), new CpuBackend()),
    S4D: new CausalLM(config, new CpuBackend(), (name) => weights.get(name)),
  };
  for (const [kind, model] of Object.entries(models)) {
    const states = model.newState(1).layers.map((l) => l.ssm);
    assert.throws(
      () => model.lossAndGrads(Int32Array.of(1, 2, 3), 1, zeroGrads(model), undefined, states),
      (e: unknown) =>
        e instanceof MambaError && e.message.endsWith(`only the Mamba (S6) mixer takes one, not ${kind}`),
    );
  }
});
