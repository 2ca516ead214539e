// Mamba-2's state space duality (SSD), float64 reference in three equivalent forms.
// A is one negative scalar per head; the p channels of a head share its recurrence; B and C are
// shared by groups of heads (head hh uses group ⌊hh / (h/g)⌋, like grouped-query attention).
// Per batch and head, with state h_t of shape (p, n):
//   h_t = exp(dt_t A) h_{t−1} + dt_t x_t B_tᵀ,   h_0 given (zeros by default)
//   y_t = h_t C_t + D x_t
// With cs_t = Σ_{r≤t} dt_r A (running sum from the start of the sequence or chunk) the decay
// from s to t is exp(cs_t − cs_s) for s ≤ t; A < 0 and dt > 0 make that exponent ≤ 0, and only
// s ≤ t (the causal part) is ever exponentiated. Unrolled, the dual (attention-like) form is
//   y_t = Σ_{s≤t} (C_t·B_s) exp(cs_t − cs_s) dt_s x_s + exp(cs_t) h_0 C_t + D x_t.
// ssdSequential runs the recurrence, ssdQuadratic materialises the (l, l) matrix of that sum,
// ssdChunked is the chunked algorithm of the Mamba-2 paper (ssd_minimal in mamba_ssm).
// All return y and the state after the last position.
// Leaves out: dt preprocessing (bias, softplus, clamp: the caller's), the z gate and gated
// RMSNorm, and gradients.

import { expectLength } from './shapes.ts';

export interface SsdInputs {
  b: number;
  l: number;
  h: number;
  p: number;
  g: number;
  n: number;
  x: Float64Array; // (b, l, h, p)
  dt: Float64Array; // (b, l, h) already positive (after softplus + bias + clamp by the caller)
  A: Float64Array; // (h) negative
  B: Float64Array; // (b, l, g, n)
  C: Float64Array; // (b, l, g, n)
  D?: Float64Array; // (h) y += D x
  h0?: Float64Array; // (b, h, p, n)
}

export interface SsdResult {
  y: Float64Array; // (b, l, h, p)
  hLast: Float64Array; // (b, h, p, n)
}

/** Checks shapes and returns flat-index helpers for this problem's row-major arrays. */
function layout(inp: SsdInputs) {
  const { b, l, h, p, g, n } = inp;
  const where = 'ssd';
  if (!Number.isInteger(h / g))
    throw new Error(`${where}: h = ${h} heads is not a multiple of g = ${g} groups`);
  expectLength(where, 'x', inp.x, [b, l, h, p]);
  expectLength(where, 'dt', inp.dt, [b, l, h]);
  expectLength(where, 'A', inp.A, [h]);
  expectLength(where, 'B', inp.B, [b, l, g, n]);
  expectLength(where, 'C', inp.C, [b, l, g, n]);
  expectLength(where, 'D', inp.D, [h]);
  expectLength(where, 'h0', inp.h0, [b, h, p, n]);
  const headsPerGroup = h / g;
  return {
    /** (bi, t, hh, pp) in (b, l, h, p) */
    x: (bi: number, t: number, hh: number, pp: number) => ((bi * l + t) * h + hh) * p + pp,
    /** (bi, t, hh) in (b, l, h) */
    dt: (bi: number, t: number, hh: number) => (bi * l + t) * h + hh,
    /** (bi, t, group of hh, ni) in (b, l, g, n) */
    bc: (bi: number, t: number, hh: number, ni: number) =>
      ((bi * l + t) * g + Math.floor(hh / headsPerGroup)) * n + ni,
    /** (bi, hh, pp, ni) in (b, h, p, n) */
    state: (bi: number, hh: number, pp: number, ni: number) => ((bi * h + hh) * p + pp) * n + ni,
  };
}

type Layout = ReturnType<typeof layout>;

/** cs[i] = Σ_{r=t0..t0+i} dt_r A: running log-decay of one (batch, head) segment [t0, t0 + len). */
function cumsumDtA(
  inp: SsdInputs,
  ix: Layout,
  bi: number,
  hh: number,
  t0: number,
  len: number,
): Float64Array {
  const cs = new Float64Array(len); // (len)
  let run = 0;
  for (let i = 0; i < len; i++) cs[i] = run += inp.dt[ix.dt(bi, t0 + i, hh)] * inp.A[hh];
  return cs;
}

/** C_t · B_s over the state dimension, both from head hh's group. */
function cDotB(inp: SsdInputs, ix: Layout, bi: number, hh: number, t: number, s: number): number {
  let acc = 0;
  for (let ni = 0; ni < inp.n; ni++) acc += inp.C[ix.bc(bi, t, hh, ni)] * inp.B[ix.bc(bi, s, hh, ni)];
  return acc;
}

