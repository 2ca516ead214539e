// A tensor on the GPU: a storage buffer (possibly larger than needed: buffers are pooled by size
// class) with its shape and dtype. `owner` is the pool it goes back to when released.

import { type DType, numel, type Shape, type Tensor } from '../../core/tensor.ts';

/** GPUBufferUsage flags as numbers: the globals exist in Node only once Dawn is loaded. */
export const Usage = { MAP_READ: 0x1, COPY_SRC: 0x4, COPY_DST: 0x8, UNIFORM: 0x40, STORAGE: 0x80 } as const;

export class GpuTensor implements Tensor {
  released = false;

  constructor(
    readonly shape: Shape,
    readonly dtype: DType,
    readonly buffer: GPUBuffer,
    /** Whether the buffer came from the activation pool (weights own theirs). */
    readonly pooled: boolean,
  ) {}

  get bytes(): number {
    return numel(this.shape) * 4;
  }
}
