// CPU kernel: Mamba's fused selective scan (S6). Discretization, recurrence, the C contraction,
// the D skip and the SiLU(z) gate happen in one pass; the expanded state (b, l, d, n) is never
// stored: only the running state of one sequence's channels lives in a float64 scratch.
// Reference twin: selectiveScanSequential in src/ssm/reference/selectiveScan.ts.
//
//   Δ = softplus(delta + deltaBias)
//   h_t = exp(Δ_t A) ⊙ h_{t-1} + Δ_t B_t u_t        (Mamba's simplified B̄ = ΔB)
//   y_t = (C_t · h_t + D u_t) · SiLU(z_t)
//
// Channels are independent: the worker pool (threads.ts) shares out chunks of them. Inside a chunk
// loops run position-outer so that u, Δ, z of a position are read contiguously and B_t, C_t are
// reused by every channel. Each channel's arithmetic is the same on any number of threads. The
// parallel (associative) scan exists in the reference and belongs to GPUs.

import { silu, softplus } from '../../nn/activations.ts';
import { type LaneJob, runLanes, SCAN_JOB } from './threads.ts';

export interface SelectiveScanArrays {
  y: Float32Array; // (b, l, d) out
  u: Float32Array; // (b, l, d)
  delta: Float32Array; // (b, l, d)
  deltaBias: Float32Array; // (d)
  A: Float32Array; // (d, n)
  B: Float32Array; // (b, l, n)
  C: Float32Array; // (b, l, n)
  D: Float32Array; // (d)
  z: Float32Array; // (b, l, d)
  state: Float32Array; // (b, d, n) in/out
}

export function selectiveScan(a: SelectiveScanArrays, b: number, l: number, d: number, n: number): void {
  runLanes(scanJob, a, [b, l, d, n], d, b * l * d * n);
}

/** The scan of channels [d0, d1) over every sequence; params: b, l, d, n. */
export const scanJob: LaneJob<SelectiveScanArrays> = {
  id: SCAN_JOB,
  keys: ['y', 'u', 'delta', 'deltaBias', 'A', 'B', 'C', 'D', 'z', 'state'],
  run(a, params, _chunk, d0, d1) {
    const { y, u, delta, deltaBias, A, B, C, D, z, state } = a;
    const [b, l, d, n] = params;
    const h = new Float64Array((d1 - d0) * n); // (d1 − d0, n) running state of one sequence
    for (let bi = 0; bi < b; bi++) {
      const s0 = (bi * d + d0) * n; // (bi, d0, 0) in (b, d, n)
      for (let i = 0; i < h.length; i++) h[i] = state[s0 + i];
      for (let ti = 0; ti < l; ti++) {
        const row = (bi * l + ti) * d; // start of (bi, ti, :) in (b, l, d)
        const bc = (bi * l + ti) * n; // start of (bi, ti, :) in (b, l, n)
        for (let di = d0; di < d1; di++) {
          const dt = softplus(delta[row + di] + deltaBias[di]);
          const x = u[row + di];
          const dtx = dt * x;
          let acc = 0;
          for (let ni = 0, ai = di * n, hi = (di - d0) * n; ni < n; ni++, ai++, hi++) {
            const hv = Math.exp(dt * A[ai]) * h[hi] + dtx * B[bc + ni];
            h[hi] = hv;
            acc += C[bc + ni] * hv;
          }
          y[row + di] = (acc + D[di] * x) * silu(z[row + di]);
        }
      }
      for (let i = 0; i < h.length; i++) state[s0 + i] = h[i];
    }
  },
};
