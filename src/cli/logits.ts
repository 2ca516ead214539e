// `mamba-ts logits --model DIR --input-ids IN.npy --output OUT.npy`: the model's logits for a
// batch of token ids (int32 or int64, shape [b, l]), written as float32 [b, l, vocab].

import { loadModel } from '../io/hf.ts';
import { writeNpy } from '../io/npy.ts';
import { makeBackend, parse, requireString } from './args.ts';
import { checkVocabulary, readIdsFile } from './idsFile.ts';

export async function logitsCommand(argv: string[]): Promise<void> {
  const values = parse('logits', argv, {
    model: { type: 'string' },
    'input-ids': { type: 'string' },
    output: { type: 'string' },
    backend: { type: 'string' },
  });
  const inputPath = requireString('logits', values, 'input-ids');
  const outputPath = requireString('logits', values, 'output');
  const { ids, batch, length } = readIdsFile(inputPath);
  const model = loadModel(
    requireString('logits', values, 'model'),
    await makeBackend('logits', values.backend),
  );
  checkVocabulary(inputPath, ids, length, model.config.vocabSize);
  const { logits } = model.forward(ids, batch);
  const data = (await model.backend.read(logits)) as Float32Array;
  writeNpy(outputPath, { dtype: 'float32', shape: [batch, length, model.config.vocabSize], data });
}
