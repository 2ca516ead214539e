// Finite-difference gradient checks for backward kernels. The scalar loss is L = Σ dy · forward(inputs),
// with forward a float64 twin of the op (src/nn/reference.ts, src/ssm/reference/, or written in the
// test); each element of every input named in `analytic` is perturbed by ±h and the central
// difference (L₊ − L₋) / 2h compared with the kernel's gradient: max |analytic − fd| / max |fd|
// (absolute when fd is all zero), printed per input with t.diagnostic and asserted ≤ tol.
// Inputs absent from `analytic` (ids, targets, inputs without a gradient) are never perturbed.
// In float64 with h = 1e-5 the difference itself is good to ~1e-9 relative, so a float32 kernel
// can be held to 1e-4. Cost: two forward calls per checked element: keep shapes tiny.

import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { relDiff, SEED } from './random.ts';

export type Inputs = Record<string, Float64Array>;

export interface GradCheck {
  /** Names the op in messages. */
  name: string;
  /** Every input of the forward, float64. The arrays are perturbed in place and restored. */
  inputs: Inputs;
  /** The float64 forward: y as one flat array (concatenate several outputs). */
  forward: (inputs: Inputs) => Float64Array;
  /** The kernel's gradient of L for the inputs to check (read back from the backend). */
  analytic: Record<string, ArrayLike<number>>;
  /** The output gradient: weights of L = Σ dy · y, the same length as forward's result. */
  dy: Float64Array;
  /** Largest relative difference allowed per input (e.g. 1e-4 for a float32 kernel). */
  tol: number;
  /** The perturbation (default 1e-5). */
  h?: number;
}

/** L = Σ dy · forward(inputs). */
function lossOf(check: GradCheck): number {
  const y = check.forward(check.inputs);
  assert.equal(
    y.length,
    check.dy.length,
    `${check.name}: forward gives ${y.length} values, dy ${check.dy.length}`,
  );
  let loss = 0;
  for (let i = 0; i < y.length; i++) loss += check.dy[i] * y[i];
  return loss;
}

/** The central-difference gradient of L = Σ dy · forward(inputs) with respect to inputs[key]. */
export function numericGrad(check: GradCheck, key: string): Float64Array {
  const x = check.inputs[key];
  assert.ok(x, `${check.name}: no input named ${key}`);
  const h = check.h ?? 1e-5;
  const grad = new Float64Array(x.length); // like x
  for (let i = 0; i < x.length; i++) {
    const keep = x[i];
    x[i] = keep + h;
    const plus = lossOf(check);
    x[i] = keep - h;
    const minus = lossOf(check);
    x[i] = keep;
    grad[i] = (plus - minus) / (2 * h);
  }
  return grad;
}

/**
 * Checks every gradient in check.analytic against finite differences; prints the largest relative
 * difference of each input and returns the largest of all.
 */
export function checkGrad(t: TestContext, check: GradCheck): number {
  let worst = 0;
  for (const [key, got] of Object.entries(check.analytic)) {
    const want = numericGrad(check, key);
    const diff = relDiff(Float64Array.from(got), want);
    t.diagnostic(`${check.name} d${key}: largest relative difference ${diff.toExponential(2)}`);
    assert.ok(
      diff <= check.tol,
      `${check.name} d${key}: relative difference ${diff} > ${check.tol} (SEED=${SEED})`,
    );
    worst = Math.max(worst, diff);
  }
  return worst;
}
