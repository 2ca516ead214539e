// CPU kernel: causal depthwise conv1d over the length axis, with bias and optional SiLU, carrying
// the last w-1 inputs of each channel as the recurrent conv state (so a prompt can be fed in
// pieces, and a decoding step is the case l = 1).

import { silu } from '../../nn/activations.ts';

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
  const history = w - 1;
  const next = new Float64Array(history); // the new state of one channel
  for (let bi = 0; bi < b; bi++) {
    for (let ci = 0; ci < c; ci++) {
      const s0 = (bi * c + ci) * history; // state of (bi, ci); position −1 is s0 + history − 1
      const at = (pos: number) => (pos < 0 ? state[s0 + history + pos] : x[(bi * l + pos) * c + ci]);
      const w0 = ci * w;
      const b0 = bias === null ? 0 : bias[ci];
      for (let ti = 0; ti < l; ti++) {
        let acc = b0;
        for (let j = 0; j < w; j++) acc += weight[w0 + j] * at(ti - history + j);
        y[(bi * l + ti) * c + ci] = applySilu ? silu(acc) : acc;
      }
      for (let j = 0; j < history; j++) next[j] = at(l - history + j);
      for (let j = 0; j < history; j++) state[s0 + j] = next[j];
    }
  }
}
