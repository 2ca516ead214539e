// Float64 reference twins of the CPU's non-SSM kernels, written from the definitions with no
// state tricks: the conv sees its history as explicit left padding. Tests run the fast kernels
// against these on random inputs.

import { silu } from './activations.ts';

/** y[b, t, c] = bias[c] + Σ_j weight[c, j] · in[b, t + j, c], in = [history; x] (history (b, w-1, c)). */
export function causalConv1dRef(
  x: Float64Array, // (b, l, c)
  history: Float64Array, // (b, w-1, c) inputs before position 0
  weight: Float64Array, // (c, w)
  bias: Float64Array | null, // (c)
  applySilu: boolean,
  b: number,
  l: number,
  c: number,
  w: number,
): Float64Array {
  const y = new Float64Array(b * l * c); // (b, l, c)
  const input = (
    bi: number,
    t: number,
    ci: number, // t in [-(w-1), l)
  ) => (t < 0 ? history[(bi * (w - 1) + t + w - 1) * c + ci] : x[(bi * l + t) * c + ci]);
  for (let bi = 0; bi < b; bi++) {
    for (let t = 0; t < l; t++) {
      for (let ci = 0; ci < c; ci++) {
        let acc = bias ? bias[ci] : 0;
        for (let j = 0; j < w; j++) acc += weight[ci * w + j] * input(bi, t - (w - 1) + j, ci);
        y[(bi * l + t) * c + ci] = applySilu ? silu(acc) : acc;
      }
    }
  }
  return y;
}

/** RMSNorm of each group of `groupSize` values of x: v / sqrt(mean(v²) + eps) · weight. */
export function rmsNormRef(
  x: Float64Array,
  weight: Float64Array,
  eps: number,
  groupSize: number,
): Float64Array {
  const out = new Float64Array(x.length);
  for (let g0 = 0; g0 < x.length; g0 += groupSize) {
    let sumSq = 0;
    for (let i = 0; i < groupSize; i++) sumSq += x[g0 + i] ** 2;
    const scale = 1 / Math.sqrt(sumSq / groupSize + eps);
    for (let i = 0; i < groupSize; i++) out[g0 + i] = x[g0 + i] * scale * weight[(g0 + i) % weight.length];
  }
  return out;
}

/** mamba_ssm's RMSNormGated with groups: norm(y·SiLU(z)) or norm(y)·SiLU(z). */
export function gatedRmsNormRef(
  y: Float64Array,
  z: Float64Array,
  weight: Float64Array,
  eps: number,
  groupSize: number,
  normBeforeGate: boolean,
): Float64Array {
  const gate = z.map(silu);
  if (normBeforeGate) return rmsNormRef(y, weight, eps, groupSize).map((v, i) => v * gate[i]);
  return rmsNormRef(
    y.map((v, i) => v * gate[i]),
    weight,
    eps,
    groupSize,
  );
}
