// `mamba-ts generate --model DIR --prompt-ids 1,2,3 --max-new-tokens N --greedy --format ids`:
// greedy continuation of a prompt given as token ids, printed with the prompt as one JSON array.
// Text prompts, sampling and streaming need a tokenizer and arrive with the generation work.

import { fail } from '../core/errors.ts';
import { generateGreedy } from '../generate/greedy.ts';
import { loadModel } from '../io/hf.ts';
import { intOption, makeBackend, parse, requireString } from './args.ts';

function parseIds(text: string): number[] {
  const parts = text.split(',').map((s) => s.trim());
  if (parts.some((s) => !/^\d+$/.test(s)))
    fail(`generate: --prompt-ids must be comma-separated token ids, got "${text}"`);
  // Beyond int32 an id would wrap around in the Int32Array the model reads (4294967301 → 5).
  const big = parts.find((s) => Number(s) > 0x7fffffff);
  if (big !== undefined) fail(`generate: token id ${big} in --prompt-ids is outside any vocabulary`);
  return parts.map(Number);
}

export async function generateCommand(argv: string[]): Promise<void> {
  const values = parse('generate', argv, {
    model: { type: 'string' },
    'prompt-ids': { type: 'string' },
    prompt: { type: 'string' },
    'max-new-tokens': { type: 'string' },
    greedy: { type: 'boolean' },
    format: { type: 'string' },
    backend: { type: 'string' },
  });
  if (values.prompt !== undefined)
    fail('generate: text prompts (--prompt) need tokenizer support, not built yet; use --prompt-ids');
  if (values.greedy !== true) fail('generate: only greedy decoding is available so far; pass --greedy');
  const format = values.format ?? 'ids';
  if (format !== 'ids') fail(`generate: unknown --format "${format}" (available: ids)`);
  const prompt = parseIds(requireString('generate', values, 'prompt-ids'));
  const maxNewTokens = intOption('generate', values, 'max-new-tokens', 32);
  const model = loadModel(
    requireString('generate', values, 'model'),
    makeBackend('generate', values.backend),
  );
  process.stdout.write(`${JSON.stringify(await generateGreedy(model, prompt, maxNewTokens))}\n`);
}