/** C_t · state[bi, hh, pp, :]. */
function cDotState(
  inp: SsdInputs,
  ix: Layout,
  state: Float64Array, // (b, h, p, n)
  bi: number,
  hh: number,
  t: number,
  pp: number,
): number {
  let acc = 0;
  for (let ni = 0; ni < inp.n; ni++) acc += inp.C[ix.bc(bi, t, hh, ni)] * state[ix.state(bi, hh, pp, ni)];
  return acc;
}

/** y += D x, in place, when D is given. */
function addSkip(inp: SsdInputs, y: Float64Array /* (b, l, h, p) */): void {
  if (!inp.D) return;
  for (let i = 0; i < y.length; i++) y[i] += inp.D[Math.floor(i / inp.p) % inp.h] * inp.x[i];
}

function initialState(inp: SsdInputs): Float64Array /* (b, h, p, n) */ {
  const { b, h, p, n } = inp;
  return inp.h0 ? Float64Array.from(inp.h0) : new Float64Array(b * h * p * n);
}

/** The recurrence, one position at a time. */
export function ssdSequential(inp: SsdInputs): SsdResult {
  const ix = layout(inp);
  const { b, l, h, p, n, x, dt, A, B } = inp;
  const y = new Float64Array(b * l * h * p); // (b, l, h, p)
  const hLast = initialState(inp); // (b, h, p, n) running state
  for (let bi = 0; bi < b; bi++) {
    for (let t = 0; t < l; t++) {
      for (let hh = 0; hh < h; hh++) {
        const dtv = dt[ix.dt(bi, t, hh)];
        const decay = Math.exp(dtv * A[hh]);
        for (let pp = 0; pp < p; pp++) {
          const dtx = dtv * x[ix.x(bi, t, hh, pp)];
          for (let ni = 0; ni < n; ni++) {
            const s = ix.state(bi, hh, pp, ni);
            hLast[s] = decay * hLast[s] + dtx * B[ix.bc(bi, t, hh, ni)];
          }
          y[ix.x(bi, t, hh, pp)] = cDotState(inp, ix, hLast, bi, hh, t, pp);
        }
      }
    }
  }
  addSkip(inp, y);
  return { y, hLast };
}

/**
 * The dual form: per (batch, head) the lower-triangular (l, l) matrix
 * M[t, s] = (C_t·B_s) exp(cs_t − cs_s) dt_s (s ≤ t) times x, plus the decayed initial state read
 * out by C_t. The final state uses the same running sums: exp(cs_last) h_0 + Σ_s exp(cs_last − cs_s) dt_s x_s B_sᵀ.
 */
export function ssdQuadratic(inp: SsdInputs): SsdResult {
  const ix = layout(inp);
  const { b, l, h, p, n, x, dt, B } = inp;
  const y = new Float64Array(b * l * h * p); // (b, l, h, p)
  const h0 = initialState(inp); // (b, h, p, n)
  const hLast = new Float64Array(b * h * p * n); // (b, h, p, n)
  const M = new Float64Array(l * l); // (l, l) causal mixing matrix of one (batch, head), zero above the diagonal
  for (let bi = 0; bi < b; bi++) {
    for (let hh = 0; hh < h; hh++) {
      const cs = cumsumDtA(inp, ix, bi, hh, 0, l); // (l)
      for (let t = 0; t < l; t++) {
        for (let s = 0; s <= t; s++) {
          M[t * l + s] = cDotB(inp, ix, bi, hh, t, s) * Math.exp(cs[t] - cs[s]) * dt[ix.dt(bi, s, hh)];
        }
      }
      for (let t = 0; t < l; t++) {
        for (let pp = 0; pp < p; pp++) {
          let acc = Math.exp(cs[t]) * cDotState(inp, ix, h0, bi, hh, t, pp);
          for (let s = 0; s <= t; s++) acc += M[t * l + s] * x[ix.x(bi, s, hh, pp)];
          y[ix.x(bi, t, hh, pp)] = acc;
        }
      }
      const total = l > 0 ? cs[l - 1] : 0;
      for (let pp = 0; pp < p; pp++) {
        for (let ni = 0; ni < n; ni++) {
          let acc = Math.exp(total) * h0[ix.state(bi, hh, pp, ni)];
          for (let s = 0; s < l; s++) {
            const w = Math.exp(total - cs[s]) * dt[ix.dt(bi, s, hh)];
            acc += w * x[ix.x(bi, s, hh, pp)] * B[ix.bc(bi, s, hh, ni)];
          }
          hLast[ix.state(bi, hh, pp, ni)] = acc;
        }
      }
    }
  }
  addSkip(inp, y);
  return { y, hLast };
}

