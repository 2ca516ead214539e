// Backward of the CPU causal depthwise conv1d (conv1d.ts) from a zero state, the training case:
// pre[b, t, c] = bias[c] + Σ_j weight[c, j] · x[b, t − (w − 1) + j, c] (x = 0 before position 0),
// y = SiLU(pre) or pre. The pre-activation is recomputed, then
//   dpre = dy · SiLU′(pre) (or dy),  dbias[c] += Σ dpre,
//   dweight[c, j] += Σ_{b,t} dpre[b, t, c] · x[b, t − (w − 1) + j, c],
//   dx[b, s, c] = Σ_j dpre[b, s + (w − 1) − j, c] · weight[c, j].
// Channels are the inner loop (contiguous); parameter sums are carried in float64.

import { siluGrad } from './normBackward.ts';

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
  const dpre = new Float64Array(b * l * c); // (b, l, c)
  for (let bi = 0; bi < b; bi++) {
    for (let t = 0; t < l; t++) {
      const row = (bi * l + t) * c;
      for (let ci = 0; ci < c; ci++) {
        if (!applySilu) {
          dpre[row + ci] = dy[row + ci];
          continue;
        }
        let pre = bias === null ? 0 : bias[ci];
        for (let j = Math.max(0, w - 1 - t); j < w; j++)
          pre += weight[ci * w + j] * x[row + (j - w + 1) * c + ci];
        dpre[row + ci] = dy[row + ci] * siluGrad(pre);
      }
    }
  }
  const dw = new Float64Array(c * w); // (c, w)
  const db = new Float64Array(c); // (c)
  for (let bi = 0; bi < b; bi++) {
    for (let s = 0; s < l; s++) {
      const row = (bi * l + s) * c;
      for (let ci = 0; ci < c; ci++) {
        const xv = x[row + ci];
        let acc = 0;
        for (let j = Math.max(0, w - l + s); j < w; j++) {
          const g = dpre[row + (w - 1 - j) * c + ci]; // dpre at t = s + (w − 1) − j
          acc += g * weight[ci * w + j];
          dw[ci * w + j] += g * xv;
        }
        dx[row + ci] = acc;
        db[ci] += dpre[row + ci];
      }
    }
  }
  for (let i = 0; i < c * w; i++) dWeight[i] += dw[i];
  if (dBias !== null) for (let ci = 0; ci < c; ci++) dBias[ci] += db[ci];
}
