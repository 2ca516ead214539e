// Backward of Mamba's fused selective scan on the webgpu backend (full-width delta: deltaProj
// absent), recomputing the expanded state on chip: the three recurrent passes of
// scanBackwardPasses.ts (lane = channel, chunk-boundary states only in memory), then
// deterministic sums (scanBackwardReduce.ts) of dB and dC over channel blocks, of dA and dD over
// batches and chunks, and of dδ over positions for the bias.
//   Δ = softplus(delta + deltaBias), h_t = exp(ΔA) h_{t−1} + Δ B_t u_t, y = (C·h + D u)·SiLU(z)
// Returns du, dDelta (before the bias), dz (b, l, d) and dB, dC (b, l, n); adds into
// grads.deltaBias (d), grads.D (d) and grads.ALog (d, n) (dA · A, as A = −exp(A_log)).
// args.state is the initial state, read only. Reference: src/backends/cpu/selectiveScanBackward.ts.

import { fail } from '../../../core/errors.ts';
import type { Tensor } from '../../../core/tensor.ts';
import type { SelectiveScanArgs } from '../../backend.ts';
import type { ScanGrads } from '../../training.ts';
import type { GpuTensor } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';
import { bytesPerBatchRow, recurrenceBackward } from './scanBackwardPasses.ts';
import { reduce } from './scanBackwardReduce.ts';
import { inBatchSlices } from './scanBackwardSlices.ts';

export function selectiveScanBackward(
  be: WebGpuBackend,
  args: SelectiveScanArgs,
  dy: Tensor,
  grads: ScanGrads,
): { du: Tensor; dDelta: Tensor; dB: Tensor; dC: Tensor; dz: Tensor } {
  if (args.deltaProj) fail('selectiveScanBackward: needs the full-width delta (b, l, d), not deltaProj');
  const [batch, l, d] = args.u.shape;
  const n = args.A.shape[1];
  const dense = (t: Tensor) => be.dense(t as GpuTensor);
  const perRow = bytesPerBatchRow(be, { b: 1, l, H: 1, P: d, G: 1, n }, false);
  const { u, delta, B, C, z, state } = args;
  return inBatchSlices(be, batch, perRow, { u, delta, B, C, z, dy, state }, (s, b) =>
    be.tidy(() => {
      const A = dense(args.A); // (d, n)
      const r = recurrenceBackward(be, {
        u: dense(s.u), // (b, l, d)
        dt: dense(s.delta), // (b, l, d)
        bias: dense(args.deltaBias), // (d)
        A,
        B: dense(s.B), // (b, l, n)
        C: dense(s.C), // (b, l, n)
        D: dense(args.D), // (d)
        z: dense(s.z), // (b, l, d)
        dy: dense(s.dy), // (b, l, d)
        state: dense(s.state), // (b, d, n)
        dims: { b, l, H: 1, P: d, G: 1, n },
        dtLimit: [0, Number.POSITIVE_INFINITY],
      });
      const rows = b * l;
      const dB = be.alloc([b, l, n]);
      const dC = be.alloc([b, l, n]);
      // part (b·l, PB, R): dB at 0, dC at n.
      const blocks = { rows, M: r.blocks, C: n, mStride: r.values, rowStride: r.blocks * r.values };
      reduce(be, r.part, dB, blocks);
      reduce(be, r.part, dC, { ...blocks, offset: n });
      // dAD (b·K, d, n + 1): dA at 0, dD at n; summed over b·K, one row per channel.
      const chunks = { rows: d, M: b * r.chunks, rowStride: n + 1, mStride: d * (n + 1), accumulate: true };
      reduce(be, r.dAD, grads.ALog as GpuTensor, { ...chunks, C: n, scale: A });
      reduce(be, r.dAD, grads.D as GpuTensor, { ...chunks, C: 1, offset: n });
      const dDelta = r.dDelta as GpuTensor;
      reduce(be, dDelta, grads.deltaBias as GpuTensor, { rows: 1, M: rows, C: d, accumulate: true });
      return {
        du: r.du as Tensor,
        dDelta: dDelta as Tensor,
        dB: dB as Tensor,
        dC: dC as Tensor,
        dz: r.dz as Tensor,
      };
    }),
  );
}