/**
 * The chunked SSD algorithm. The length is cut into chunks of q positions (the last may be
 * shorter); cs restarts at every chunk. Per (batch, head):
 *   1. diagonal blocks: the quadratic form inside each chunk, from the chunk's own inputs;
 *   2. chunk states: S_c = Σ_{s in c} exp(cs_last − cs_s) dt_s x_s B_sᵀ, the state at the end
 *      of chunk c had it started from zero;
 *   3. inter-chunk recurrence: H_0 = h0, H_{c+1} = exp(cs_last of c) H_c + S_c (H_c is the
 *      state entering chunk c; H_chunks is the final state);
 *   4. state to output: y_t += exp(cs_t) H_c C_t for t in chunk c.
 */
export function ssdChunked(inp: SsdInputs, q: number): SsdResult {
  if (!Number.isInteger(q) || q < 1)
    throw new Error(`ssdChunked: chunk length q = ${q} is not a positive integer`);
  const ix = layout(inp);
  const { b, l, h, p, n, x, dt, B } = inp;
  const chunks = Math.ceil(l / q);
  const y = new Float64Array(b * l * h * p); // (b, l, h, p)
  const h0 = initialState(inp); // (b, h, p, n)
  const hLast = new Float64Array(b * h * p * n); // (b, h, p, n)
  const states = new Float64Array(chunks * p * n); // (chunks, p, n) S_c of one (batch, head)
  const entering = new Float64Array((chunks + 1) * p * n); // (chunks + 1, p, n) H_c of one (batch, head)
  for (let bi = 0; bi < b; bi++) {
    for (let hh = 0; hh < h; hh++) {
      const cs: Float64Array[] = []; // (chunks) of (chunk length) running sums
      for (let c = 0; c < chunks; c++) cs.push(cumsumDtA(inp, ix, bi, hh, c * q, Math.min(q, l - c * q)));
      // 1. diagonal blocks
      for (let c = 0; c < chunks; c++) {
        const t0 = c * q;
        for (let i = 0; i < cs[c].length; i++) {
          for (let pp = 0; pp < p; pp++) {
            let acc = 0;
            for (let j = 0; j <= i; j++) {
              const w = cDotB(inp, ix, bi, hh, t0 + i, t0 + j) * Math.exp(cs[c][i] - cs[c][j]);
              acc += w * dt[ix.dt(bi, t0 + j, hh)] * x[ix.x(bi, t0 + j, hh, pp)];
            }
            y[ix.x(bi, t0 + i, hh, pp)] = acc;
          }
        }
      }
      // 2. chunk states
      for (let c = 0; c < chunks; c++) {
        const t0 = c * q;
        const last = cs[c][cs[c].length - 1];
        for (let pp = 0; pp < p; pp++) {
          for (let ni = 0; ni < n; ni++) {
            let acc = 0;
            for (let j = 0; j < cs[c].length; j++) {
              const w = Math.exp(last - cs[c][j]) * dt[ix.dt(bi, t0 + j, hh)];
              acc += w * x[ix.x(bi, t0 + j, hh, pp)] * B[ix.bc(bi, t0 + j, hh, ni)];
            }
            states[(c * p + pp) * n + ni] = acc;
          }
        }
      }
      // 3. inter-chunk recurrence ((p, n) block of (bi, hh) is contiguous in (b, h, p, n))
      const block = ix.state(bi, hh, 0, 0);
      entering.set(h0.subarray(block, block + p * n));
      for (let c = 0; c < chunks; c++) {
        const decay = Math.exp(cs[c][cs[c].length - 1]);
        for (let k = 0; k < p * n; k++) {
          entering[(c + 1) * p * n + k] = decay * entering[c * p * n + k] + states[c * p * n + k];
        }
      }
      hLast.set(entering.subarray(chunks * p * n), block);
      // 4. state to output
      for (let c = 0; c < chunks; c++) {
        const t0 = c * q;
        for (let i = 0; i < cs[c].length; i++) {
          for (let pp = 0; pp < p; pp++) {
            let acc = 0;
            for (let ni = 0; ni < n; ni++) {
              acc += inp.C[ix.bc(bi, t0 + i, hh, ni)] * entering[(c * p + pp) * n + ni];
            }
            y[ix.x(bi, t0 + i, hh, pp)] += Math.exp(cs[c][i]) * acc;
          }
        }
      }
    }
  }
  addSkip(inp, y);
  return { y, hLast };
}
