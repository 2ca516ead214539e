// The built-in model (models/default, MODEL_CARD.md): the README's main command runs it with no
// --model (a local folder: no network), it loads like any checkpoint (F16 weights, byte tokenizer), stays under
// the 10 MB the package allows it, and a greedy continuation is deterministic.

import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CpuBackend } from '../../src/backends/cpu/cpuBackend.ts';
import { builtinModelDir } from '../../src/io/builtinModel.ts';
import { loadModel } from '../../src/io/hf.ts';
import { assertOk, cli } from '../helpers/cli.ts';

const dir = builtinModelDir();

test('the package holds the built-in model, under 10 MB', () => {
  assert.ok(dir, 'models/default is missing');
  const bytes = statSync(join(dir, 'model.safetensors')).size;
  assert.ok(bytes < 10e6, `model.safetensors is ${bytes} bytes`);
  const model = loadModel(dir, new CpuBackend());
  assert.equal(model.config.vocabSize, 256);
});

test("the README's main command: generate with no --model continues the prompt", async () => {
  const out = assertOk(
    await cli(['generate', '--prompt', 'A programmer', '--max-new-tokens', '40', '--seed', '1']),
  );
  assert.ok(out.startsWith('A programmer'), out);
  assert.ok(out.length > 'A programmer'.length + 10, `too little text: ${JSON.stringify(out)}`);
});

test('greedy decoding of the built-in model is the same twice', async () => {
  const args = ['generate', '--prompt', 'Q: What', '--max-new-tokens', '24', '--greedy'];
  const [a, b] = await Promise.all([cli(args), cli(args)]);
  assert.equal(assertOk(a), assertOk(b));
});
