// Mamba's S6 selective scan, float64 reference with the semantics of mamba_ssm's
// selective_scan_ref (B and C shared by all channels: the "variable B/C" case without groups).
// Per batch b, channel d, state n (every (b, d, n) lane is an independent scalar recurrence):
//   Δ_t = softplus(delta_t + deltaBias)     (bias and softplus only when asked for)
//   (Ā_t, B̄_t) = discretize(Δ_t, A, B_t)     (default zohSimplified: Ā = exp(ΔA), B̄ = ΔB)
//   h_t = Ā_t h_{t−1} + B̄_t u_t,   h_0 given (zeros by default)
//   y_t = Σ_n C_t h_t + D u_t,      then y_t *= SiLU(z_t)
// selectiveScanSequential runs the recurrence position by position; selectiveScanParallel runs
// each lane as a Blelloch scan over (a, b) pairs (associativeScan.ts), as a GPU kernel would.
// Both return y and the state after the last position.
// Leaves out: complex A, B/C varying per channel or per group, the fused conv1d / projections,
// and gradients.

import { silu, softplus } from '../../nn/activations.ts';
import { blellochScan } from './associativeScan.ts';
import { type Discretize, zohSimplified } from './discretize.ts';
import { expectLength } from './shapes.ts';

export interface SelectiveScanInputs {
  b: number;
  l: number;
  d: number;
  n: number;
  u: Float64Array; // (b, l, d)
  delta: Float64Array; // (b, l, d) raw Δ before bias/softplus
  A: Float64Array; // (d, n) already negative: A = -exp(A_log)
  B: Float64Array; // (b, l, n)
  C: Float64Array; // (b, l, n)
  D?: Float64Array; // (d)
  z?: Float64Array; // (b, l, d) gate: y *= silu(z)
  deltaBias?: Float64Array; // (d)
  deltaSoftplus?: boolean; // Δ = softplus(Δ + bias)
  h0?: Float64Array; // (b, d, n) initial state, zeros if absent
  discretize?: Discretize; // default zohSimplified
}

export interface ScanResult {
  y: Float64Array; // (b, l, d)
  hLast: Float64Array; // (b, d, n)
}

function checkInputs(inp: SelectiveScanInputs): void {
  const { b, l, d, n } = inp;
  const where = 'selectiveScan';
  expectLength(where, 'u', inp.u, [b, l, d]);
  expectLength(where, 'delta', inp.delta, [b, l, d]);
  expectLength(where, 'A', inp.A, [d, n]);
  expectLength(where, 'B', inp.B, [b, l, n]);
  expectLength(where, 'C', inp.C, [b, l, n]);
  expectLength(where, 'D', inp.D, [d]);
  expectLength(where, 'z', inp.z, [b, l, d]);
  expectLength(where, 'deltaBias', inp.deltaBias, [d]);
  expectLength(where, 'h0', inp.h0, [b, d, n]);
}

/** Δ of (batch bi, position t, channel di) after the optional bias and softplus. */
function deltaAt(inp: SelectiveScanInputs, bi: number, t: number, di: number): number {
  const raw = inp.delta[(bi * inp.l + t) * inp.d + di] + (inp.deltaBias ? inp.deltaBias[di] : 0);
  return inp.deltaSoftplus ? softplus(raw) : raw;
}

/** y ← (y + D u) · SiLU(z), in place, each part only when given. */
function skipAndGate(inp: SelectiveScanInputs, y: Float64Array /* (b, l, d) */): void {
  const { D, z, u, d } = inp;
  for (let i = 0; i < y.length; i++) {
    if (D) y[i] += D[i % d] * u[i];
    if (z) y[i] *= silu(z[i]);
  }
}

/** The recurrence, one position at a time: O(b·l·d·n) work, depth l. */
export function selectiveScanSequential(inp: SelectiveScanInputs): ScanResult {
  checkInputs(inp);
  const { b, l, d, n, u, A, B, C } = inp;
  const discretize = inp.discretize ?? zohSimplified;
  const y = new Float64Array(b * l * d); // (b, l, d)
  const hLast = inp.h0 ? Float64Array.from(inp.h0) : new Float64Array(b * d * n); // (b, d, n) running state
  for (let bi = 0; bi < b; bi++) {
    for (let t = 0; t < l; t++) {
      const bc = (bi * l + t) * n; // start of (bi, t, :) in (b, l, n)
      for (let di = 0; di < d; di++) {
        const dlt = deltaAt(inp, bi, t, di);
        const x = u[(bi * l + t) * d + di];
        let acc = 0;
        for (let ni = 0; ni < n; ni++) {
          const { Abar, Bbar } = discretize(dlt, A[di * n + ni], B[bc + ni]);
          const s = (bi * d + di) * n + ni; // (bi, di, ni) in (b, d, n)
          hLast[s] = Abar * hLast[s] + Bbar * x;
          acc += C[bc + ni] * hLast[s];
        }
        y[(bi * l + t) * d + di] = acc;
      }
    }
  }
  skipAndGate(inp, y);
  return { y, hLast };
}

/**
 * Each (b, d, n) lane as an inclusive Blelloch scan of the pairs (Ā_t, B̄_t u_t), with the initial
 * state folded into the first pair (b_0 += a_0·h0) so that the scan's b part is h_t itself.
 */
export function selectiveScanParallel(inp: SelectiveScanInputs): ScanResult {
  checkInputs(inp);
  const { b, l, d, n, u, A, B, C, h0 } = inp;
  const discretize = inp.discretize ?? zohSimplified;
  const y = new Float64Array(b * l * d); // (b, l, d)
  const hLast = new Float64Array(b * d * n); // (b, d, n)
  const pa = new Float64Array(l); // (l) Ā_t of one lane
  const pb = new Float64Array(l); // (l) B̄_t u_t of one lane
  for (let bi = 0; bi < b; bi++) {
    for (let di = 0; di < d; di++) {
      for (let ni = 0; ni < n; ni++) {
        const s = (bi * d + di) * n + ni; // (bi, di, ni) in (b, d, n)
        const start = h0 ? h0[s] : 0;
        for (let t = 0; t < l; t++) {
          const { Abar, Bbar } = discretize(
            deltaAt(inp, bi, t, di),
            A[di * n + ni],
            B[(bi * l + t) * n + ni],
          );
          pa[t] = Abar;
          pb[t] = Bbar * u[(bi * l + t) * d + di];
        }
        if (l > 0) pb[0] += pa[0] * start;
        const states = blellochScan(pa, pb).b; // (l) h_t of this lane
        for (let t = 0; t < l; t++) y[(bi * l + t) * d + di] += C[(bi * l + t) * n + ni] * states[t];
        hLast[s] = l > 0 ? states[l - 1] : start;
      }
    }
  }
  skipAndGate(inp, y);
  return { y, hLast };
}
