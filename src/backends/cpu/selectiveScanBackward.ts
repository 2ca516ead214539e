// CPU backward of Mamba's fused selective scan (forward: selectiveScan.ts), with the paper's
// memory trick: the expanded state (b, l, d, n) is never stored but recomputed.
//
//   Δ_t = softplus(δ_t + deltaBias),  a_t = exp(Δ_t A),  h_t = a_t ⊙ h_{t-1} + Δ_t B_t u_t
//   r_t = C_t · h_t + D u_t,          y_t = r_t · SiLU(z_t)
//
// Backward, per (batch, channel) lane of n states, from the last position to the first:
//   dr_t = dy_t SiLU(z_t),   dz_t = dy_t r_t SiLU'(z_t),   dD += dr_t u_t,   dC_t += dr_t h_t
//   ∂h_t = dr_t C_t + a_{t+1} ∂h_{t+1}                      (the running state gradient)
//   dΔ_t = Σ_n ∂h_t (h_{t-1} a_t A + B_t u_t),  dA += ∂h_t h_{t-1} a_t Δ_t
//   dB_t += ∂h_t Δ_t u_t,  du_t = dr_t D + Δ_t Σ_n ∂h_t B_t,  dδ_t = dΔ_t σ(δ_t + deltaBias)
// then deltaBias += Σ_t dδ, ALog += dA · A (A = −exp(A_log)); dB, dC are summed over channels.
//
// Memory. A lane first runs forward keeping only its state at every K-th position (K =
// checkpointInterval: all l positions while they fit the budget, else ⌈√l⌉: l/K checkpoints of n
// values), then walks the chunks backwards, recomputing the K states of one chunk from its
// checkpoint. Scratch: O(K · n) per lane: never O(l · d · n). a_t is kept from the recomputation
// so the reverse walk needs no exp.
// Threads. Channels are independent but for dB, dC, which sum over them: one batch row at a time,
// the worker pool (threads.ts) shares out fixed chunks of channels (partialChunks), each chunk sums
// its dB, dC over its channels in float64 partials (chunks, l, n), and these are summed in chunk
// order afterwards: the same bits on any number of threads.
// Left out: deltaProj (the caller passes the full-width Δ input (b, l, d)), the state gradient
// (training starts from a given state).

import { fail } from '../../core/errors.ts';
import type { Tensor } from '../../core/tensor.ts';
import { softplus } from '../../nn/activations.ts';
import type { SelectiveScanArgs } from '../backend.ts';
import type { ScanGrads } from '../training.ts';
import type { CpuBackend } from './cpuBackend.ts';
import { f32 } from './cpuTensor.ts';
import { siluGrad } from './normBackward.ts';
import {
  checkpointInterval,
  expectShape,
  partialChunks,
  softplusGrad,
  sumChunks,
} from './scanBackwardShared.ts';
import { type LaneJob, laneWidth, runLanes, SCAN_BACKWARD_JOB, scratchF64, sharedF64 } from './threads.ts';

interface ScanBackwardArrays {
  u: Float32Array; // (b, l, d)
  delta: Float32Array; // (b, l, d) before bias and softplus
  deltaBias: Float32Array; // (d)
  A: Float32Array; // (d, n)
  B: Float32Array; // (b, l, n)
  C: Float32Array; // (b, l, n)
  D: Float32Array; // (d)
  z: Float32Array; // (b, l, d)
  state: Float32Array; // (b, d, n) initial state, read only
  dy: Float32Array; // (b, l, d)
  du: Float32Array; // (b, l, d) out
  dDelta: Float32Array; // (b, l, d) out
  dz: Float32Array; // (b, l, d) out
  gDeltaBias: Float32Array; // (d) += into
  gALog: Float32Array; // (d, n) += into
  gD: Float32Array; // (d) += into
  partB: Float64Array; // (chunks, b, l, n) dB of each chunk's channels
  partC: Float64Array; // (chunks, b, l, n) dC of each chunk's channels
}

/** Grow-only partial sums of dB and dC (shared, so registered with the pool once). */
let parts = [sharedF64(0), sharedF64(0)];

