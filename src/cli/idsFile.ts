// Token ids from a .npy file for the commands that read a batch (`logits`, `grads`): int32 or
// int64 of shape [b, l], each id checked, with one clear error line for anything else.

import { fail } from '../core/errors.ts';
import { readNpy } from '../io/npy.ts';

export function readIdsFile(path: string): { ids: Int32Array; batch: number; length: number } {
  const input = readNpy(path);
  if (input.dtype !== 'int32' && input.dtype !== 'int64') {
    fail(`${path}: token ids must be int32 or int64, got ${input.dtype}`);
  }
  if (input.shape.length !== 2)
    fail(`${path}: token ids must have shape [batch, length], got [${input.shape}]`);
  const [batch, length] = input.shape;
  if (batch === 0 || length === 0) fail(`${path}: empty input: shape [${input.shape}] holds no token ids`);
  const ids = new Int32Array(input.data.length); // (b · l)
  input.data.forEach((v: number | bigint, i: number) => {
    if (v < 0 || v > 0x7fffffff) fail(`${path}: token id ${v} (index ${i}) is outside any vocabulary`);
    ids[i] = Number(v);
  });
  return { ids, batch, length };
}

/** One clear error for the first id at or past the model's vocabulary. */
export function checkVocabulary(path: string, ids: Int32Array, length: number, vocab: number): void {
  const bad = ids.findIndex((id) => id >= vocab);
  if (bad >= 0) {
    fail(
      `${path}: token id ${ids[bad]} (sequence ${Math.floor(bad / length)}, position ${bad % length}) is outside the vocabulary [0, ${vocab})`,
    );
  }
}
