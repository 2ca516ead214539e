// CPU backward of Mamba-2's SSD (forward: ssd.ts), as a recurrence over positions with the state
// recomputed from checkpoints instead of stored.
//
//   Δ_t = clamp(softplus(dt_t + dtBias), dtLimit),  a_t = exp(Δ_t A)          per (position, head)
//   h_t = a_t h_{t-1} + Δ_t x_t B_tᵀ,  y_t = h_t C_t + D x_t                   (h_t: (p, n) per head)
//
// Backward, per (batch, head) from the last position to the first:
//   ∂h_t = dy_t C_tᵀ + a_{t+1} ∂h_{t+1}                       (the running state gradient, (p, n))
//   dC_t += h_tᵀ dy_t,  dB_t += Δ_t ∂h_tᵀ x_t,  dx_t = D dy_t + Δ_t ∂h_t B_t,  dD += dy_t · x_t
//   dΔ_t = a_t A Σ ∂h_t ⊙ h_{t-1} + x_tᵀ ∂h_t B_t,  dA += a_t Δ_t Σ ∂h_t ⊙ h_{t-1}
//   ddt_t = dΔ_t σ(dt_t + dtBias), zero where the clamp is active
// then dtBias += Σ ddt, ALog += dA · A (A = −exp(A_log)); dB, dC are summed over a group's heads.
//
// Memory. Per (batch, head) a forward pass keeps the state entering every K-th position
// (K = checkpointInterval: all l while they fit the budget, else ⌈√l⌉: l/K checkpoints of p·n
// values); the reverse walk then recomputes one chunk of K states at a time from its checkpoint.
// Scratch: O(K · p · n) per thread: never O(l · h · p · n).
// Threads. Heads are independent but for dB, dC, which sum over a group's heads: one batch row at a
// time, the worker pool (threads.ts) shares out fixed chunks of heads (partialChunks), each chunk
// sums its dB, dC in float64 partials (chunks, l, g, n), summed in chunk order afterwards: the same
// bits on any number of threads.
// Deviation: the forward is the chunked (matmul-shaped) SSD; this backward is the equivalent
// plain recurrence, which does fewer operations on one CPU core. Left out: the state gradient.

import { fail } from '../../core/errors.ts';
import type { Tensor } from '../../core/tensor.ts';
import { softplus } from '../../nn/activations.ts';
import type { SsdArgs } from '../backend.ts';
import type { SsdGrads } from '../training.ts';
import type { CpuBackend } from './cpuBackend.ts';
import { f32 } from './cpuTensor.ts';
import {
  checkpointInterval,
  expectShape,
  partialChunks,
  softplusGrad,
  sumChunks,
} from './scanBackwardShared.ts';
import { type LaneJob, laneWidth, runLanes, SSD_BACKWARD_JOB, scratchF64, sharedF64 } from './threads.ts';

interface SsdBackwardArrays {
  x: Float32Array; // (b, l, h, p)
  dt: Float32Array; // (b, l, h) before bias, softplus and clamp
  dtBias: Float32Array; // (h)
  A: Float32Array; // (h)
  B: Float32Array; // (b, l, g, n)
  C: Float32Array; // (b, l, g, n)
  D: Float32Array; // (h)
  state: Float32Array; // (b, h, p, n) initial state, read only
  dy: Float32Array; // (b, l, h, p)
  dx: Float32Array; // (b, l, h, p) out
  ddt: Float32Array; // (b, l, h) out
  gDtBias: Float32Array; // (h) += into
  gALog: Float32Array; // (h) += into
  gD: Float32Array; // (h) += into
  partB: Float64Array; // (chunks, b, l, g, n) dB of each chunk's heads
  partC: Float64Array; // (chunks, b, l, g, n) dC of each chunk's heads
}

/** Grow-only partial sums of dB and dC (shared, so registered with the pool once). */
let parts = [sharedF64(0), sharedF64(0)];

