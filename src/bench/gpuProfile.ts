// GPU time per kernel through timestamp queries (the optional feature timestamp-query): while a
// KernelProfile is attached as the backend's passTimer, every dispatch runs in its own compute
// pass with a timestamp at its start and end; `collect` reads them back and sums the time per
// kernel name (queries keep their values across submits; all are resolved at the end). Separate
// passes add a little time of their own, so the sums are upper bounds.

import { Usage } from '../backends/webgpu/gpuTensor.ts';
import type { PassTimer, WebGpuBackend } from '../backends/webgpu/webgpuBackend.ts';
import { fail } from '../core/errors.ts';

const QUERY_RESOLVE = 0x200; // GPUBufferUsage.QUERY_RESOLVE

export interface KernelTime {
  name: string;
  count: number;
  us: number;
}

export class KernelProfile implements PassTimer {
  private readonly querySet: GPUQuerySet;
  private readonly resolved: GPUBuffer;
  private readonly names: string[] = [];

  constructor(
    private readonly be: WebGpuBackend,
    /** Dispatches it can time (Dawn allows 4096 queries per set: two per dispatch). */
    private readonly capacity = 2048,
  ) {
    this.querySet = be.device.createQuerySet({ type: 'timestamp', count: 2 * capacity });
    this.resolved = be.device.createBuffer({ size: 16 * capacity, usage: QUERY_RESOLVE | Usage.COPY_SRC });
  }

  /** Whether the device can take timestamps at all. */
  static available(be: WebGpuBackend): boolean {
    return be.context.features.timestampQuery;
  }

  writes(name: string): GPUComputePassTimestampWrites {
    const i = this.names.length;
    if (i >= this.capacity) fail(`profile: more than ${this.capacity} dispatches`);
    this.names.push(name);
    return { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
  }

  /** Detaches from the backend and sums the GPU µs per kernel name, largest first. */
  async collect(): Promise<KernelTime[]> {
    const be = this.be;
    be.flush();
    be.passTimer = null;
    const count = this.names.length;
    const staging = be.device.createBuffer({
      size: 16 * this.capacity,
      usage: Usage.MAP_READ | Usage.COPY_DST,
    });
    const encoder = be.device.createCommandEncoder();
    encoder.resolveQuerySet(this.querySet, 0, 2 * count, this.resolved, 0);
    encoder.copyBufferToBuffer(this.resolved, 0, staging, 0, 16 * this.capacity);
    be.device.queue.submit([encoder.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const stamps = new BigUint64Array(staging.getMappedRange().slice(0));
    staging.unmap();
    staging.destroy();
    const byName = new Map<string, KernelTime>();
    for (let i = 0; i < count; i++) {
      const name = this.names[i];
      const entry = byName.get(name) ?? { name, count: 0, us: 0 };
      entry.count++;
      entry.us += Number(stamps[2 * i + 1] - stamps[2 * i]) / 1000;
      byName.set(name, entry);
    }
    return [...byName.values()].sort((a, b) => b.us - a.us);
  }
}
