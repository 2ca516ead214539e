// Backward of the CPU causal depthwise conv1d (conv1d.ts) from a zero state, the training case:
// pre[b, t, c] = bias[c] + Σ_j weight[c, j] · x[b, t − (w − 1) + j, c] (x = 0 before position 0),
// y = SiLU(pre) or pre. The pre-activation is recomputed, then
//   dpre = dy · SiLU′(pre) (or dy),  dbias[c] += Σ dpre,
//   dweight[c, j] += Σ_{b,t} dpre[b, t, c] · x[b, t − (w − 1) + j, c],
//   dx[b, s, c] = Σ_j dpre[b, s + (w − 1) − j, c] · weight[c, j].
// Channels are independent: the worker pool (threads.ts) shares out chunks of them, inside which
// channels are the inner loop (contiguous); parameter sums are carried in float64, each channel's
// in the same order on any number of threads.

import { siluGrad } from './normBackward.ts';
import { CONV_BACKWARD_JOB, type LaneJob, runLanes, scratchF64, sharedF32 } from './threads.ts';

interface ConvBackwardArrays {
  dx: Float32Array; // (b, l, c) out
  dy: Float32Array; // (b, l, c)
  x: Float32Array; // (b, l, c)
  weight: Float32Array; // (c, w)
  bias: Float32Array; // (c), or empty
  dWeight: Float32Array; // (c, w) in/out
  dBias: Float32Array; // (c) in/out, or empty
}

/** Stands in for a missing bias or bias gradient. */
const none = sharedF32(0);

export function causalConv1dBackward(
  dx: Float32Array, // (b, l, c) out
  dy: Float32Array, // (b, l, c)
  x: Float32Array, // (b, l, c)
  weight: Float32Array, // (c, w)
  bias: Float32Array | null, // (c)
  applySilu: boolean,
  dWeight: Float32Array, // (c, w) in/out
  dBias: Float32Array | null, // (c) in/out
  b: number,
  l: number,
  c: number,
  w: number,
): void {
  const arrays = { dx, dy, x, weight, bias: bias ?? none, dWeight, dBias: dBias ?? none };
  const flags = [applySilu ? 1 : 0, bias === null ? 0 : 1, dBias === null ? 0 : 1];
  runLanes(convBackwardJob, arrays, [b, l, c, w, ...flags], c, 2 * b * l * c * w);
}

/** The backward of channels [c0, c1); params: b, l, c, w, SiLU?, bias?, dBias?. */
export const convBackwardJob: LaneJob<ConvBackwardArrays> = {
  id: CONV_BACKWARD_JOB,
  keys: ['dx', 'dy', 'x', 'weight', 'bias', 'dWeight', 'dBias'],
  run(a, params, _chunk, c0, c1) {
    const { dx, dy, x, weight, bias, dWeight, dBias } = a;
    const [b, l, c, w, applySilu, hasBias, hasDBias] = params;
    const width = c1 - c0;
    const dpre = scratchF64(0, b * l * width); // (b, l, c1 − c0)
    for (let bi = 0; bi < b; bi++) {
      for (let t = 0; t < l; t++) {
        const row = (bi * l + t) * c;
        const drow = (bi * l + t) * width - c0;
        for (let ci = c0; ci < c1; ci++) {
          if (applySilu === 0) {
            dpre[drow + ci] = dy[row + ci];
            continue;
          }
          let pre = hasBias === 0 ? 0 : bias[ci];
          for (let j = Math.max(0, w - 1 - t); j < w; j++)
            pre += weight[ci * w + j] * x[row + (j - w + 1) * c + ci];
          dpre[drow + ci] = dy[row + ci] * siluGrad(pre);
        }
      }
    }
    const dw = scratchF64(1, width * w); // (c1 − c0, w)
    const db = scratchF64(2, width); // (c1 − c0)
    dw.fill(0);
    db.fill(0);
    for (let bi = 0; bi < b; bi++) {
      for (let s = 0; s < l; s++) {
        const row = (bi * l + s) * c;
        const drow = (bi * l + s) * width;
        for (let ci = c0; ci < c1; ci++) {
          const xv = x[row + ci];
          const k = ci - c0;
          let acc = 0;
          for (let j = Math.max(0, w - l + s); j < w; j++) {
            const g = dpre[drow + (w - 1 - j) * width + k]; // dpre at t = s + (w − 1) − j
            acc += g * weight[ci * w + j];
            dw[k * w + j] += g * xv;
          }
          dx[row + ci] = acc;
          db[k] += dpre[drow + k];
        }
      }
    }
    for (let i = 0; i < width * w; i++) dWeight[c0 * w + i] += dw[i];
    if (hasDBias === 1) for (let k = 0; k < width; k++) dBias[c0 + k] += db[k];
  },
};
