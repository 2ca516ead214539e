// Gradient golden tests: the loss and the gradient of every parameter, on every backend, against
// what PyTorch's autograd computed through transformers for ../shared/fixtures/hf (loss.json,
// grads.safetensors); and `mamba-ts grads` writing the same through the command line.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadModel } from '../../src/io/hf.ts';
import { readNpy, writeNpy } from '../../src/io/npy.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { gradients } from '../../src/train/gradients.ts';
import { testBackends } from '../helpers/backends.ts';
import { assertOk, assertOneLineError, cli } from '../helpers/cli.ts';
import { fixture } from '../helpers/fixtures.ts';
import { relDiff } from '../helpers/random.ts';

const LOSS_TOL = 1e-6;
const GRAD_TOL = 1e-4;
const names = ['mamba-tiny-0', 'mamba2-tiny-0', 'mamba2-groups-0'];

function reference(name: string): { loss: number; grads: SafetensorsFile } {
  const { loss } = JSON.parse(readFileSync(fixture('hf', name, 'loss.json'), 'utf8'));
  return { loss, grads: SafetensorsFile.open(fixture('hf', name, 'grads.safetensors')) };
}

for (const { name: backendName, backend } of await testBackends()) {
  for (const name of names) {
    describe(`${name} gradients on ${backendName}`, { skip: typeof backend === 'string' && backend }, () => {
      if (typeof backend === 'string') return;
      test('loss and every parameter gradient match PyTorch', async (t) => {
        const model = loadModel(fixture('hf', name), backend);
        const ids = readNpy(fixture('hf', name, 'input_ids.npy'));
        const got = await gradients(model, Int32Array.from(ids.data as ArrayLike<number>), ids.shape[0]);
        const want = reference(name);
        const lossDiff = Math.abs(got.loss - want.loss) / Math.abs(want.loss);
        t.diagnostic(`loss ${got.loss} vs ${want.loss}: rel diff ${lossDiff.toExponential(2)}`);
        assert.ok(lossDiff < LOSS_TOL, `loss differs by ${lossDiff}`);
        assert.deepEqual(
          got.grads.map((g) => g.name).sort(),
          [...want.grads.tensors.keys()].sort(),
          'one gradient per parameter, under the checkpoint names',
        );
        let worst = { name: '', diff: 0 };
        for (const g of got.grads) {
          const diff = relDiff(g.data, want.grads.read(g.name));
          if (diff > worst.diff) worst = { name: g.name, diff };
          assert.ok(diff < GRAD_TOL, `${g.name}: gradient differs by ${diff}`);
        }
        t.diagnostic(`largest gradient rel diff ${worst.diff.toExponential(2)} (${worst.name})`);
      });
    });
  }
}

test('mamba-ts grads writes the gradients and prints the loss', async () => {
  const out = join(mkdtempSync(join(tmpdir(), 'grads-')), 'grads.safetensors');
  const dir = fixture('hf', 'mamba-tiny-0');
  const run = await cli([
    'grads',
    '--model',
    dir,
    '--input-ids',
    join(dir, 'input_ids.npy'),
    '--output',
    out,
  ]);
  const { loss } = JSON.parse(assertOk(run));
  const want = reference('mamba-tiny-0');
  assert.ok(Math.abs(loss - want.loss) / want.loss < LOSS_TOL);
  const written = SafetensorsFile.open(out);
  const diff = relDiff(
    written.read('backbone.layers.0.mixer.A_log'),
    want.grads.read('backbone.layers.0.mixer.A_log'),
  );
  assert.ok(diff < GRAD_TOL, `written A_log gradient differs by ${diff}`);
});

test('mamba-ts grads: a sequence of one token is refused in one line', async () => {
  const dir = fixture('hf', 'mamba-tiny-0');
  const tmp = mkdtempSync(join(tmpdir(), 'grads-'));
  const ids = join(tmp, 'one.npy');
  writeNpy(ids, { dtype: 'int32', shape: [1, 1], data: new Int32Array([3]) });
  assertOneLineError(
    await cli(['grads', '--model', dir, '--input-ids', ids, '--output', join(tmp, 'g.safetensors')]),
    /at least 2 tokens/,
  );
});