export function ssdBackward(
  be: CpuBackend,
  args: SsdArgs,
  dy: Tensor,
  grads: SsdGrads,
): { dx: Tensor; ddt: Tensor; dB: Tensor; dC: Tensor } {
  const where = 'ssdBackward';
  const [b, l, hp] = args.x.shape;
  const [, h, p, n] = args.state.shape;
  const gn = args.B.shape[2];
  const g = gn / n;
  if (h * p !== hp) fail(`${where}: x has ${hp} channels, the state ${h} heads of ${p}`);
  if (!Number.isInteger(g) || h % g !== 0)
    fail(`${where}: B width ${gn} is not g·n with g dividing ${h} heads`);
  expectShape(where, 'dt', args.dt, [b, l, h]);
  expectShape(where, 'dtBias', args.dtBias, [h]);
  expectShape(where, 'A', args.A, [h]);
  expectShape(where, 'B', args.B, [b, l, gn]);
  expectShape(where, 'C', args.C, [b, l, gn]);
  expectShape(where, 'D', args.D, [h]);
  expectShape(where, 'state', args.state, [b, h, p, n]);
  expectShape(where, 'dy', dy, [b, l, hp]);
  expectShape(where, 'grads.dtBias', grads.dtBias, [h]);
  expectShape(where, 'grads.ALog', grads.ALog, [h]);
  expectShape(where, 'grads.D', grads.D, [h]);
  const out = {
    dx: be.zeros([b, l, hp]),
    ddt: be.zeros([b, l, h]),
    dB: be.zeros([b, l, gn]),
    dC: be.zeros([b, l, gn]),
  };
  const chunks = Math.ceil(h / laneWidth(h, partialChunks(h, p * n, gn)));
  const size = l * gn;
  if (parts[0].length < chunks * size) parts = [sharedF64(chunks * size), sharedF64(chunks * size)];
  const arrays: SsdBackwardArrays = {
    x: f32(args.x),
    dt: f32(args.dt),
    dtBias: f32(args.dtBias),
    A: f32(args.A),
    B: f32(args.B),
    C: f32(args.C),
    D: f32(args.D),
    state: f32(args.state),
    dy: f32(dy),
    dx: f32(out.dx),
    ddt: f32(out.ddt),
    gDtBias: f32(grads.dtBias),
    gALog: f32(grads.ALog),
    gD: f32(grads.D),
    partB: parts[0],
    partC: parts[1],
  };
  const [dtMin, dtMax] = args.dtLimit;
  for (let bi = 0; bi < b; bi++) {
    runLanes(ssdBackwardJob, arrays, [bi, l, h, p, g, n, dtMin, dtMax], h, 4 * l * hp * n, chunks);
    sumChunks(f32(out.dB).subarray(bi * size, (bi + 1) * size), parts[0], chunks, size);
    sumChunks(f32(out.dC).subarray(bi * size, (bi + 1) * size), parts[1], chunks, size);
  }
  return out;
}

/** The backward of heads [h0, h1) of batch row bi, dB and dC into the chunk's partials; params:
 * bi, l, h, p, g, n, dtMin, dtMax. */