export function selectiveScanBackward(
  be: CpuBackend,
  args: SelectiveScanArgs,
  dy: Tensor,
  grads: ScanGrads,
): { du: Tensor; dDelta: Tensor; dB: Tensor; dC: Tensor; dz: Tensor } {
  const where = 'selectiveScanBackward';
  if (args.deltaProj) fail(`${where}: pass the full-width delta (b, l, d), not deltaProj`);
  const [b, l, d] = args.u.shape;
  const n = args.A.shape[1];
  expectShape(where, 'delta', args.delta, [b, l, d]);
  expectShape(where, 'deltaBias', args.deltaBias, [d]);
  expectShape(where, 'A', args.A, [d, n]);
  expectShape(where, 'B', args.B, [b, l, n]);
  expectShape(where, 'C', args.C, [b, l, n]);
  expectShape(where, 'D', args.D, [d]);
  expectShape(where, 'z', args.z, [b, l, d]);
  expectShape(where, 'state', args.state, [b, d, n]);
  expectShape(where, 'dy', dy, [b, l, d]);
  expectShape(where, 'grads.deltaBias', grads.deltaBias, [d]);
  expectShape(where, 'grads.ALog', grads.ALog, [d, n]);
  expectShape(where, 'grads.D', grads.D, [d]);
  const out = {
    du: be.zeros([b, l, d]),
    dDelta: be.zeros([b, l, d]),
    dB: be.zeros([b, l, n]),
    dC: be.zeros([b, l, n]),
    dz: be.zeros([b, l, d]),
  };
  const chunks = Math.ceil(d / laneWidth(d, partialChunks(d, n, n)));
  const size = l * n;
  if (parts[0].length < chunks * size) parts = [sharedF64(chunks * size), sharedF64(chunks * size)];
  const arrays: ScanBackwardArrays = {
    u: f32(args.u),
    delta: f32(args.delta),
    deltaBias: f32(args.deltaBias),
    A: f32(args.A),
    B: f32(args.B),
    C: f32(args.C),
    D: f32(args.D),
    z: f32(args.z),
    state: f32(args.state),
    dy: f32(dy),
    du: f32(out.du),
    dDelta: f32(out.dDelta),
    dz: f32(out.dz),
    gDeltaBias: f32(grads.deltaBias),
    gALog: f32(grads.ALog),
    gD: f32(grads.D),
    partB: parts[0],
    partC: parts[1],
  };
  for (let bi = 0; bi < b; bi++) {
    runLanes(scanBackwardJob, arrays, [bi, l, d, n], d, 3 * l * d * n, chunks);
    sumChunks(f32(out.dB).subarray(bi * size, (bi + 1) * size), parts[0], chunks, size);
    sumChunks(f32(out.dC).subarray(bi * size, (bi + 1) * size), parts[1], chunks, size);
  }
  return out;
}

