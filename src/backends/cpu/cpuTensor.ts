// A tensor of the CPU backend: a typed array in this process with its shape, and the accessors
// every CPU kernel file uses (its values as f32 or i32, with one clear error for the other dtype;
// its shape as rows × last extent).

import { fail } from '../../core/errors.ts';
import { type DType, numel, type Shape, type Tensor } from '../../core/tensor.ts';

export class CpuTensor implements Tensor {
  constructor(
    readonly shape: Shape,
    readonly dtype: DType,
    readonly data: Float32Array | Int32Array,
  ) {}
}

export function f32(t: Tensor): Float32Array {
  const data = (t as CpuTensor).data;
  if (!(data instanceof Float32Array)) fail(`cpu backend: expected an f32 tensor, got ${t.dtype}`);
  return data;
}

export function i32(t: Tensor): Int32Array {
  const data = (t as CpuTensor).data;
  if (!(data instanceof Int32Array)) fail(`cpu backend: expected an i32 tensor, got ${t.dtype}`);
  return data;
}

/** The last extent and the product of the others: (…, c) → [rows, c]. */
export function rowsCols(shape: Shape): [number, number] {
  const cols = shape[shape.length - 1];
  return [cols === 0 ? 0 : numel(shape) / cols, cols];
}
