// Selective Copying (Mamba paper §4.1.1, Figure 2, appendix E.1): `answers` data tokens (16 in
// the paper) sit at random positions among noise tokens; then come as many marker tokens, and at
// the i-th marker the model must output the i-th data token. The gaps between data tokens vary,
// so a time-invariant model (a fixed convolution kernel) cannot know where to look: this is the
// task that needs selection. Vocabulary (16 in the paper): 0 noise, vocab−1 marker, data tokens
// 1…vocab−2 (chance: 1/(vocab−2)). `length` counts every token: length − answers positions of
// data and noise, then the answers markers (paper: length 4096).

import { randInt, type Task, type TaskBatch } from './task.ts';

export function selectiveCopying(vocabSize = 16, answers = 16): Task {
  const noise = 0;
  const marker = vocabSize - 1;
  return {
    name: 'selective-copying',
    vocabSize,
    answers,
    minLength: 2 * answers,
    generate(rand, batch, length): TaskBatch {
      const region = length - answers;
      if (region < answers)
        throw new Error(`selective copying: length ${length} is too short for ${answers} tokens`);
      const ids = new Int32Array(batch * length).fill(noise); // (b, l)
      const targets = new Int32Array(batch * length).fill(-1); // (b, l)
      for (let bi = 0; bi < batch; bi++) {
        // `answers` distinct positions in the region, in increasing order (partial Fisher–Yates).
        const positions = Array.from({ length: region }, (_, i) => i);
        for (let i = 0; i < answers; i++) {
          const j = i + randInt(rand, region - i);
          [positions[i], positions[j]] = [positions[j], positions[i]];
        }
        const chosen = positions.slice(0, answers).sort((a, b) => a - b);
        chosen.forEach((p, i) => {
          const token = 1 + randInt(rand, vocabSize - 2);
          ids[bi * length + p] = token;
          ids[bi * length + region + i] = marker;
          targets[bi * length + region + i] = token;
        });
      }
      return { ids, targets };
    },
  };
}
