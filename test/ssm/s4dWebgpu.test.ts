// The WebGPU S4D kernels (src/backends/webgpu/kernels/s4d*.ts) against their CPU twin
// (src/ssm/s4d.ts, itself checked against the float64 reference and finite differences in
// s4d.test.ts): the forward (recurrent) with a random initial state, outputs and final states,
// z as a strided split view; the backward's du, dz and every parameter gradient, added onto
// existing values; and a whole S4D model's loss and gradients (CausalLM.lossAndGrads).

import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import type { Backend, S4dArgs } from '../../src/backends/backend.ts';
import { CpuBackend } from '../../src/backends/cpu/cpuBackend.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import { CausalLM } from '../../src/models/causalLM.ts';
import { parseConfig } from '../../src/models/config.ts';
import { initParameters } from '../../src/models/init.ts';
import { webgpuBackend } from '../helpers/backends.ts';
import { normal, type Rand, relDiff, rngFor, uniform } from '../helpers/random.ts';

const TOL = 1e-5; // float32 on both sides (float64 inside on the CPU), sums in different orders
const GRAD = 1e-4; // gradients: long float32 sums (over b·l for dK̄, then over l per lane)
const gpuOrReason = await webgpuBackend();
const skip = typeof gpuOrReason === 'string' ? gpuOrReason : false;
const gpu = gpuOrReason as Backend;
const cpu = new CpuBackend();

async function close(t: TestContext, what: string, c: Tensor, g: Tensor, tol: number) {
  const diff = relDiff(await gpu.read(g), await cpu.read(c));
  t.diagnostic(`${what}: largest relative difference ${diff.toExponential(2)}`);
  assert.ok(diff <= tol, `${what}: relative difference ${diff} > ${tol}`);
}

/** The same random S4D arguments on both backends; z as the second part of a split. */
function args(rand: Rand, b: number, l: number, d: number, n: number): [S4dArgs, S4dArgs] {
  const draw = (len: number, f = () => normal(rand)) => Float32Array.from({ length: len }, f);
  const host = {
    u: draw(b * l * d),
    logDt: draw(d, () => uniform(rand, Math.log(0.01), Math.log(0.5))),
    A: Float32Array.from({ length: d * n }, (_, i) => -Math.exp(Math.log((i % n) + 1) + 0.1 * normal(rand))),
    B: draw(d * n),
    C: draw(d * n),
    D: draw(d),
    zWide: draw(b * l * 2 * d),
    state: draw(b * d * n),
  };
  const on = (be: Backend): S4dArgs => ({
    u: be.upload(host.u, [b, l, d]),
    logDt: be.upload(host.logDt, [d]),
    A: be.upload(host.A, [d, n]),
    B: be.upload(host.B, [d, n]),
    C: be.upload(host.C, [d, n]),
    D: be.upload(host.D, [d]),
    z: be.split(be.upload(host.zWide, [b, l, 2 * d]), [d, d])[1],
    state: be.upload(host.state, [b, d, n]),
  });
  return [on(cpu), on(gpu)];
}

test('webgpu s4d: forward = the CPU twin, outputs and final states', { skip }, async (t) => {
  const rand = rngFor(t);
  for (const [b, l, d, n] of [
    [2, 5, 3, 4],
    [3, 70, 66, 16],
  ]) {
    const [c, g] = args(rand, b, l, d, n);
    await close(t, `b=${b} l=${l} d=${d} n=${n} out`, cpu.s4d!(c), gpu.s4d!(g), TOL);
    await close(t, `b=${b} l=${l} d=${d} n=${n} state`, c.state, g.state, TOL);
  }
});

test('webgpu s4dBackward: du, dz and the parameter gradients = the CPU twin', { skip }, async (t) => {
  const rand = rngFor(t);
  for (const [b, l, d, n] of [
    [3, 6, 2, 3],
    [2, 80, 65, 16],
  ]) {
    const [c, g] = args(rand, b, l, d, n);
    const dOut = Float32Array.from({ length: b * l * d }, () => normal(rand));
    const start = (shape: number[]) => {
      const data = Float32Array.from({ length: shape.reduce((x, y) => x * y) }, () => normal(rand));
      return [cpu.upload(data, shape), gpu.upload(data, shape)];
    };
    const keys = ['logDt', 'ALog', 'B', 'C', 'D'] as const;
    const pairs = keys.map((k) => start(k === 'logDt' || k === 'D' ? [d] : [d, n]));
    const gradsOf = (i: number) => Object.fromEntries(keys.map((k, j) => [k, pairs[j][i]])) as never;
    const rc = cpu.training.s4dBackward!(c, cpu.upload(dOut, [b, l, d]), gradsOf(0));
    const rg = gpu.training.s4dBackward!(g, gpu.upload(dOut, [b, l, d]), gradsOf(1));
    const shape = `b=${b} l=${l} d=${d} n=${n}`;
    await close(t, `${shape} du`, rc.du, rg.du, GRAD);
    await close(t, `${shape} dz`, rc.dz, rg.dz, GRAD);
    for (const [j, k] of keys.entries()) await close(t, `${shape} d${k}`, pairs[j][0], pairs[j][1], GRAD);
  }
});

test('webgpu s4d model: lossAndGrads with targets = the CPU', { skip }, async (t) => {
  const rand = rngFor(t);
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
  const weights = initParameters(config, Math.floor(rand() * 1e9));
  const [b, l] = [2, 40];
  const ids = Int32Array.from({ length: b * l }, () => Math.floor(rand() * 11));
  const targets = Int32Array.from({ length: b * l }, (_, i) => (i % 3 === 0 ? Math.floor(rand() * 11) : -1));
  const run = (be: Backend) => {
    const model = new CausalLM(config, be, (name) => weights.get(name));
    const grads = new Map([...model.parameters()].map(([name, p]) => [name, be.zeros(p.shape)]));
    return { loss: model.lossAndGrads(ids, b, grads, targets), grads };
  };
  const [c, g] = [run(cpu), run(gpu)];
  await close(t, 'loss', c.loss, g.loss, TOL);
  let worst = 0;
  for (const [name, grad] of c.grads) {
    const diff = relDiff(await gpu.read(g.grads.get(name)!), await cpu.read(grad));
    worst = Math.max(worst, diff);
    assert.ok(diff <= GRAD, `${name}: relative difference ${diff}`);
  }
  t.diagnostic(`largest gradient relative difference ${worst.toExponential(2)}`);
});
