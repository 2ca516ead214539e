// `mamba-ts logits --model DIR --input-ids IN.npy --output OUT.npy`: the model's logits for a
// batch of token ids (int32 or int64, shape [b, l]), written as float32 [b, l, vocab].

import { fail } from '../core/errors.ts';
import { loadModel } from '../io/hf.ts';
import { readNpy, writeNpy } from '../io/npy.ts';
import { makeBackend, parse, requireString } from './args.ts';

export async function logitsCommand(argv: string[]): Promise<void> {
  const values = parse('logits', argv, {
    model: { type: 'string' },
    'input-ids': { type: 'string' },
    output: { type: 'string' },
    backend: { type: 'string' },
  });
  const inputPath = requireString('logits', values, 'input-ids');
  const outputPath = requireString('logits', values, 'output');
  const input = readNpy(inputPath);
  if (input.dtype !== 'int32' && input.dtype !== 'int64') {
    fail(`${inputPath}: token ids must be int32 or int64, got ${input.dtype}`);
  }
  if (input.shape.length !== 2)
    fail(`${inputPath}: token ids must have shape [batch, length], got [${input.shape}]`);
  const [batch, length] = input.shape;
  if (batch === 0 || length === 0)
    fail(`${inputPath}: empty input: shape [${input.shape}] holds no token ids`);
  const ids = new Int32Array(input.data.length); // (b · l)
  input.data.forEach((v: number | bigint, i: number) => {
    if (v < 0 || v > 0x7fffffff) fail(`${inputPath}: token id ${v} (index ${i}) is outside any vocabulary`);
    ids[i] = Number(v);
  });
  const model = loadModel(
    requireString('logits', values, 'model'),
    await makeBackend('logits', values.backend),
  );
  const vocab = model.config.vocabSize;
  const bad = ids.findIndex((id) => id >= vocab);
  if (bad >= 0) {
    fail(
      `${inputPath}: token id ${ids[bad]} (sequence ${Math.floor(bad / length)}, position ${bad % length}) is outside the vocabulary [0, ${vocab})`,
    );
  }
  const { logits } = model.forward(ids, batch);
  const data = (await model.backend.read(logits)) as Float32Array;
  writeNpy(outputPath, { dtype: 'float32', shape: [batch, length, model.config.vocabSize], data });
}
