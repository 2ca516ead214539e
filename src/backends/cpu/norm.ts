// CPU kernels for the normalisations: residual add + RMSNorm (pre-norm of every block and the
// final norm) and Mamba-2's gated RMSNorm. Sums of squares are accumulated in float64.

import { silu } from '../../nn/activations.ts';

/**
 * residual[i] = x[i] + residual[i] (skipped when `addResidual` is false: residual = x), then
 * out = residual / sqrt(mean(residual²) + eps) · weight, row by row of width d.
 */
export function addRmsNorm(
  out: Float32Array, // (t, d)
  residual: Float32Array, // (t, d) in/out
  x: Float32Array, // (t, d)
  addResidual: boolean,
  weight: Float32Array, // (d)
  eps: number,
  t: number,
  d: number,
): void {
  for (let row = 0; row < t; row++) {
    const base = row * d;
    let sumSq = 0;
    for (let i = 0; i < d; i++) {
      const v = addResidual ? x[base + i] + residual[base + i] : x[base + i];
      residual[base + i] = v;
      const r = residual[base + i];
      sumSq += r * r;
    }
    const scale = 1 / Math.sqrt(sumSq / d + eps);
    for (let i = 0; i < d; i++) out[base + i] = residual[base + i] * scale * weight[i];
  }
}

/**
 * Gated RMSNorm of mamba_ssm (RMSNormGated), normalised per group of `groupSize` channels:
 * normBeforeGate false: out = RMSNorm(y · SiLU(z)) · weight;
 * normBeforeGate true:  out = RMSNorm(y) · weight · SiLU(z).
 */
export function gatedRmsNorm(
  out: Float32Array, // (t, c)
  y: Float32Array, // (t, c)
  z: Float32Array, // (t, c)
  weight: Float32Array, // (c)
  eps: number,
  groupSize: number,
  normBeforeGate: boolean,
  t: number,
  c: number,
): void {
  const gated = new Float64Array(groupSize); // (groupSize)
  for (let row = 0; row < t; row++) {
    for (let g0 = row * c; g0 < (row + 1) * c; g0 += groupSize) {
      let sumSq = 0;
      for (let i = 0; i < groupSize; i++) {
        const v = normBeforeGate ? y[g0 + i] : y[g0 + i] * silu(z[g0 + i]);
        gated[i] = v;
        sumSq += v * v;
      }
      const scale = 1 / Math.sqrt(sumSq / groupSize + eps);
      const w0 = g0 % c;
      for (let i = 0; i < groupSize; i++) {
        const normed = gated[i] * scale * weight[w0 + i];
        out[g0 + i] = normBeforeGate ? normed * silu(z[g0 + i]) : normed;
      }
    }
  }
}
