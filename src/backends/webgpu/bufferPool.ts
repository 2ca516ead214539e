// Reuses GPU storage buffers: activations are released at the end of each tidy scope and handed
// out again by size class (powers of two from 256 bytes), so a forward pass or a decoding step
// allocates nothing once warm. Weights are allocated at their exact size and never pooled.

import { Usage } from './gpuTensor.ts';

const USAGE = Usage.STORAGE | Usage.COPY_SRC | Usage.COPY_DST;

export class BufferPool {
  private readonly free = new Map<number, GPUBuffer[]>();

  constructor(private readonly device: GPUDevice) {}

  /** The size class of a request: the next power of two, at least 256 bytes. */
  static sizeClass(bytes: number): number {
    return Math.max(256, 2 ** Math.ceil(Math.log2(Math.max(bytes, 1))));
  }

  acquire(bytes: number): GPUBuffer {
    const size = BufferPool.sizeClass(bytes);
    return this.free.get(size)?.pop() ?? this.device.createBuffer({ size, usage: USAGE });
  }

  release(buffer: GPUBuffer): void {
    const list = this.free.get(buffer.size) ?? [];
    list.push(buffer);
    this.free.set(buffer.size, list);
  }

  /** Destroys every idle buffer (e.g. after a large prompt, to give memory back). */
  trim(): void {
    for (const list of this.free.values()) for (const buffer of list) buffer.destroy();
    this.free.clear();
  }
}
