// S4D, the diagonal time-invariant SSM, float64 reference written loop by loop from the equations.
// Per channel d and state n (every (d, n) lane is a scalar SSM, the same at every position):
//   Δ_d = exp(log_dt_d),  A_dn = −exp(A_log_dn) (S4D-Real: A_log init log(n + 1))
//   Ā = exp(ΔA),  B̄ = (ΔA)⁻¹ (exp(ΔA) − 1) ΔB        (exact ZOH: zohDiagonal)
// Recurrent form:    h_t = Ā h_{t−1} + B̄ u_t,  y_t = Σ_n C h_t + D u_t   (s4dRecurrentRef)
// Convolution form:  K̄_k = Σ_n C B̄ Āᵏ (k = 0…l−1),  y_t = Σ_{k≤t} K̄_k u_{t−k} + D u_t
//                    (s4dKernelRef, s4dConvolutionRef: direct O(l²) sums, from a zero state)
// Both then gate: y_t *= SiLU(z_t) when z is given. B and C are per channel (d, n), real.
// Leaves out: complex A (S4D-Lin), the bilinear rule, and gradients (test/ssm/s4d.test.ts checks
// the fast kernels' backward against these forwards by finite differences).

import { silu } from '../../nn/activations.ts';
import { zohDiagonal } from './discretize.ts';
import { expectLength } from './shapes.ts';

export interface S4dInputs {
  b: number;
  l: number;
  d: number;
  n: number;
  u: Float64Array; // (b, l, d)
  logDt: Float64Array; // (d)
  A: Float64Array; // (d, n) already negative: A = −exp(A_log)
  B: Float64Array; // (d, n)
  C: Float64Array; // (d, n)
  D?: Float64Array; // (d)
  z?: Float64Array; // (b, l, d) gate: y *= silu(z)
  h0?: Float64Array; // (b, d, n) initial state (recurrent form only), zeros if absent
}

function check(where: string, x: S4dInputs): void {
  const { b, l, d, n } = x;
  expectLength(where, 'u', x.u, [b, l, d]);
  expectLength(where, 'logDt', x.logDt, [d]);
  for (const [name, arr] of [
    ['A', x.A],
    ['B', x.B],
    ['C', x.C],
  ] as const)
    expectLength(where, name, arr, [d, n]);
  expectLength(where, 'D', x.D, [d]);
  expectLength(where, 'z', x.z, [b, l, d]);
  expectLength(where, 'h0', x.h0, [b, d, n]);
}

/** Ā and B̄ of every lane by exact ZOH: (d, n) each. */
export function s4dDiscretizeRef(x: S4dInputs): { Abar: Float64Array; Bbar: Float64Array } {
  const Abar = new Float64Array(x.d * x.n); // (d, n)
  const Bbar = new Float64Array(x.d * x.n); // (d, n)
  for (let c = 0; c < x.d; c++) {
    for (let s = 0; s < x.n; s++) {
      const lane = zohDiagonal(Math.exp(x.logDt[c]), x.A[c * x.n + s], x.B[c * x.n + s]);
      Abar[c * x.n + s] = lane.Abar;
      Bbar[c * x.n + s] = lane.Bbar;
    }
  }
  return { Abar, Bbar };
}

/** K̄ (d, l): K̄[c, k] = Σ_n C Āᵏ B̄. */
export function s4dKernelRef(x: S4dInputs): Float64Array {
  check('s4dKernelRef', x);
  const { Abar, Bbar } = s4dDiscretizeRef(x);
  const K = new Float64Array(x.d * x.l); // (d, l)
  for (let c = 0; c < x.d; c++)
    for (let k = 0; k < x.l; k++)
      for (let s = 0; s < x.n; s++) {
        const i = c * x.n + s;
        K[c * x.l + k] += x.C[i] * Abar[i] ** k * Bbar[i];
      }
  return K;
}

function gate(x: S4dInputs, at: number, y: number): number {
  return (y + (x.D ? x.D[at % x.d] * x.u[at] : 0)) * (x.z ? silu(x.z[at]) : 1);
}

/** The recurrence position by position: y (b, l, d) and the state after the last position (b, d, n). */
export function s4dRecurrentRef(x: S4dInputs): { y: Float64Array; hLast: Float64Array } {
  check('s4dRecurrentRef', x);
  const { b, l, d, n } = x;
  const { Abar, Bbar } = s4dDiscretizeRef(x);
  const y = new Float64Array(b * l * d); // (b, l, d)
  const h = x.h0 ? Float64Array.from(x.h0) : new Float64Array(b * d * n); // (b, d, n)
  for (let bi = 0; bi < b; bi++)
    for (let t = 0; t < l; t++)
      for (let c = 0; c < d; c++) {
        const at = (bi * l + t) * d + c;
        let acc = 0;
        for (let s = 0; s < n; s++) {
          const i = (bi * d + c) * n + s;
          h[i] = Abar[c * n + s] * h[i] + Bbar[c * n + s] * x.u[at];
          acc += x.C[c * n + s] * h[i];
        }
        y[at] = gate(x, at, acc);
      }
  return { y, hLast: h };
}

/** The convolution y = K̄ * u (+ D u, gated) by direct causal sums, from a zero state: (b, l, d). */
export function s4dConvolutionRef(x: S4dInputs): Float64Array {
  check('s4dConvolutionRef', x);
  const { b, l, d } = x;
  const K = s4dKernelRef(x); // (d, l)
  const y = new Float64Array(b * l * d); // (b, l, d)
  for (let bi = 0; bi < b; bi++)
    for (let t = 0; t < l; t++)
      for (let c = 0; c < d; c++) {
        let acc = 0;
        for (let k = 0; k <= t; k++) acc += K[c * l + k] * x.u[(bi * l + t - k) * d + c];
        const at = (bi * l + t) * d + c;
        y[at] = gate(x, at, acc);
      }
  return y;
}
