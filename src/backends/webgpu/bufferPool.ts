// Reuses GPU storage buffers: activations are released at the end of each tidy scope and handed
// out again by size class (powers of two from 256 bytes), so a forward pass or a decoding step
// allocates nothing once warm. Weights are allocated at their exact size and never pooled.
// A request takes the oldest free buffer of its class (not the last released), so the same
// sequence of requests from the same free set gets the same buffers: a decoding step binds the
// same buffers as the step before, and the backend's bind group cache hits.

import { Usage } from './gpuTensor.ts';

const USAGE = Usage.STORAGE | Usage.COPY_SRC | Usage.COPY_DST;

export class BufferPool {
  private readonly free = new Map<number, GPUBuffer[]>();
  private readonly age = new WeakMap<GPUBuffer, number>();
  private made = 0;
  /** Bytes of every buffer the pool has made and not destroyed (its peak: it only grows until trim). */
  bytes = 0;

  constructor(private readonly device: GPUDevice) {}

  /** The size class of a request: the next power of two, at least 256 bytes. */
  static sizeClass(bytes: number): number {
    return Math.max(256, 2 ** Math.ceil(Math.log2(Math.max(bytes, 1))));
  }

  acquire(bytes: number): GPUBuffer {
    const size = BufferPool.sizeClass(bytes);
    const list = this.free.get(size);
    if (list === undefined || list.length === 0) {
      const buffer = this.device.createBuffer({ size, usage: USAGE });
      this.age.set(buffer, this.made++);
      this.bytes += size;
      return buffer;
    }
    let best = 0;
    for (let i = 1; i < list.length; i++) {
      if (this.age.get(list[i])! < this.age.get(list[best])!) best = i;
    }
    const buffer = list[best];
    list[best] = list[list.length - 1];
    list.pop();
    return buffer;
  }

  release(buffer: GPUBuffer): void {
    const list = this.free.get(buffer.size) ?? [];
    list.push(buffer);
    this.free.set(buffer.size, list);
  }

  /** Destroys every idle buffer (e.g. after a large prompt, to give memory back). */
  trim(): void {
    for (const list of this.free.values())
      for (const buffer of list) {
        this.bytes -= buffer.size;
        buffer.destroy();
      }
    this.free.clear();
  }
}
