// `mamba-ts generate --model DIR|ORG/NAME --prompt TEXT [options]`: streams the prompt and its
// continuation to stdout as tokens are produced. `--prompt-ids 1,2,3 --format ids` prints the
// whole id sequence as one JSON array instead. `--state-out FILE` saves where the generation
// stopped; `--state-in FILE` continues from there (the prompt is then optional).

import { fail } from '../core/errors.ts';
import { generate } from '../generate/generate.ts';
import { parse } from './args.ts';
import {
  generateOptions,
  openSession,
  printStats,
  readSnapshot,
  sessionOptions,
  writeSnapshot,
} from './session.ts';

function parseIds(text: string): number[] {
  const parts = text.split(',').map((s) => s.trim());
  if (parts.some((s) => !/^\d+$/.test(s))) {
    fail(`generate: --prompt-ids must be comma-separated token ids, got "${text}"`);
  }
  // Beyond int32 an id would wrap around in the Int32Array the model reads (4294967301 → 5).
  const big = parts.find((s) => Number(s) > 0x7fffffff);
  if (big !== undefined) fail(`generate: token id ${big} in --prompt-ids is outside any vocabulary`);
  return parts.map(Number);
}

export async function generateCommand(argv: string[]): Promise<void> {
  const values = parse('generate', argv, {
    ...sessionOptions,
    prompt: { type: 'string' },
    'prompt-ids': { type: 'string' },
    format: { type: 'string' },
  });
  if (values.prompt !== undefined && values['prompt-ids'] !== undefined) {
    fail('generate: give --prompt or --prompt-ids, not both');
  }
  const stateIn = values['state-in'] as string | undefined;
  if (values.prompt === undefined && values['prompt-ids'] === undefined && stateIn === undefined) {
    fail('generate: --prompt (or --prompt-ids, or --state-in) is required');
  }
  const format =
    (values.format as string | undefined) ?? (values['prompt-ids'] !== undefined ? 'ids' : 'text');
  if (format !== 'ids' && format !== 'text')
    fail(`generate: unknown --format "${format}" (available: text, ids)`);
  const prompt =
    values['prompt-ids'] !== undefined
      ? parseIds(values['prompt-ids'] as string)
      : ((values.prompt as string | undefined) ?? []);
  const session = await openSession('generate', values);
  if ((format === 'text' || typeof prompt === 'string') && session.tokenizer === null) {
    fail(
      `generate: ${session.dir} has no tokenizer.json, so it cannot read or print text; use --prompt-ids and --format ids`,
    );
  }
  const options = {
    ...generateOptions('generate', values, session),
    from: stateIn === undefined ? undefined : readSnapshot(stateIn, session),
    echo: true,
  };
  const run = generate(session.model, session.tokenizer, [prompt], options);
  let next = await run.next();
  for (; !next.done; next = await run.next()) {
    if (format === 'text') process.stdout.write(next.value.text);
  }
  const result = next.value;
  if (format === 'ids') process.stdout.write(`${JSON.stringify(result.ids[0])}\n`);
  else if (process.stdout.isTTY) process.stdout.write('\n');
  if (values['state-out'] !== undefined) writeSnapshot(values['state-out'] as string, result.snapshot);
  if (values.stats) printStats(result.stats);
}
