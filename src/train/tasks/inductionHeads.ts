// Induction Heads (Mamba paper §4.1.1, Table 2, appendix E.1): random tokens in which a special
// token appears once, followed by some token x; the sequence ends with the special token again,
// and there the model must output x (associative recall of the token after the last occurrence).
// Vocabulary (16 in the paper): vocab−1 is the special token, the others 0…vocab−2 are drawn
// uniformly (chance: 1/(vocab−1)). The paper trains at length 256 and tests at 2^6 … 2^20.

import { randInt, type Task, type TaskBatch } from './task.ts';

export function inductionHeads(vocabSize = 16): Task {
  const special = vocabSize - 1;
  return {
    name: 'induction-heads',
    vocabSize,
    answers: 1,
    minLength: 4,
    generate(rand, batch, length): TaskBatch {
      if (length < 4) throw new Error(`induction heads: length ${length} is too short`);
      const ids = new Int32Array(batch * length); // (b, l)
      const targets = new Int32Array(batch * length).fill(-1); // (b, l)
      for (let bi = 0; bi < batch; bi++) {
        const row = ids.subarray(bi * length, (bi + 1) * length);
        for (let t = 0; t < length; t++) row[t] = randInt(rand, vocabSize - 1);
        const at = randInt(rand, length - 2); // the special token at `at`, x after it, before the end
        row[at] = special;
        row[length - 1] = special;
        targets[bi * length + length - 1] = row[at + 1];
      }
      return { ids, targets };
    },
  };
}
