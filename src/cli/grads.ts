// `mamba-ts grads --model DIR --input-ids IN.npy --output OUT.safetensors`: the gradient of the
// next-token loss (mean cross-entropy of logits[:, :-1] against ids[:, 1:]) for every parameter,
// under the checkpoint's key names, and the loss as JSON on stdout: {"loss": ...}.
// Outside checks of the training code rely on this format: keep it stable.

import { fail } from '../core/errors.ts';
import { loadModel } from '../io/hf.ts';
import { writeSafetensors } from '../io/safetensors.ts';
import { gradients } from '../train/gradients.ts';
import { makeBackend, parse, requireString } from './args.ts';
import { checkVocabulary, readIdsFile } from './idsFile.ts';

export async function gradsCommand(argv: string[]): Promise<void> {
  const values = parse('grads', argv, {
    model: { type: 'string' },
    'input-ids': { type: 'string' },
    output: { type: 'string' },
    backend: { type: 'string' },
  });
  const inputPath = requireString('grads', values, 'input-ids');
  const outputPath = requireString('grads', values, 'output');
  const { ids, batch, length } = readIdsFile(inputPath);
  if (length < 2) fail(`${inputPath}: the loss needs sequences of at least 2 tokens, got length ${length}`);
  const model = loadModel(
    requireString('grads', values, 'model'),
    await makeBackend('grads', values.backend),
  );
  checkVocabulary(inputPath, ids, length, model.config.vocabSize);
  const { loss, grads } = await gradients(model, ids, batch);
  writeSafetensors(outputPath, grads);
  process.stdout.write(`${JSON.stringify({ loss })}\n`);
}
