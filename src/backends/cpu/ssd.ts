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
// by the heads of a group and computed once per group (and chunk of heads). Every exponent is ≤ 0.
// (Batch row, head) pairs are independent: the worker pool (threads.ts) shares out chunks of them,
// each pair's arithmetic the same in any chunk and on any number of threads.

import { softplus } from '../../nn/activations.ts';
import { type LaneJob, runLanes, SSD_JOB, scratchF64, threadCount } from './threads.ts';

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
  const { b, l, h, p, g, n, q, dtMin, dtMax } = dims;
  // Whole groups per chunk (C·B computed once per group) while that leaves every thread work.
  const chunks = b * g >= 2 * threadCount() ? b * g : b * h;
  runLanes(ssdJob, a, [l, h, p, g, n, q, dtMin, dtMax], b * h, b * l * h * p * (n + q), chunks);
}

/**
 * The chunked SSD of lanes [lo, hi) of the (batch row, head) pairs, batch-major; params: l, h, p,
 * g, n, q, dtMin, dtMax. Each lane's arithmetic is the same in any chunk.
 */
export const ssdJob: LaneJob<SsdArrays> = {
  id: SSD_JOB,
  keys: ['y', 'x', 'dt', 'dtBias', 'A', 'B', 'C', 'D', 'state'],
  run(a, params, _chunk, lo, hi) {
    const { y, x, dt, dtBias, A, B, C, D, state } = a;
    const [l, h, p, g, n, q, dtMin, dtMax] = params;
    const headsPerGroup = h / g;
    const hs = scratchF64(0, Math.min(hi - lo, h) * p * n); // (heads, p, n) running states of one row
    const dtc = scratchF64(1, q * h); // (q, h) Δ in the chunk
    const cs = scratchF64(2, q * h); // (q, h) running sum of Δ·A in the chunk
    const cb = scratchF64(3, q * q); // (q, q) C_t·B_s of one group, s ≤ t
    const w = scratchF64(4, q); // (q) weights of one output row, or of the state update
    const xT = scratchF64(5, p * q); // (p, q) x of one head in the chunk, transposed
    const bT = scratchF64(6, n * q); // (n, q) B of one group in the chunk, transposed
    const cx = scratchF64(7, q); // (q) w_s x_s of one state row
    const xStep = h * p; // between positions in x, y
    const bStep = g * n; // between positions in B, C
    const cRow = scratchF64(8, n); // (n) C_t of one position
    const bRows = scratchF64(9, q * n); // (q, n) B of one group in the chunk
    const k: HeadChunk = { y, C, hs, dtc, cs, cb, w, xT, bT, cx, cRow, bRows, h, p, n, q, xStep, bStep };
    for (let bi = Math.floor(lo / h); bi * h < hi; bi++) {
      const h0 = Math.max(0, lo - bi * h); // this row's heads [h0, h1)
      const h1 = Math.min(h, hi - bi * h);
      const s0 = (bi * h + h0) * p * n; // (bi, h0, 0, 0) in (b, h, p, n)
      for (let i = 0; i < (h1 - h0) * p * n; i++) hs[i] = state[s0 + i];
      for (let t0 = 0; t0 < l; t0 += q) {
        const len = Math.min(q, l - t0);
        const pos0 = bi * l + t0; // flat (b, l) index of the chunk's first position
        for (let hh = h0; hh < h1; hh++) {
          let run = 0;
          for (let t = 0; t < len; t++) {
            const delta = Math.min(Math.max(softplus(dt[(pos0 + t) * h + hh] + dtBias[hh]), dtMin), dtMax);
            dtc[t * h + hh] = delta;
            run += delta * A[hh];
            cs[t * h + hh] = run;
          }
        }
        for (let gi = Math.floor(h0 / headsPerGroup); gi * headsPerGroup < h1; gi++) {
          const c0 = (pos0 * g + gi) * n; // B, C[pos0, gi, :]; positions bStep apart
          for (let t = 0; t < len; t++) {
            for (let ni = 0, bt = c0 + t * bStep; ni < n; ni++) {
              bT[ni * q + t] = B[bt + ni];
              bRows[t * n + ni] = B[bt + ni];
            }
          }
          groupCb(k, len, c0);
          const hEnd = Math.min(h1, (gi + 1) * headsPerGroup);
          for (let hh = Math.max(h0, gi * headsPerGroup); hh < hEnd; hh++) {
            const hp = (hh - h0) * p * n; // start of head hh in hs
            const x0 = (pos0 * h + hh) * p; // x, y[pos0, hh, :]; positions xStep apart
            for (let t = 0; t < len; t++) {
              const xt = x0 + t * xStep;
              for (let pi = 0; pi < p; pi++) xT[pi * q + t] = x[xt + pi];
            }
            headOutputs(k, hh, hp, len, x0, c0, D[hh]);
            headState(k, hh, hp, len);
          }
        }
      }
      for (let i = 0; i < (h1 - h0) * p * n; i++) state[s0 + i] = hs[i];
    }
  },
};

/** One thread's scratch and sizes for the per-head parts of a chunk (headOutputs, headState). */
interface HeadChunk {
  y: Float32Array; // (b, l, h, p)
  C: Float32Array; // (b, l, g, n)
  hs: Float64Array; // (heads, p, n) running states
  dtc: Float64Array; // (q, h) Δ in the chunk
  cs: Float64Array; // (q, h) running sum of Δ·A
  cb: Float64Array; // (q, q) C_t·B_s of the head's group
  w: Float64Array; // (q) weights of one output row, or of the state update
  xT: Float64Array; // (p, q) x of the head, transposed
  bT: Float64Array; // (n, q) B of the group, transposed
  cx: Float64Array; // (q) w_s x_s of one state row
  cRow: Float64Array; // (n) C_t of one position
  bRows: Float64Array; // (q, n) B of the group
  h: number;
  p: number;
  n: number;
  q: number;
  xStep: number; // between positions in y
  bStep: number; // between positions in C
}

