// The WebGPU backend: tensors are storage buffers, kernels are WGSL compute shaders (one per file
// under kernels/, each with the CPU kernel it must match). Kernels are recorded into one command
// encoder and submitted only when data must come back (`read`) or go in (`upload`), so a forward
// pass or a decoding step is one command buffer with no CPU round trip inside it.
//
// Uniform parameters of every dispatch go into one arena, written with a single writeBuffer just
// before the submit that uses them (queue order makes reusing the arena safe). Pipelines are
// cached by shader source. Activation buffers come from a pool and go back to it when the `tidy`
// scope that made them ends.

import { fail } from '../../core/errors.ts';
import { type DType, numel, type Shape, showShape, type Tensor } from '../../core/tensor.ts';
import type { Backend, SelectiveScanArgs, SsdArgs } from '../backend.ts';
import { BufferPool } from './bufferPool.ts';
import { createGpuContext, type GpuContext } from './device.ts';
import { GpuTensor, Usage } from './gpuTensor.ts';
import { conv1d } from './kernels/conv1d.ts';
import { embedding } from './kernels/embedding.ts';
import { linear } from './kernels/linear.ts';
import { addRmsNorm, gatedRmsNorm } from './kernels/norm.ts';
import { selectiveScan } from './kernels/selectiveScan.ts';
import { split } from './kernels/split.ts';
import { ssd } from './kernels/ssd.ts';

/** A uniform field: a number is a u32, {f32} a float, {i32} a signed integer. */
export type Param = number | { f32: number } | { i32: number };

/** A compiled kernel: WGSL source with its constants already in; bindings 0..k-1 are storage. */
export interface Kernel {
  name: string;
  wgsl: string;
}

const ARENA_BYTES = 1 << 20;
/** Dispatches recorded before a submit (keeps the GPU busy while the CPU records the rest). */
export const backendTuning = { flushEvery: 48 };
/** Bind groups cached per pipeline before the cache is cleared (buffers come and go). */
const MAX_BIND_GROUPS = 4096;

interface CachedPipeline {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  id: number;
  bindGroups: Map<string, GPUBindGroup>;
}

export class WebGpuBackend implements Backend {
  readonly name = 'webgpu';
  private readonly pool: BufferPool;
  private readonly pipelines = new Map<string, CachedPipeline>();
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 0;
  private dispatches = 0;
  private readonly staging = new Map<number, GPUBuffer[]>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private readonly arena: GPUBuffer;
  private readonly arenaData = new ArrayBuffer(ARENA_BYTES);
  private arenaUsed = 0;
  private readonly scopes: GpuTensor[][] = [];

  private constructor(readonly context: GpuContext) {
    this.pool = new BufferPool(context.device);
    this.arena = context.device.createBuffer({ size: ARENA_BYTES, usage: Usage.UNIFORM | Usage.COPY_DST });
  }

  static async create(): Promise<WebGpuBackend> {
    return new WebGpuBackend(await createGpuContext());
  }

  get device(): GPUDevice {
    return this.context.device;
  }

  get limits(): GPUSupportedLimits {
    return this.context.device.limits;
  }

  private check(): void {
    if (this.context.error) fail(`webgpu backend: ${this.context.error}`);
  }

  /** A new tensor of `shape`; pooled (released by the enclosing tidy) unless `owned`. */
  alloc(shape: Shape, dtype: DType = 'f32', owned = false): GpuTensor {
    const bytes = numel(shape) * 4;
    const max = this.limits.maxStorageBufferBindingSize;
    if (bytes > max) {
      fail(
        `webgpu backend: a tensor of ${showShape(shape)} needs ${bytes} bytes, over this adapter's maxStorageBufferBindingSize of ${max}`,
      );
    }
    const buffer = owned
      ? this.device.createBuffer({
          size: Math.max(16, Math.ceil(bytes / 16) * 16),
          usage: Usage.STORAGE | Usage.COPY_SRC | Usage.COPY_DST,
        })
      : this.pool.acquire(bytes);
    const tensor = new GpuTensor(shape, dtype, buffer, !owned);
    if (!owned) this.scopes.at(-1)?.push(tensor);
    return tensor;
  }

  upload(data: Float32Array | Int32Array, shape: Shape): Tensor {
    if (data.length !== numel(shape))
      fail(`webgpu backend: ${data.length} values do not fill ${showShape(shape)}`);
    this.flush(); // a pooled buffer may still be read by commands not yet submitted
    const tensor = this.alloc(shape, data instanceof Int32Array ? 'i32' : 'f32', this.scopes.length === 0);
    this.device.queue.writeBuffer(tensor.buffer, 0, data.buffer, data.byteOffset, data.byteLength);
    return tensor;
  }

