// A radix-2 FFT for S4D's convolution mode (s4d.ts): iterative Cooley–Tukey, in place on a split
// complex array (re, im), float64, size a power of two. A plan keeps the twiddles and the
// bit-reversal permutation of one size. Real signals use it in pairs (two real inputs as the real
// and imaginary parts of one complex transform), split apart by Hermitian symmetry (`unpackPair`).
// Leaves out: other radices, sizes that are not powers of two, and in-place real transforms.

import { fail } from '../core/errors.ts';

/** The smallest power of two >= x. */
export function nextPow2(x: number): number {
  let n = 1;
  while (n < x) n *= 2;
  return n;
}

export class FftPlan {
  private readonly cos: Float64Array; // (size / 2)
  private readonly sin: Float64Array; // (size / 2)
  private readonly reversed: Uint32Array; // (size)

  constructor(readonly size: number) {
    if (size < 1 || (size & (size - 1)) !== 0) fail(`fft: size ${size} is not a power of two`);
    this.cos = Float64Array.from({ length: size / 2 }, (_, k) => Math.cos((2 * Math.PI * k) / size));
    this.sin = Float64Array.from({ length: size / 2 }, (_, k) => Math.sin((2 * Math.PI * k) / size));
    this.reversed = new Uint32Array(size);
    const bits = Math.log2(size);
    for (let i = 0; i < size; i++) {
      let r = 0;
      for (let j = 0; j < bits; j++) r |= ((i >> j) & 1) << (bits - 1 - j);
      this.reversed[i] = r;
    }
  }

  /**
   * X_k = Σ_j x_j e^{∓2πi jk/N} in place: the minus sign forward; inverse = true takes the plus
   * sign and divides by N, so that inverse(forward(x)) = x.
   */
  transform(re: Float64Array, im: Float64Array, inverse: boolean): void {
    const size = this.size;
    for (let i = 0; i < size; i++) {
      const j = this.reversed[i];
      if (j > i) {
        [re[i], re[j]] = [re[j], re[i]];
        [im[i], im[j]] = [im[j], im[i]];
      }
    }
    const sign = inverse ? 1 : -1;
    for (let half = 1; half < size; half *= 2) {
      const stride = size / (2 * half);
      for (let start = 0; start < size; start += 2 * half) {
        for (let k = 0; k < half; k++) {
          const wr = this.cos[k * stride];
          const wi = sign * this.sin[k * stride];
          const a = start + k;
          const b = a + half;
          const tr = wr * re[b] - wi * im[b];
          const ti = wr * im[b] + wi * re[b];
          re[b] = re[a] - tr;
          im[b] = im[a] - ti;
          re[a] += tr;
          im[a] += ti;
        }
      }
    }
    if (inverse) {
      for (let i = 0; i < size; i++) {
        re[i] /= size;
        im[i] /= size;
      }
    }
  }
}

/**
 * The spectra P and Q of two real signals p, q from Z = FFT(p + i q):
 * P_k = (Z_k + conj Z_{−k}) / 2, Q_k = (Z_k − conj Z_{−k}) / 2i. Writes them into the four outputs.
 */
export function unpackPair(
  zr: Float64Array,
  zi: Float64Array,
  pr: Float64Array,
  pi: Float64Array,
  qr: Float64Array,
  qi: Float64Array,
): void {
  const size = zr.length;
  for (let k = 0; k < size; k++) {
    const m = (size - k) % size;
    const ar = zr[k];
    const ai = zi[k];
    const br = zr[m];
    const bi = -zi[m]; // conj Z_{−k}
    pr[k] = (ar + br) / 2;
    pi[k] = (ai + bi) / 2;
    qr[k] = (ai - bi) / 2;
    qi[k] = -(ar - br) / 2;
  }
}
