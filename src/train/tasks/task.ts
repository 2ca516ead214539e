// The synthetic tasks of the Mamba paper (arXiv 2312.00752 §4.1.1, appendix E.1) as seeded batch
// generators: each batch is token ids (b, l) and targets (b, l) that are -1 except at the answer
// positions, where they hold the token the model must output there (CausalLM.lossAndGrads takes
// them as its explicit targets, so only answers are trained on). `evaluate` scores a model's
// greedy answers, reading each sequence in pieces with the recurrent state so that any test
// length costs the memory of one piece.

import type { CausalLM } from '../../models/causalLM.ts';

export interface TaskBatch {
  ids: Int32Array; // (b, l)
  targets: Int32Array; // (b, l): the answer at answer positions, -1 elsewhere
}

export interface Task {
  /** selective-copying or induction-heads. */
  name: string;
  vocabSize: number;
  /** Answer positions per sequence: accuracy's unit. */
  answers: number;
  /** The shortest sequence the task can be set at. */
  minLength: number;
  /** A batch of `batch` sequences of `length` tokens, drawn from `rand` (uniform in [0, 1)). */
  generate(rand: () => number, batch: number, length: number): TaskBatch;
}

/** An integer in [0, n). */
export const randInt = (rand: () => number, n: number) => Math.floor(rand() * n);

/**
 * Fraction of answer positions where the model's most likely token is the answer. Reads (b, l) in
 * pieces of at most `piece` tokens through one recurrent state; the LM head runs only on pieces
 * that hold answers (elsewhere on the last position only, which forward needs anyway).
 */
export async function evaluate(
  model: CausalLM,
  data: TaskBatch,
  batch: number,
  piece: number,
): Promise<number> {
  const be = model.backend;
  const length = data.ids.length / batch;
  const vocab = model.config.vocabSize;
  const state = model.newState(batch);
  let correct = 0;
  let total = 0;
  for (let t0 = 0; t0 < length; t0 += piece) {
    const t1 = Math.min(length, t0 + piece);
    const rows = t1 - t0;
    const ids = new Int32Array(batch * rows); // (b, rows)
    let scored = false;
    for (let bi = 0; bi < batch; bi++) {
      ids.set(data.ids.subarray(bi * length + t0, bi * length + t1), bi * rows);
      for (let t = t0; t < t1; t++) scored ||= data.targets[bi * length + t] !== -1;
    }
    const logits = await be.read(model.forward(ids, batch, { state, lastOnly: !scored }).logits); // (b, rows|1, vocab)
    if (!scored) continue;
    for (let bi = 0; bi < batch; bi++) {
      for (let t = t0; t < t1; t++) {
        const target = data.targets[bi * length + t];
        if (target === -1) continue;
        const row = logits.subarray((bi * rows + t - t0) * vocab, (bi * rows + t - t0 + 1) * vocab);
        let best = 0;
        for (let v = 1; v < vocab; v++) if (row[v] > row[best]) best = v;
        correct += best === target ? 1 : 0;
        total++;
      }
    }
  }
  return correct / total;
}
