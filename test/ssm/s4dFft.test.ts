// The radix-2 FFT of S4D's convolution mode (src/ssm/s4dFft.ts) against a direct O(N²) DFT in
// float64, the inverse against the input, and unpackPair against separate transforms.

import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { FftPlan, nextPow2, unpackPair } from '../../src/ssm/s4dFft.ts';
import { normal, relDiff, rngFor } from '../helpers/random.ts';

const TOL = 1e-12;

function dft(re: Float64Array, im: Float64Array): [Float64Array, Float64Array] {
  const size = re.length;
  const [outR, outI] = [new Float64Array(size), new Float64Array(size)];
  for (let k = 0; k < size; k++)
    for (let j = 0; j < size; j++) {
      const angle = (-2 * Math.PI * ((j * k) % size)) / size;
      outR[k] += re[j] * Math.cos(angle) - im[j] * Math.sin(angle);
      outI[k] += re[j] * Math.sin(angle) + im[j] * Math.cos(angle);
    }
  return [outR, outI];
}

function close(t: TestContext, label: string, got: Float64Array, want: Float64Array): void {
  const diff = relDiff(got, want);
  t.diagnostic(`${label}: largest relative difference ${diff.toExponential(2)}`);
  assert.ok(diff <= TOL, `${label}: relative difference ${diff} > ${TOL}`);
}

test('fft: forward against a direct DFT and inverse(forward(x)) = x, sizes 1 to 256', (t) => {
  const rand = rngFor(t);
  for (const size of [1, 2, 4, 8, 64, 256]) {
    const re = Float64Array.from({ length: size }, () => normal(rand));
    const im = Float64Array.from({ length: size }, () => normal(rand));
    const [wantR, wantI] = dft(re, im);
    const [gotR, gotI] = [Float64Array.from(re), Float64Array.from(im)];
    const plan = new FftPlan(size);
    plan.transform(gotR, gotI, false);
    close(t, `size ${size} re`, gotR, wantR);
    close(t, `size ${size} im`, gotI, wantI);
    plan.transform(gotR, gotI, true);
    close(t, `size ${size} inverse re`, gotR, re);
    close(t, `size ${size} inverse im`, gotI, im);
  }
  assert.equal(nextPow2(1), 1);
  assert.equal(nextPow2(80), 128);
  assert.throws(() => new FftPlan(12), /not a power of two/);
});

test('fft: two real signals in one transform, split by unpackPair', (t) => {
  const rand = rngFor(t);
  const size = 32;
  const p = Float64Array.from({ length: size }, () => normal(rand));
  const q = Float64Array.from({ length: size }, () => normal(rand));
  const [zr, zi] = [Float64Array.from(p), Float64Array.from(q)];
  new FftPlan(size).transform(zr, zi, false);
  const out = Array.from({ length: 4 }, () => new Float64Array(size));
  unpackPair(zr, zi, out[0], out[1], out[2], out[3]);
  const [pr, pi] = dft(p, new Float64Array(size));
  const [qr, qi] = dft(q, new Float64Array(size));
  close(t, 'P re', out[0], pr);
  close(t, 'P im', out[1], pi);
  close(t, 'Q re', out[2], qr);
  close(t, 'Q im', out[3], qi);
});
