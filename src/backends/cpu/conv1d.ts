// CPU kernel: causal depthwise conv1d over the length axis, with bias and optional SiLU, carrying
// the last w-1 inputs of each channel as the recurrent conv state (so a prompt can be fed in
// pieces, and a decoding step is the case l = 1). Channels are independent: the worker pool
// (threads.ts) shares out chunks of them, inside which channels are the inner loop (contiguous).

import { silu } from '../../nn/activations.ts';
import { CONV_JOB, type LaneJob, runLanes, sharedF32 } from './threads.ts';

interface ConvArrays {
  y: Float32Array; // (b, l, c) out
  x: Float32Array; // (b, l, c)
  weight: Float32Array; // (c, w)
  bias: Float32Array; // (c), or empty
  state: Float32Array; // (b, c, w-1) in/out
}

/** Stands in for a missing bias. */
const none = sharedF32(0);

export function causalConv1d(
  y: Float32Array, // (b, l, c)
  x: Float32Array, // (b, l, c)
  weight: Float32Array, // (c, w)   torch's (c, 1, w) without the middle axis
  bias: Float32Array | null, // (c)
  state: Float32Array, // (b, c, w-1) in/out: inputs before position 0, oldest first
  applySilu: boolean,
  b: number,
  l: number,
  c: number,
  w: number,
): void {
  const params = [b, l, c, w, applySilu ? 1 : 0, bias === null ? 0 : 1];
  runLanes(convJob, { y, x, weight, bias: bias ?? none, state }, params, c, b * l * c * w);
}

/** The conv of channels [c0, c1); params: b, l, c, w, SiLU?, bias?. */
export const convJob: LaneJob<ConvArrays> = {
  id: CONV_JOB,
  keys: ['y', 'x', 'weight', 'bias', 'state'],
  run(a, params, _chunk, c0, c1) {
    const { y, x, weight, bias, state } = a;
    const [b, l, c, w, applySilu, hasBias] = params;
    const history = w - 1;
    const next = new Float64Array(history); // the new state of one channel
    for (let bi = 0; bi < b; bi++) {
      /** Input of channel ci at position pos (before 0: from the state). */
      const at = (ci: number, pos: number) =>
        pos < 0 ? state[(bi * c + ci) * history + history + pos] : x[(bi * l + pos) * c + ci];
      for (let ti = 0; ti < l; ti++) {
        for (let ci = c0; ci < c1; ci++) {
          let acc = hasBias === 0 ? 0 : bias[ci];
          for (let j = 0; j < w; j++) acc += weight[ci * w + j] * at(ci, ti - history + j);
          y[(bi * l + ti) * c + ci] = applySilu === 1 ? silu(acc) : acc;
        }
      }
      for (let ci = c0; ci < c1; ci++) {
        const s0 = (bi * c + ci) * history; // state of (bi, ci)
        for (let j = 0; j < history; j++) next[j] = at(ci, l - history + j);
        for (let j = 0; j < history; j++) state[s0 + j] = next[j];
      }
    }
  },
};