  zeros(shape: Shape, dtype: DType = 'f32'): Tensor {
    const tensor = this.alloc(shape, dtype, this.scopes.length === 0);
    this.commandEncoder().clearBuffer(tensor.buffer, 0, Math.ceil(tensor.bytes / 4) * 4 || undefined);
    return tensor;
  }

  async read(tensor: Tensor): Promise<Float32Array | Int32Array> {
    const t = tensor as GpuTensor;
    const size = Math.ceil(t.bytes / 4) * 4;
    // Staging buffers are reused by size class (a decoding loop reads the same size every step).
    const sizeClass = BufferPool.sizeClass(size);
    const staging =
      this.staging.get(sizeClass)?.pop() ??
      this.device.createBuffer({ size: sizeClass, usage: Usage.MAP_READ | Usage.COPY_DST });
    this.commandEncoder().copyBufferToBuffer(t.buffer, 0, staging, 0, size);
    this.flush();
    try {
      await staging.mapAsync(GPUMapMode.READ, 0, sizeClass);
    } catch (error) {
      this.check();
      throw error;
    }
    this.check();
    const bytes = staging.getMappedRange(0, sizeClass).slice(0, size);
    staging.unmap();
    const list = this.staging.get(sizeClass) ?? [];
    if (list.length < 4) {
      list.push(staging);
      this.staging.set(sizeClass, list);
    } else staging.destroy();
    return t.dtype === 'i32'
      ? new Int32Array(bytes, 0, numel(t.shape))
      : new Float32Array(bytes, 0, numel(t.shape));
  }

  reshape(tensor: Tensor, shape: Shape): Tensor {
    const t = tensor as GpuTensor;
    if (numel(shape) !== numel(t.shape))
      fail(`webgpu backend: cannot reshape ${showShape(t.shape)} to ${showShape(shape)}`);
    return new GpuTensor(shape, t.dtype, t.buffer, false); // a view: the original owns the buffer
  }

  tidy<T>(fn: () => T): T {
    this.scopes.push([]);
    let result: T;
    try {
      result = fn();
    } finally {
      const made = this.scopes.pop()!;
      const kept = new Set<GPUBuffer>();
      collectBuffers(result!, kept);
      for (const t of made) {
        if (kept.has(t.buffer)) this.scopes.at(-1)?.push(t);
        else if (!t.released) {
          t.released = true;
          this.pool.release(t.buffer);
        }
      }
    }
    return result;
  }

  private commandEncoder(): GPUCommandEncoder {
    this.check();
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  /** Submits everything recorded so far (with the uniform arena it needs). */
  flush(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    if (this.encoder === null) return;
    if (this.arenaUsed > 0) this.device.queue.writeBuffer(this.arena, 0, this.arenaData, 0, this.arenaUsed);
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    this.arenaUsed = 0;
    this.dispatches = 0;
  }

  /** The pipeline of a kernel, with an explicit layout whose uniform binding takes a dynamic offset. */
  private pipeline(kernel: Kernel): CachedPipeline {
    let cached = this.pipelines.get(kernel.wgsl);
    if (cached === undefined) {
      const module = this.device.createShaderModule({ label: kernel.name, code: kernel.wgsl });
      const entries: GPUBindGroupLayoutEntry[] = [];
      for (const match of kernel.wgsl.matchAll(
        /@binding\((\d+)\)\s*var<(storage|uniform)(?:,\s*(read_write|read))?>/g,
      )) {
        const type: GPUBufferBindingType =
          match[2] === 'uniform' ? 'uniform' : match[3] === 'read_write' ? 'storage' : 'read-only-storage';
        entries.push({
          binding: Number(match[1]),
          visibility: 4, // GPUShaderStage.COMPUTE
          buffer: { type, hasDynamicOffset: type === 'uniform' },
        });
      }
      const layout = this.device.createBindGroupLayout({ label: kernel.name, entries });
      const pipeline = this.device.createComputePipeline({
        label: kernel.name,
        layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module },
      });
      cached = { pipeline, layout, id: this.pipelines.size, bindGroups: new Map() };
      this.pipelines.set(kernel.wgsl, cached);
    }
    return cached;
  }

  private bufferId(buffer: GPUBuffer): number {
    let id = this.bufferIds.get(buffer);
    if (id === undefined) {
      id = this.nextBufferId++;
      this.bufferIds.set(buffer, id);
    }
    return id;
  }