/** The backward of channels [d0, d1) of batch row bi, its dB and dC into the chunk's partials. */
export const scanBackwardJob: LaneJob<ScanBackwardArrays> = {
  id: SCAN_BACKWARD_JOB,
  keys: [
    'u',
    'delta',
    'deltaBias',
    'A',
    'B',
    'C',
    'D',
    'z',
    'state',
    'dy',
    'du',
    'dDelta',
    'dz',
    'gDeltaBias',
    'gALog',
    'gD',
    'partB',
    'partC',
  ],
  run(a, params, chunk, d0, d1) {
    const { u, delta, deltaBias, A, B, C, D, z, state, dy } = a;
    const [bi, l, d, n] = params;
    const k = checkpointInterval(l, n);
    const chunks = Math.ceil(l / k);
    const checkpoints = scratchF64(0, chunks * n); // (chunks, n) state entering each chunk
    const hs = scratchF64(1, (k + 1) * n); // (k + 1, n) h_{t0−1} … h_{t0+k−1} of one chunk
    const decays = scratchF64(2, k * n); // (k, n) a_t of one chunk
    const dts = scratchF64(3, k); // (k) Δ_t of one chunk
    const dh = scratchF64(4, n); // (n) a_{t+1} ∂h_{t+1}, carried backwards
    const dA = scratchF64(5, n); // (n) dL/dA of one lane
    const sumB = a.partB.subarray(chunk * l * n, (chunk + 1) * l * n); // (l, n)
    const sumC = a.partC.subarray(chunk * l * n, (chunk + 1) * l * n); // (l, n)
    sumB.fill(0);
    sumC.fill(0);
    for (let di = d0; di < d1; di++) {
      const Ad = di * n; // start of A[di, :] and ALog[di, :]
      const bias = deltaBias[di];
      const Dd = D[di];
      // Forward, keeping the state entering every chunk.
      for (let ni = 0; ni < n; ni++) checkpoints[ni] = state[(bi * d + di) * n + ni];
      for (let c = 1; c < chunks; c++) {
        const cp = c * n;
        for (let ni = 0; ni < n; ni++) checkpoints[cp + ni] = checkpoints[cp - n + ni];
        for (let t = (c - 1) * k; t < c * k; t++) {
          const row = (bi * l + t) * d + di; // (bi, t, di) in (b, l, d)
          const bc = (bi * l + t) * n; // (bi, t, 0) in (b, l, n)
          const dt = softplus(delta[row] + bias);
          const dtu = dt * u[row];
          for (let ni = 0; ni < n; ni++)
            checkpoints[cp + ni] = Math.exp(dt * A[Ad + ni]) * checkpoints[cp + ni] + dtu * B[bc + ni];
        }
      }
      // Backward, one chunk at a time from the last, recomputing its states.
      dh.fill(0);
      dA.fill(0);
      let dDSum = 0;
      let dBiasSum = 0;
      for (let c = chunks - 1; c >= 0; c--) {
        const t0 = c * k;
        const len = Math.min(k, l - t0);
        for (let ni = 0; ni < n; ni++) hs[ni] = checkpoints[c * n + ni];
        for (let i = 0; i < len; i++) {
          const row = (bi * l + t0 + i) * d + di;
          const bc = (bi * l + t0 + i) * n;
          const dt = softplus(delta[row] + bias);
          const dtu = dt * u[row];
          dts[i] = dt;
          for (let ni = 0, hi = i * n; ni < n; ni++, hi++) {
            const decay = Math.exp(dt * A[Ad + ni]);
            decays[hi] = decay;
            hs[hi + n] = decay * hs[hi] + dtu * B[bc + ni];
          }
        }
        for (let i = len - 1; i >= 0; i--) {
          const row = (bi * l + t0 + i) * d + di;
          const bc = (t0 + i) * n; // (t, 0) in (l, n) of this batch row
          const bcIn = bi * l * n + bc; // (bi, t, 0) in (b, l, n)
          const x = u[row];
          const zv = z[row];
          const dt = dts[i];
          let r = Dd * x;
          for (let ni = 0, hi = (i + 1) * n; ni < n; ni++, hi++) r += C[bcIn + ni] * hs[hi];
          const g = dy[row];
          a.dz[row] = g * r * siluGrad(zv);
          const dr = g * (zv / (1 + Math.exp(-zv))); // dy · SiLU(z)
          dDSum += dr * x;
          let dhB = 0; // Σ_n ∂h_t B_t
          let dDt = 0; // dΔ_t through the decay
          for (let ni = 0, hi = i * n; ni < n; ni++, hi++) {
            const bv = B[bcIn + ni];
            sumC[bc + ni] += dr * hs[hi + n];
            const dhv = dh[ni] + dr * C[bcIn + ni]; // ∂h_t
            const dLogDecay = dhv * hs[hi] * decays[hi]; // dL/d(Δ_t A)
            dDt += dLogDecay * A[Ad + ni];
            dA[ni] += dLogDecay * dt;
            dhB += dhv * bv;
            sumB[bc + ni] += dhv * dt * x;
            dh[ni] = dhv * decays[hi];
          }
          a.du[row] = dr * Dd + dt * dhB;
          const dRaw = (dDt + dhB * x) * softplusGrad(delta[row] + bias);
          a.dDelta[row] = dRaw;
          dBiasSum += dRaw;
        }
      }
      a.gD[di] += dDSum;
      a.gDeltaBias[di] += dBiasSum;
      for (let ni = 0; ni < n; ni++) a.gALog[Ad + ni] += dA[ni] * A[Ad + ni];
    }
  },
};