/** cb[t, s] = C_t · B_s (s ≤ t) of one group for the chunk's len positions, whose C starts at c0. */
function groupCb(k: HeadChunk, len: number, c0: number): void {
  const { C, bRows, cb, cRow, n, q, bStep } = k;
  for (let t = 0; t < len; t++) {
    for (let ni = 0, ct = c0 + t * bStep; ni < n; ni++) cRow[ni] = C[ct + ni];
    for (let s = 0; s <= t; s++) {
      let dot = 0;
      for (let ni = 0, bi = s * n; ni < n; ni++, bi++) dot += cRow[ni] * bRows[bi];
      cb[t * q + s] = dot;
    }
  }
}

/**
 * Outputs of head hh (its state at hp in hs) for the chunk's len positions, whose y starts at x0
 * and C at c0: the intra-chunk quadratic form, the carried-in state's part and the D skip, four
 * rows of p at a time (each sum in the order of the plain loops: the same bits).
 */
function headOutputs(
  k: HeadChunk,
  hh: number,
  hp: number,
  len: number,
  x0: number,
  c0: number,
  Dh: number,
): void {
  const { y, C, hs, dtc, cs, cb, w, xT, h, p, n, q, xStep, bStep } = k;
  for (let t = 0; t < len; t++) {
    const cst = cs[t * h + hh];
    for (let s = 0; s <= t; s++) w[s] = cb[t * q + s] * Math.exp(cst - cs[s * h + hh]) * dtc[s * h + hh];
    const ct = c0 + t * bStep;
    const decay = Math.exp(cst);
    const xt = x0 + t * xStep;
    let pi = 0;
    for (; pi + 4 <= p; pi += 4) {
      let a0 = 0;
      let a1 = 0;
      let a2 = 0;
      let a3 = 0;
      for (let s = 0, xi = pi * q; s <= t; s++, xi++) {
        const ws = w[s];
        a0 += ws * xT[xi];
        a1 += ws * xT[xi + q];
        a2 += ws * xT[xi + 2 * q];
        a3 += ws * xT[xi + 3 * q];
      }
      let d0 = 0;
      let d1 = 0;
      let d2 = 0;
      let d3 = 0;
      for (let ni = 0, hi = hp + pi * n; ni < n; ni++, hi++) {
        const cv = C[ct + ni];
        d0 += hs[hi] * cv;
        d1 += hs[hi + n] * cv;
        d2 += hs[hi + 2 * n] * cv;
        d3 += hs[hi + 3 * n] * cv;
      }
      y[xt + pi] = a0 + decay * d0 + Dh * xT[pi * q + t];
      y[xt + pi + 1] = a1 + decay * d1 + Dh * xT[(pi + 1) * q + t];
      y[xt + pi + 2] = a2 + decay * d2 + Dh * xT[(pi + 2) * q + t];
      y[xt + pi + 3] = a3 + decay * d3 + Dh * xT[(pi + 3) * q + t];
    }
    for (; pi < p; pi++) {
      let acc = 0;
      for (let s = 0, xi = pi * q; s <= t; s++, xi++) acc += w[s] * xT[xi];
      let dot = 0;
      for (let ni = 0, hi = hp + pi * n; ni < n; ni++, hi++) dot += hs[hi] * C[ct + ni];
      y[xt + pi] = acc + decay * dot + Dh * xT[pi * q + t];
    }
  }
}

/**
 * Moves head hh's state (at hp in hs) to the chunk's end: h = exp(cs_last) h + Σ_s w_s x_s B_sᵀ,
 * each value summed over s in a register, four states at a time.
 */
function headState(k: HeadChunk, hh: number, hp: number, len: number): void {
  const { hs, dtc, cs, w, xT, bT, cx, h, p, n, q } = k;
  const csLast = cs[(len - 1) * h + hh];
  const decayAll = Math.exp(csLast);
  for (let s = 0; s < len; s++) w[s] = Math.exp(csLast - cs[s * h + hh]) * dtc[s * h + hh];
  for (let pi = 0; pi < p; pi++) {
    for (let s = 0, xi = pi * q; s < len; s++, xi++) cx[s] = w[s] * xT[xi];
    const row = hp + pi * n;
    let ni = 0;
    for (; ni + 4 <= n; ni += 4) {
      let v0 = hs[row + ni] * decayAll;
      let v1 = hs[row + ni + 1] * decayAll;
      let v2 = hs[row + ni + 2] * decayAll;
      let v3 = hs[row + ni + 3] * decayAll;
      for (let s = 0, bi = ni * q; s < len; s++, bi++) {
        const c = cx[s];
        v0 += c * bT[bi];
        v1 += c * bT[bi + q];
        v2 += c * bT[bi + 2 * q];
        v3 += c * bT[bi + 3 * q];
      }
      hs[row + ni] = v0;
      hs[row + ni + 1] = v1;
      hs[row + ni + 2] = v2;
      hs[row + ni + 3] = v3;
    }
    for (; ni < n; ni++) {
      let v = hs[row + ni] * decayAll;
      for (let s = 0, bi = ni * q; s < len; s++, bi++) v += cx[s] * bT[bi];
      hs[row + ni] = v;
    }
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
