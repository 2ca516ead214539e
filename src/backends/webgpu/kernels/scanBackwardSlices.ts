// Splits a scan or SSD backward along the batch when its largest scratch buffer would exceed the
// adapter's maxStorageBufferBindingSize (Mamba-2 130m at 8 x 2048 needs 3.2 GB against 2 GB on
// the H100): the backward runs on slices of whole sequences, parameter gradients accumulate
// across them as they do across steps, and the per-token outputs are joined along the batch.
// No kernel of its own: views of batch rows (copied where a binding cannot start there) and
// TrainingOps.concat.

import type { Tensor } from '../../../core/tensor.ts';
import { GpuTensor } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';

/** Rows [b0, b0 + bs) of a batch-leading tensor (b, …), as a tensor a kernel can bind. */
function batchRows(be: WebGpuBackend, tensor: Tensor, b0: number, bs: number): GpuTensor {
  const t = be.dense(tensor as GpuTensor, false);
  const row = t.shape.slice(1).reduce((a, c) => a * c, 1);
  return be.dense(new GpuTensor([bs, ...t.shape.slice(1)], t.dtype, t.buffer, false, t.offset + b0 * row));
}

/** Joins batch slices (bs_i, …) into (Σ bs_i, …). */
function joinRows(be: WebGpuBackend, parts: readonly Tensor[]): Tensor {
  const rest = parts[0].shape.slice(1);
  const rows = parts.reduce((sum, t) => sum + t.shape[0], 0);
  const flat = parts.map((t) => be.reshape(t, [1, t.shape.reduce((a, c) => a * c, 1)])); // (1, bs·…)
  return be.reshape(be.training.concat(flat), [rows, ...rest]); // (b, …)
}

/** Tests lower the binding limit (bytes; 0: the adapter's) to make small batches split. */
export const sliceTuning = { maxBytes: 0 };

/**
 * Runs `backward` on the batch-leading tensors `batched` (all of batch b) whole when
 * b · bytesPerRow fits one binding, else on slices of as many rows as fit, joining its outputs.
 */
export function inBatchSlices<I extends Record<string, Tensor>, O extends Record<string, Tensor>>(
  be: WebGpuBackend,
  b: number,
  bytesPerRow: number,
  batched: I,
  backward: (slice: I, rows: number) => O,
): O {
  const limit = sliceTuning.maxBytes || be.limits.maxStorageBufferBindingSize;
  const perSlice = Math.max(1, Math.floor(limit / bytesPerRow));
  if (perSlice >= b) return backward(batched, b);
  const outs: O[] = [];
  for (let b0 = 0; b0 < b; b0 += perSlice) {
    const bs = Math.min(perSlice, b - b0);
    const slice = Object.fromEntries(
      Object.entries(batched).map(([key, t]) => [key, batchRows(be, t, b0, bs)]),
    ) as unknown as I;
    outs.push(backward(slice, bs));
  }
  return Object.fromEntries(
    Object.keys(outs[0]).map((key) => [
      key,
      joinRows(
        be,
        outs.map((o) => o[key]),
      ),
    ]),
  ) as O;
}
