// Turns a training checkpoint into the built-in model (models/default): config, tokenizer and the
// weights as F16 safetensors (half the bytes; the CPU and WebGPU backends read F16 into f32), then
// measures the F16 model's held-out loss in bits per byte over the first N held-out sequences of
// the corpus (the split the trainer used), on the CPU, so that MODEL_CARD.md can quote both.
// Usage: node --import tsx scripts/ship-default-model.ts CHECKPOINT_DIR CORPUS_DIR [N=64]

import { chmodSync, copyFileSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CpuBackend } from '../src/backends/cpu/cpuBackend.ts';
import { loadModel } from '../src/io/hf.ts';
import { SafetensorsFile, writeSafetensors } from '../src/io/safetensors.ts';
import { byteTokenizer, Dataset, readCorpus } from '../src/train/data.ts';

const [checkpoint, corpus, count = '64'] = process.argv.slice(2);
const dest = join(import.meta.dirname, '..', 'models', 'default');
mkdirSync(dest, { recursive: true });
for (const file of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) {
  copyFileSync(join(checkpoint, file), join(dest, file));
  chmodSync(join(dest, file), 0o644);
}
const weights = SafetensorsFile.open(join(checkpoint, 'model.safetensors'));
const tensors = [...weights.tensors.values()].map((info) => ({
  name: info.name,
  shape: info.shape,
  data: weights.read(info.name),
}));
writeSafetensors(join(dest, 'model.safetensors'), tensors, { format: 'pt' }, 'F16');
const bytes = statSync(join(dest, 'model.safetensors')).size;

const { hyper } = JSON.parse(readFileSync(join(checkpoint, 'trainer_state.json'), 'utf8'));
const dataset = new Dataset(readCorpus(corpus, byteTokenizer()).tokens, Number(hyper.seqLen), Number(hyper.valFraction));
const model = loadModel(dest, new CpuBackend());
const n = Math.min(Number(count), dataset.valCount);
let sum = 0;
for (let i = 0; i < n; i += 8) {
  const b = Math.min(8, n - i);
  sum += (await model.backend.read(model.loss(dataset.valBatch(i, b), b)))[0] * b;
}
const nats = sum / n;
process.stdout.write(
  `${JSON.stringify({ bytes, heldOutSequences: n, lossNats: nats, bitsPerByte: nats / Math.LN2 })}\n`,
);
process.exit(0);
