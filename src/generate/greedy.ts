// Greedy decoding: read the prompt with the parallel forward (LM head on its last position only),
// then one `step` per new token, always taking the most likely id. Memory stays constant per new
// token: only the recurrent state carries the past. Stops after the model's EOS id, as
// transformers' generate() does.

import { fail } from '../core/errors.ts';
import type { CausalLM } from '../models/causalLM.ts';

/** Index of the largest value in row `row` of a (rows, width) array (first one on ties). */
export function argmax(values: Float32Array, row = 0, width = values.length): number {
  let best = row * width;
  for (let i = best + 1; i < (row + 1) * width; i++) if (values[i] > values[best]) best = i;
  return best - row * width;
}

/** The prompt followed by up to `maxNewTokens` greedy tokens. */
export async function generateGreedy(
  model: CausalLM,
  prompt: readonly number[],
  maxNewTokens: number,
): Promise<number[]> {
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0)
    fail(`max new tokens must be an integer >= 0, got ${maxNewTokens}`);
  const ids = [...prompt];
  const state = model.newState(1);
  let logits = model.forward(Int32Array.from(prompt), 1, { state, lastOnly: true }).logits; // (1, 1, vocab)
  const eos = model.config.eosTokenId;
  for (let i = 0; i < maxNewTokens; i++) {
    const next = argmax((await model.backend.read(logits)) as Float32Array);
    ids.push(next);
    if (next === eos || i === maxNewTokens - 1) break;
    logits = model.step(Int32Array.of(next), state); // (1, 1, vocab)
  }
  return ids;
}
