// Backward of Mamba-2's SSD on the webgpu backend, in one of two forms chosen here:
// - chunked (ssdBackwardChunked.ts): the forward's chunked SSD run backwards, matmul-shaped in
//   workgroup memory, for l > 1 and chunks of q ≤ 256 (ssdBackwardTuning.chunked);
// - recurrent (scanBackwardPasses.ts, lane = (head, head channel), N = n states per thread), the
//   fallback for every other shape and for l = 1: correct everywhere but slow at the n = 128 of
//   real checkpoints (a thread holds n states and a private (LC, n) array of recomputed states).
//   Deterministic sums (scanBackwardReduce.ts) finish dB, dC over the heads of a group and their
//   channel blocks, dΔ over a head's channels, dA and dD over batches, chunks and channels, and
//   ddt over positions for the bias.
//   Δ = clamp(softplus(dt + dtBias), dtLimit) (no gradient where clamped),
//   h_t = exp(Δ A) h_{t−1} + Δ x_t B_tᵀ, y_t = h_t C_t + D x_t, head i in group i / (h/g)
// Returns dx (b, l, h·p), ddt (b, l, h) (before the bias), dB and dC (b, l, g·n); adds into
// grads.dtBias, grads.D and grads.ALog (h) (dA · A). args.state is the initial state, read only.
// Batches too large for one binding of the scratch run in slices (scanBackwardSlices.ts).
// Reference: src/backends/cpu/ssdBackward.ts.

import type { Tensor } from '../../../core/tensor.ts';
import type { SsdArgs } from '../../backend.ts';
import type { SsdGrads } from '../../training.ts';
import type { GpuTensor } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';
import { bytesPerBatchRow, recurrenceBackward } from './scanBackwardPasses.ts';
import { reduce } from './scanBackwardReduce.ts';
import { inBatchSlices } from './scanBackwardSlices.ts';
import { ssdTuning } from './ssd.ts';
import { chunkedApplies, chunkedBackward, chunkedBytesPerRow } from './ssdBackwardChunked.ts';

/**
 * chunked: whether the chunked form is taken where it applies (tests and benchmarks may turn it
 * off); runs: how many calls took each form (tests check the choice).
 */
export const ssdBackwardTuning = { chunked: true, runs: { chunked: 0, recurrent: 0 } };

export function ssdBackward(
  be: WebGpuBackend,
  args: SsdArgs,
  dy: Tensor,
  grads: SsdGrads,
): { dx: Tensor; ddt: Tensor; dB: Tensor; dC: Tensor } {
  const [batch, l] = args.x.shape;
  const [, h, p, n] = args.state.shape;
  const g = args.B.shape[2] / n;
  const dense = (t: Tensor) => be.dense(t as GpuTensor);
  const q = Math.min(ssdTuning.chunk > 0 ? ssdTuning.chunk : args.chunkSize, l);
  const { x, dt, B, C, state } = args;
  if (ssdBackwardTuning.chunked && l > 1 && chunkedApplies(be, q)) {
    ssdBackwardTuning.runs.chunked++;
    const perRow = chunkedBytesPerRow({ b: 1, l, h, p, g, n, q });
    return inBatchSlices(be, batch, perRow, { x, dt, B, C, dy, state }, (s, b) =>
      be.tidy(() => {
        const [xs, dts, Bs, Cs, dys, states] = [s.x, s.dt, s.B, s.C, s.dy, s.state].map(dense);
        const [dtBias, A, D] = [args.dtBias, args.A, args.D].map(dense);
        const inputs = { x: xs, dt: dts, B: Bs, C: Cs, dy: dys, state: states, dtBias, A, D };
        const r = chunkedBackward(be, { ...inputs, dtLimit: args.dtLimit }, { b, l, h, p, g, n, q }, grads);
        return { dx: r.dx as Tensor, ddt: r.ddt as Tensor, dB: r.dB as Tensor, dC: r.dC as Tensor };
      }),
    );
  }
  ssdBackwardTuning.runs.recurrent++;
  const perRow = bytesPerBatchRow(be, { b: 1, l, H: h, P: p, G: g, n }, true);
  return inBatchSlices(be, batch, perRow, { x, dt, B, C, dy, state }, (s, b) =>
    be.tidy(() => {
      const r = recurrenceBackward(be, {
        u: dense(s.x), // (b, l, h·p)
        dt: dense(s.dt), // (b, l, h)
        bias: dense(args.dtBias), // (h)
        A: dense(args.A), // (h)
        B: dense(s.B), // (b, l, g·n)
        C: dense(s.C), // (b, l, g·n)
        D: dense(args.D), // (h)
        z: null,
        dy: dense(s.dy), // (b, l, h·p)
        state: dense(s.state), // (b, h, p, n)
        dims: { b, l, H: h, P: p, G: g, n },
        dtLimit: args.dtLimit,
      });
      const dB = be.alloc([b, l, g * n]);
      const dC = be.alloc([b, l, g * n]);
      // part (b·l, g, h/g, PB, R): dB at 0, dC at n, dΔ at 2n.
      const rv = r.values;
      const groups = {
        rows: b * l * g,
        M: (h / g) * r.blocks,
        C: n,
        mStride: rv,
        rowStride: (h / g) * r.blocks * rv,
      };
      reduce(be, r.part, dB, groups);
      reduce(be, r.part, dC, { ...groups, offset: n });
      const ddt = be.alloc([b, l, h]);
      reduce(be, r.part, ddt, {
        rows: b * l * h,
        M: r.blocks,
        C: 1,
        mStride: rv,
        rowStride: r.blocks * rv,
        offset: 2 * n,
      });
      reduce(be, ddt, grads.dtBias as GpuTensor, { rows: 1, M: b * l, C: h, accumulate: true });
      // dAD (b·K, h, p, 2): dA at 0, dD at 1; summed over p per (b·K, head), then over b·K.
      const perHead = { rows: b * r.chunks * h, M: p, C: 1, mStride: 2, rowStride: 2 * p };
      const totals = { rows: 1, M: b * r.chunks, C: h, accumulate: true };
      const dA = be.alloc([b * r.chunks, h]);
      reduce(be, r.dAD, dA, perHead);
      reduce(be, dA, grads.ALog as GpuTensor, { ...totals, scale: dense(args.A) });
      const dD = be.alloc([b * r.chunks, h]);
      reduce(be, r.dAD, dD, { ...perHead, offset: 1 });
      reduce(be, dD, grads.D as GpuTensor, totals);
      return { dx: r.du as Tensor, ddt: ddt as Tensor, dB: dB as Tensor, dC: dC as Tensor };
    }),
  );
}
