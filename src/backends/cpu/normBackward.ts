// Backward of the CPU normalisations (norm.ts): residual add + RMSNorm and Mamba-2's gated RMSNorm.
// For v normalised over a group of G values, r = 1 / sqrt(mean(v²) + eps) and out = v · r · w:
//   dw_i += e_i · v_i · r,   dv_i = r · w_i · e_i − v_i · r³ / G · Σ_j e_j · w_j · v_j,
// with e the gradient reaching the normalised product. Sums and r are carried in float64; the
// weight gradient is summed over rows in float64 and added once.

import { silu } from '../../nn/activations.ts';

/** SiLU′(a) = σ(a) · (1 + a · (1 − σ(a))). */
export function siluGrad(a: number): number {
  const s = 1 / (1 + Math.exp(-a));
  return s * (1 + a * (1 - s));
}

/**
 * Gradient of one group: reads v[0, G) and e[0, G) (float64 scratch), adds to dw[w0 + i] and
 * writes dv[0, G) back into v; returns r.
 */
function groupBackward(
  v: Float64Array,
  e: Float64Array,
  weight: Float32Array,
  w0: number,
  dw: Float64Array,
  eps: number,
): number {
  const size = v.length;
  let sumSq = 0;
  let dot = 0;
  for (let i = 0; i < size; i++) {
    sumSq += v[i] * v[i];
    dot += e[i] * weight[w0 + i] * v[i];
  }
  const r = 1 / Math.sqrt(sumSq / size + eps);
  const k = (r * r * r * dot) / size;
  for (let i = 0; i < size; i++) {
    dw[w0 + i] += e[i] * v[i] * r;
    v[i] = r * weight[w0 + i] * e[i] - v[i] * k;
  }
  return r;
}

/**
 * Backward of addRmsNorm: dx (t, d) = dNormed through the norm of `sum`, plus dSum when given;
 * dWeight (d) += the weight's gradient.
 */
export function addRmsNormBackward(
  dx: Float32Array, // (t, d) out
  dNormed: Float32Array, // (t, d)
  dSum: Float32Array | null, // (t, d)
  sum: Float32Array, // (t, d) the residual' of the forward
  weight: Float32Array, // (d)
  eps: number,
  dWeight: Float32Array, // (d) in/out
  t: number,
  d: number,
): void {
  const v = new Float64Array(d); // (d)
  const e = new Float64Array(d); // (d)
  const dw = new Float64Array(d); // (d)
  for (let row = 0; row < t; row++) {
    const base = row * d;
    for (let i = 0; i < d; i++) {
      v[i] = sum[base + i];
      e[i] = dNormed[base + i];
    }
    groupBackward(v, e, weight, 0, dw, eps);
    for (let i = 0; i < d; i++) dx[base + i] = dSum === null ? v[i] : v[i] + dSum[base + i];
  }
  for (let i = 0; i < d; i++) dWeight[i] += dw[i];
}

/**
 * Backward of gatedRmsNorm (groups of `groupSize` channels). normBeforeGate false: v = y · SiLU(z),
 * e = dOut; true: v = y, e = dOut · SiLU(z), and z's gradient comes from the gate after the norm.
 */
export function gatedRmsNormBackward(
  dy: Float32Array, // (t, c) out
  dz: Float32Array, // (t, c) out
  dOut: Float32Array, // (t, c)
  y: Float32Array, // (t, c)
  z: Float32Array, // (t, c)
  weight: Float32Array, // (c)
  eps: number,
  groupSize: number,
  normBeforeGate: boolean,
  dWeight: Float32Array, // (c) in/out
  t: number,
  c: number,
): void {
  const v = new Float64Array(groupSize); // (groupSize)
  const e = new Float64Array(groupSize); // (groupSize)
  const dw = new Float64Array(c); // (c)
  for (let g0 = 0; g0 < t * c; g0 += groupSize) {
    const w0 = g0 % c;
    for (let i = 0; i < groupSize; i++) {
      const gate = silu(z[g0 + i]);
      v[i] = normBeforeGate ? y[g0 + i] : y[g0 + i] * gate;
      e[i] = normBeforeGate ? dOut[g0 + i] * gate : dOut[g0 + i];
    }
    const r = groupBackward(v, e, weight, w0, dw, eps);
    for (let i = 0; i < groupSize; i++) {
      const a = z[g0 + i];
      if (normBeforeGate) {
        dy[g0 + i] = v[i];
        dz[g0 + i] = dOut[g0 + i] * y[g0 + i] * r * weight[w0 + i] * siluGrad(a);
      } else {
        dy[g0 + i] = v[i] * silu(a);
        dz[g0 + i] = v[i] * y[g0 + i] * siluGrad(a);
      }
    }
  }
  for (let i = 0; i < c; i++) dWeight[i] += dw[i];
}
