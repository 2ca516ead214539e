// CPU kernel: Mamba-2's chunked SSD (state space duality) with the Δ preprocessing fused in.
// Reference twins: ssdChunked / ssdSequential in src/ssm/reference/ssd.ts.
//
//   Δ = clamp(softplus(dt + dtBias), dtLimit)            per (position, head)
//   h_t = exp(Δ_t A) h_{t-1} + Δ_t x_t B_tᵀ,  y_t = h_t C_t + D x_t      (h_t: (p, n) per head)
//
// The length is cut into chunks of q positions. Inside a chunk the output is the quadratic
// (attention-like) form y_t = Σ_{s≤t} (C_t·B_s) exp(cs_t − cs_s) Δ_s x_s with cs the running sum
// of Δ·A, plus the carried-in state's part exp(cs_t) h_prev C_t; the state then moves to the
// chunk's end: h = exp(cs_last) h_prev + Σ_s exp(cs_last − cs_s) Δ_s x_s B_sᵀ. C_t·B_s is shared
// by the heads of a group and computed once per group. Every exponent is ≤ 0.

import { softplus } from '../../nn/activations.ts';

export interface SsdArrays {
  y: Float32Array; // (b, l, h, p) out
  x: Float32Array; // (b, l, h, p)
  dt: Float32Array; // (b, l, h)
  dtBias: Float32Array; // (h)
  A: Float32Array; // (h)
  B: Float32Array; // (b, l, g, n)
  C: Float32Array; // (b, l, g, n)
  D: Float32Array; // (h)
  state: Float32Array; // (b, h, p, n) in/out
}

export interface SsdDims {
  b: number;
  l: number;
  h: number;
  p: number;
  g: number;
  n: number;
  q: number;
  dtMin: number;
  dtMax: number;
}

export function ssdChunked(a: SsdArrays, dims: SsdDims): void {
  const { y, x, dt, dtBias, A, B, C, D, state } = a;
  const { b, l, h, p, g, n, q, dtMin, dtMax } = dims;
  const headsPerGroup = h / g;
  const stateSize = h * p * n;
  const hs = new Float64Array(stateSize); // (h, p, n) running state of one sequence
  const dtc = new Float64Array(q * h); // (q, h) Δ in the chunk
  const cs = new Float64Array(q * h); // (q, h) running sum of Δ·A in the chunk
  const cb = new Float64Array(q * q); // (q, q) C_t·B_s of one group, s ≤ t
  const acc = new Float64Array(p); // (p) one output row
  for (let bi = 0; bi < b; bi++) {
    for (let i = 0; i < stateSize; i++) hs[i] = state[bi * stateSize + i];
    for (let t0 = 0; t0 < l; t0 += q) {
      const len = Math.min(q, l - t0);
      const pos = (t: number) => bi * l + t0 + t; // flat (b, l) index of chunk position t
      for (let hh = 0; hh < h; hh++) {
        let run = 0;
        for (let t = 0; t < len; t++) {
          const delta = Math.min(Math.max(softplus(dt[pos(t) * h + hh] + dtBias[hh]), dtMin), dtMax);
          dtc[t * h + hh] = delta;
          run += delta * A[hh];
          cs[t * h + hh] = run;
        }
      }
      for (let gi = 0; gi < g; gi++) {
        for (let t = 0; t < len; t++) {
          const ct = (pos(t) * g + gi) * n;
          for (let s = 0; s <= t; s++) {
            const bs = (pos(s) * g + gi) * n;
            let dot = 0;
            for (let ni = 0; ni < n; ni++) dot += C[ct + ni] * B[bs + ni];
            cb[t * q + s] = dot;
          }
        }
        for (let hh = gi * headsPerGroup; hh < (gi + 1) * headsPerGroup; hh++) {
          const hp = hh * p * n; // start of head hh in hs
          // Outputs: intra-chunk quadratic form + the carried-in state's part + D skip.
          for (let t = 0; t < len; t++) {
            const cst = cs[t * h + hh];
            acc.fill(0);
            for (let s = 0; s <= t; s++) {
              const weight = cb[t * q + s] * Math.exp(cst - cs[s * h + hh]) * dtc[s * h + hh];
              const xs = (pos(s) * h + hh) * p;
              for (let pi = 0; pi < p; pi++) acc[pi] += weight * x[xs + pi];
            }
            const ct = (pos(t) * g + gi) * n;
            const decay = Math.exp(cst);
            const xt = (pos(t) * h + hh) * p;
            for (let pi = 0; pi < p; pi++) {
              let dot = 0;
              for (let ni = 0, hi = hp + pi * n; ni < n; ni++, hi++) dot += hs[hi] * C[ct + ni];
              y[xt + pi] = acc[pi] + decay * dot + D[hh] * x[xt + pi];
            }
          }
          // State at the chunk's end.
          const csLast = cs[(len - 1) * h + hh];
          const decayAll = Math.exp(csLast);
          for (let i = hp; i < hp + p * n; i++) hs[i] *= decayAll;
          for (let s = 0; s < len; s++) {
            const coef = Math.exp(csLast - cs[s * h + hh]) * dtc[s * h + hh];
            const xs = (pos(s) * h + hh) * p;
            const bs = (pos(s) * g + gi) * n;
            for (let pi = 0; pi < p; pi++) {
              const cx = coef * x[xs + pi];
              for (let ni = 0, hi = hp + pi * n; ni < n; ni++, hi++) hs[hi] += cx * B[bs + ni];
            }
          }
        }
      }
    }
    for (let i = 0; i < stateSize; i++) state[bi * stateSize + i] = hs[i];
  }
}

/**
 * The same computation as a plain recurrence, position by position, on the float32 state in
 * place: 2·p·n multiply-adds per position and head, with no chunk scratch. The backend uses it for
 * decoding (l = 1), where the chunked form has nothing to share.
 */
export function ssdRecurrent(a: SsdArrays, dims: SsdDims): void {
  const { y, x, dt, dtBias, A, B, C, D, state } = a;
  const { b, l, h, p, g, n, dtMin, dtMax } = dims;
  const headsPerGroup = h / g;
  for (let bi = 0; bi < b; bi++) {
    for (let t = 0; t < l; t++) {
      const pos = bi * l + t; // flat (b, l) index
      for (let hh = 0; hh < h; hh++) {
        const delta = Math.min(Math.max(softplus(dt[pos * h + hh] + dtBias[hh]), dtMin), dtMax);
        const decay = Math.exp(delta * A[hh]);
        const bc = (pos * g + Math.floor(hh / headsPerGroup)) * n; // B_t, C_t of the head's group
        const xt = (pos * h + hh) * p;
        for (let pi = 0; pi < p; pi++) {
          const dx = delta * x[xt + pi];
          let acc = 0;
          for (let ni = 0, si = ((bi * h + hh) * p + pi) * n; ni < n; ni++, si++) {
            const hv = decay * state[si] + dx * B[bc + ni];
            state[si] = hv;
            acc += hv * C[bc + ni];
          }
          y[xt + pi] = acc + D[hh] * x[xt + pi];
        }
      }
    }
  }
}