  /**
   * Records one dispatch of `kernel` over `workgroups`, with storage bindings and uniform params.
   * Bind groups are cached per pipeline by the buffers they bind (pooled buffers recur from step
   * to step); the params live in the uniform arena at a dynamic offset. Every backendTuning.flushEvery
   * dispatches the work so far is submitted, so that the GPU runs while the CPU records the rest.
   */
  dispatch(
    kernel: Kernel,
    buffers: readonly Tensor[],
    params: readonly Param[],
    workgroups: readonly number[],
  ): void {
    const [x, y = 1, z = 1] = workgroups;
    const max = this.limits.maxComputeWorkgroupsPerDimension;
    if (x > max || y > max || z > max)
      fail(`webgpu backend: ${kernel.name} needs ${workgroups} workgroups, over ${max} per dimension`);
    const align = Math.max(16, this.limits.minUniformBufferOffsetAlignment);
    const bytes = Math.max(16, Math.ceil((params.length * 4) / 16) * 16);
    if (this.arenaUsed + bytes > ARENA_BYTES || this.dispatches >= backendTuning.flushEvery) this.flush();
    const offset = this.arenaUsed;
    const view = new DataView(this.arenaData, offset, bytes);
    for (let i = 0; i < params.length; i++) {
      const p = params[i];
      if (typeof p === 'number') view.setUint32(4 * i, p, true);
      else if ('f32' in p) view.setFloat32(4 * i, p.f32, true);
      else view.setInt32(4 * i, p.i32, true);
    }
    this.arenaUsed = Math.ceil((offset + bytes) / align) * align;
    const cached = this.pipeline(kernel);
    let key = `${bytes}`;
    for (const t of buffers) key += `,${this.bufferId((t as GpuTensor).buffer)}`;
    let bindGroup = cached.bindGroups.get(key);
    if (bindGroup === undefined) {
      const entries: GPUBindGroupEntry[] = buffers.map((t, i) => ({
        binding: i,
        resource: { buffer: (t as GpuTensor).buffer },
      }));
      if (params.length > 0)
        entries.push({ binding: buffers.length, resource: { buffer: this.arena, offset: 0, size: bytes } });
      bindGroup = this.device.createBindGroup({ layout: cached.layout, entries });
      if (cached.bindGroups.size >= MAX_BIND_GROUPS) cached.bindGroups.clear();
      cached.bindGroups.set(key, bindGroup);
    }
    if (this.pass === null) this.pass = this.commandEncoder().beginComputePass();
    this.pass.setPipeline(cached.pipeline);
    if (params.length > 0) this.pass.setBindGroup(0, bindGroup, [offset]);
    else this.pass.setBindGroup(0, bindGroup);
    this.dispatches++;
    if (x > 0 && y > 0 && z > 0) this.pass.dispatchWorkgroups(x, y, z);
  }

  /** Gives a tensor's buffer back to the pool now (outside any tidy scope, e.g. a step's logits). */
  release(tensor: Tensor): void {
    const t = tensor as GpuTensor;
    if (t.pooled && !t.released) {
      t.released = true;
      this.pool.release(t.buffer);
    }
  }

  embedding(ids: Tensor, weight: Tensor): Tensor {
    return embedding(this, ids as GpuTensor, weight as GpuTensor);
  }

  linear(x: Tensor, weight: Tensor, bias: Tensor | null): Tensor {
    return linear(this, x as GpuTensor, weight as GpuTensor, bias as GpuTensor | null);
  }

  split(x: Tensor, sizes: readonly number[]): Tensor[] {
    return split(this, x as GpuTensor, sizes);
  }

  addRmsNorm(x: Tensor, residual: Tensor | null, weight: Tensor, eps: number) {
    return addRmsNorm(this, x as GpuTensor, residual as GpuTensor | null, weight as GpuTensor, eps);
  }

  causalConv1d(x: Tensor, weight: Tensor, bias: Tensor | null, state: Tensor, silu: boolean): Tensor {
    return conv1d(
      this,
      x as GpuTensor,
      weight as GpuTensor,
      bias as GpuTensor | null,
      state as GpuTensor,
      silu,
    );
  }

  selectiveScan(args: SelectiveScanArgs): Tensor {
    return selectiveScan(this, args);
  }

  ssd(args: SsdArgs): Tensor {
    return ssd(this, args);
  }

  gatedRmsNorm(
    y: Tensor,
    z: Tensor,
    weight: Tensor,
    eps: number,
    groupSize: number,
    normBeforeGate: boolean,
  ) {
    return gatedRmsNorm(
      this,
      y as GpuTensor,
      z as GpuTensor,
      weight as GpuTensor,
      eps,
      groupSize,
      normBeforeGate,
    );
  }
}

/** Every GPU buffer reachable from a tidy scope's result (tensors, arrays, plain objects). */
function collectBuffers(value: unknown, into: Set<GPUBuffer>): void {
  if (value instanceof GpuTensor) into.add(value.buffer);
  else if (Array.isArray(value)) for (const v of value) collectBuffers(v, into);
  else if (value !== null && typeof value === 'object')
    for (const v of Object.values(value)) collectBuffers(v, into);
}