export const ssdBackwardJob: LaneJob<SsdBackwardArrays> = {
  id: SSD_BACKWARD_JOB,
  keys: [
    'x',
    'dt',
    'dtBias',
    'A',
    'B',
    'C',
    'D',
    'state',
    'dy',
    'dx',
    'ddt',
    'gDtBias',
    'gALog',
    'gD',
    'partB',
    'partC',
  ],
  run(a, params, chunk, h0, h1) {
    const { x, dt, dtBias, A, B, C, D, state, dy } = a;
    const [bi, l, h, p, g, n, dtMin, dtMax] = params;
    const pn = p * n;
    const headsPerGroup = h / g;
    const k = checkpointInterval(l, pn);
    const chunks = Math.ceil(l / k);
    const checkpoints = scratchF64(0, chunks * pn); // (chunks, p, n) state entering each chunk
    const hs = scratchF64(1, (k + 1) * pn); // (k + 1, p, n) h_{t0−1} … h_{t0+k−1} of one chunk
    const dts = scratchF64(2, k); // (k) Δ_t of one chunk
    const dsp = scratchF64(3, k); // (k) dΔ/d(dt) of one chunk: σ, or 0 where clamped
    const dh = scratchF64(4, pn); // (p, n) a_{t+1} ∂h_{t+1}, carried backwards
    const sumB = a.partB.subarray(chunk * l * g * n, (chunk + 1) * l * g * n); // (l, g, n)
    const sumC = a.partC.subarray(chunk * l * g * n, (chunk + 1) * l * g * n); // (l, g, n)
    sumB.fill(0);
    sumC.fill(0);
    for (let hh = h0; hh < h1; hh++) {
      const gi = Math.floor(hh / headsPerGroup);
      const Ah = A[hh];
      const Dh = D[hh];
      const bias = dtBias[hh];
      /** Δ of position t (of this batch row and head) into dts[i], its derivative into dsp[i]. */
      const delta = (t: number, i: number): number => {
        const raw = dt[(bi * l + t) * h + hh] + bias;
        const sp = softplus(raw);
        const clamped = Math.min(Math.max(sp, dtMin), dtMax);
        dts[i] = clamped;
        dsp[i] = clamped === sp ? softplusGrad(raw) : 0;
        return clamped;
      };
      /** Position t's step h ← a_t h + Δ_t x_t B_tᵀ from the (p, n) block of buf at `from` to `to`. */
      const step = (t: number, i: number, buf: Float64Array, from: number, to: number) => {
        const dtv = delta(t, i);
        const decay = Math.exp(dtv * Ah);
        const xt = ((bi * l + t) * h + hh) * p;
        const bc = ((bi * l + t) * g + gi) * n;
        for (let pi = 0; pi < p; pi++) {
          const dtx = dtv * x[xt + pi];
          for (let ni = 0, o = pi * n; ni < n; ni++, o++)
            buf[to + o] = decay * buf[from + o] + dtx * B[bc + ni];
        }
      };
      // Forward, keeping the state entering every chunk.
      const s0 = (bi * h + hh) * pn;
      for (let i = 0; i < pn; i++) checkpoints[i] = state[s0 + i];
      for (let c = 1; c < chunks; c++) {
        const cp = c * pn;
        checkpoints.copyWithin(cp, cp - pn, cp);
        for (let t = (c - 1) * k; t < c * k; t++) step(t, 0, checkpoints, cp, cp);
      }
      // Backward, one chunk at a time from the last, recomputing its states.
      dh.fill(0);
      let dASum = 0;
      let dDSum = 0;
      let dBiasSum = 0;
      for (let c = chunks - 1; c >= 0; c--) {
        const t0 = c * k;
        const len = Math.min(k, l - t0);
        hs.set(checkpoints.subarray(c * pn, (c + 1) * pn));
        for (let i = 0; i < len; i++) step(t0 + i, i, hs, i * pn, (i + 1) * pn);
        for (let i = len - 1; i >= 0; i--) {
          const t = t0 + i;
          const dtv = dts[i];
          const decay = Math.exp(dtv * Ah);
          const xt = ((bi * l + t) * h + hh) * p;
          const bcRow = (t * g + gi) * n; // (t, gi, 0) in (l, g, n) of this batch row
          const bc = bi * l * g * n + bcRow; // (bi, t, gi, 0) in (b, l, g, n)
          const prev = i * pn;
          const cur = prev + pn;
          let dhPrev = 0; // Σ ∂h_t ⊙ h_{t-1}
          let dtTerm = 0; // x_tᵀ ∂h_t B_t
          // Four rows of the state at a time (B_t, C_t and the dB, dC sums loaded once for all);
          // every sum keeps the order of the one-row loop below but Σ ∂h_t ⊙ h_{t-1}, summed per row.
          let pi = 0;
          for (; pi + 4 <= p; pi += 4) {
            const gy0 = dy[xt + pi];
            const xv0 = x[xt + pi];
            const dtx0 = dtv * xv0;
            const gy1 = dy[xt + pi + 1];
            const xv1 = x[xt + pi + 1];
            const dtx1 = dtv * xv1;
            const gy2 = dy[xt + pi + 2];
            const xv2 = x[xt + pi + 2];
            const dtx2 = dtv * xv2;
            const gy3 = dy[xt + pi + 3];
            const xv3 = x[xt + pi + 3];
            const dtx3 = dtv * xv3;
            dDSum += gy0 * xv0;
            dDSum += gy1 * xv1;
            dDSum += gy2 * xv2;
            dDSum += gy3 * xv3;
            let dhB0 = 0; // Σ_n ∂h_t[pi + 0, n] B_t[n]
            let dhB1 = 0;
            let dhB2 = 0;
            let dhB3 = 0;
            let prev0 = 0; // Σ_n ∂h_t[pi + 0, n] h_(t-1)[pi + 0, n]
            let prev1 = 0;
            let prev2 = 0;
            let prev3 = 0;
            for (let ni = 0, o = pi * n; ni < n; ni++, o++) {
              const bv = B[bc + ni];
              const cv = C[bc + ni];
              let sc = sumC[bcRow + ni];
              sc += gy0 * hs[cur + o];
              sc += gy1 * hs[cur + o + n];
              sc += gy2 * hs[cur + o + 2 * n];
              sc += gy3 * hs[cur + o + 3 * n];
              sumC[bcRow + ni] = sc;
              const dhv0 = dh[o] + gy0 * cv; // ∂h_t
              const dhv1 = dh[o + n] + gy1 * cv;
              const dhv2 = dh[o + 2 * n] + gy2 * cv;
              const dhv3 = dh[o + 3 * n] + gy3 * cv;
              prev0 += dhv0 * hs[prev + o];
              prev1 += dhv1 * hs[prev + o + n];
              prev2 += dhv2 * hs[prev + o + 2 * n];
              prev3 += dhv3 * hs[prev + o + 3 * n];
              dhB0 += dhv0 * bv;
              dhB1 += dhv1 * bv;
              dhB2 += dhv2 * bv;
              dhB3 += dhv3 * bv;
              let sb = sumB[bcRow + ni];
              sb += dhv0 * dtx0;
              sb += dhv1 * dtx1;
              sb += dhv2 * dtx2;
              sb += dhv3 * dtx3;
              sumB[bcRow + ni] = sb;
              dh[o] = dhv0 * decay;
              dh[o + n] = dhv1 * decay;
              dh[o + 2 * n] = dhv2 * decay;
              dh[o + 3 * n] = dhv3 * decay;
            }
            dhPrev += prev0;
            dhPrev += prev1;
            dhPrev += prev2;
            dhPrev += prev3;
            a.dx[xt + pi] = Dh * gy0 + dtv * dhB0;
            a.dx[xt + pi + 1] = Dh * gy1 + dtv * dhB1;
            a.dx[xt + pi + 2] = Dh * gy2 + dtv * dhB2;
            a.dx[xt + pi + 3] = Dh * gy3 + dtv * dhB3;
            dtTerm += xv0 * dhB0;
            dtTerm += xv1 * dhB1;
            dtTerm += xv2 * dhB2;
            dtTerm += xv3 * dhB3;
          }
          for (; pi < p; pi++) {
            const gy = dy[xt + pi];
            const xv = x[xt + pi];
            const dtx = dtv * xv;
            dDSum += gy * xv;
            let dhB = 0; // Σ_n ∂h_t[pi, n] B_t[n]
            for (let ni = 0, o = pi * n; ni < n; ni++, o++) {
              sumC[bcRow + ni] += gy * hs[cur + o];
              const dhv = dh[o] + gy * C[bc + ni]; // ∂h_t
              dhPrev += dhv * hs[prev + o];
              dhB += dhv * B[bc + ni];
              sumB[bcRow + ni] += dhv * dtx;
              dh[o] = dhv * decay;
            }
            a.dx[xt + pi] = Dh * gy + dtv * dhB;
            dtTerm += xv * dhB;
          }
          dASum += dhPrev * decay * dtv;
          const dRaw = (dhPrev * decay * Ah + dtTerm) * dsp[i];
          a.ddt[(bi * l + t) * h + hh] = dRaw;
          dBiasSum += dRaw;
        }
      }
      a.gALog[hh] += dASum * Ah;
      a.gD[hh] += dDSum;
      a.gDtBias[hh] += dBiasSum;
    }
  },
};
