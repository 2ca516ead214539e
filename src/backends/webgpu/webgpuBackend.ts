// The WebGPU backend: tensors are storage buffers, kernels are WGSL compute shaders (one per file
// under kernels/, each with the CPU kernel it must match). Kernels are recorded into one command
// encoder and submitted only when data must come back (`read`) or go in (`upload`), so a forward
// pass or a decoding step is one command buffer with no CPU round trip inside it.
//
// Uniform parameters live in a store of slots, one per distinct content (uniforms.ts). Pipelines
// are cached by shader source, bind groups per pipeline by what they bind (pipelines.ts). Activation buffers come from a pool and go back to it when the `tidy` scope that made
// them ends. Recording a decoding step is CPU time that bounds decoding at batch 1, so a dispatch
// that repeats one of the step before allocates nothing and writes no uniform.

import { fail } from '../../core/errors.ts';
import { type DType, numel, type Shape, showShape, type Tensor } from '../../core/tensor.ts';
import { s4dDims } from '../../ssm/s4d.ts';
import type {
  Backend,
  Mamba2BlockStepArgs,
  MambaBlockStepArgs,
  MambaStepArgs,
  S4dArgs,
  SelectiveScanArgs,
  SsdArgs,
} from '../backend.ts';
import { BufferPool } from './bufferPool.ts';
import { createGpuContext, type GpuContext } from './device.ts';
import { GpuTensor, Usage } from './gpuTensor.ts';
import { argmax } from './kernels/argmax.ts';
import { conv1d } from './kernels/conv1d.ts';
import { embedding } from './kernels/embedding.ts';
import { addRmsNormLinear, linear } from './kernels/linear.ts';
import { mamba2BlockStep } from './kernels/mamba2BlockStep.ts';
import { mambaBlockStep } from './kernels/mambaBlockStep.ts';
import { mambaStep } from './kernels/mambaStep.ts';
import { addRmsNorm, gatedRmsNorm } from './kernels/norm.ts';
import { s4dScan } from './kernels/s4dScan.ts';
import { selectiveScan } from './kernels/selectiveScan.ts';
import { copyView } from './kernels/split.ts';
import { ssd } from './kernels/ssd.ts';
import { Pipelines } from './pipelines.ts';
import { WebGpuTraining } from './training.ts';
import { type Param, UniformStore } from './uniforms.ts';

/** Re-exported: kernels have imported it from here. */
export type { Param };

/** A compiled kernel: WGSL source with its constants already in; bindings 0..k-1 are storage. */
export interface Kernel {
  name: string;
  wgsl: string;
}

/**
 * Dispatches recorded before a submit (keeps the GPU busy while the CPU records the rest):
 * flushFirst after a read (the start of a decoding step), then flushEvery. A submit costs
 * ~0.1-0.2 ms of CPU in Dawn on the H100, but at batch 1 the GPU time of a decoding step is as
 * long as its recording, so the GPU must start early: 128 was slower than 48 in a same-run
 * comparison (bench/gpuKernels.ts sweeps both).
 * staticChurn: a pipeline binds its params' slot in each bind group (no dynamic offset: Dawn's
 * setBindGroup is cheaper without one, ~8% of a decoding step's CPU on lavapipe) until this many
 * bind groups were made for buffers it had already bound, i.e. its params change from call to
 * call with the same buffers (AdamW's step-dependent factors); it then takes them at a dynamic
 * offset, so that a new params content does not cost a new bind group. 0: always dynamic (set
 * between runs, it turns the pipelines made so far dynamic too).
 */
export const backendTuning = { flushEvery: 48, flushFirst: 48, staticChurn: 16 };

/** GPU timestamps around each dispatch (benchmarks only: every dispatch then gets its own pass). */
export interface PassTimer {
  /** The timestampWrites of the pass that will hold the next dispatch, of kernel `name`. */
  writes(name: string): GPUComputePassTimestampWrites;
}

export class WebGpuBackend implements Backend {
  readonly name = 'webgpu';
  readonly training: WebGpuTraining = new WebGpuTraining(this);
  private readonly pool: BufferPool;
  private readonly pipelines: Pipelines;
  private dispatches = 0;
  /** Submits since the last read (the first chunk of a step may be shorter: flushFirst). */
  private flushes = 0;
  private ownedBytes = 0;
  /** Dispatches recorded since the backend was made (benchmarks count them per step). */
  dispatchCount = 0;
  private readonly staging = new Map<number, GPUBuffer[]>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private readonly uniforms: UniformStore;
  /** The dynamic offset of a setBindGroup (one array, refilled: nothing allocated per dispatch). */
  private readonly offsets = [0];
  private lastPipeline: GPUComputePipeline | null = null;
  private readonly scopes: GpuTensor[][] = [];
  /** Owned buffers already destroyed by release (a view may be released after its base). */
  private readonly destroyed = new WeakSet<GPUBuffer>();
  /** Set by a profiler (src/bench/gpuProfile.ts); null in normal use. */
  passTimer: PassTimer | null = null;

  private readonly cachedLimits: GPUSupportedLimits;

  private constructor(readonly context: GpuContext) {
    const live = context.device.limits;
    const copy: Record<string, unknown> = {};
    for (const key in live) copy[key] = live[key as keyof GPUSupportedLimits];
    for (const key of [
      'maxStorageBufferBindingSize',
      'minStorageBufferOffsetAlignment',
      'minUniformBufferOffsetAlignment',
      'maxComputeWorkgroupsPerDimension',
    ] as const)
      copy[key] = live[key];
    this.cachedLimits = copy as unknown as GPUSupportedLimits;
    this.pool = new BufferPool(context.device);
    this.uniforms = new UniformStore(
      context.device,
      Math.max(16, this.cachedLimits.minUniformBufferOffsetAlignment),
    );
    this.pipelines = new Pipelines(context.device, this.cachedLimits, this.uniforms.buffer, backendTuning);
  }

  static async create(): Promise<WebGpuBackend> {
    return new WebGpuBackend(await createGpuContext());
  }

  get device(): GPUDevice {
    return this.context.device;
  }

  /** The device's limits, read once: every `device.limits` read is a call into Dawn (~µs). */
  get limits(): GPUSupportedLimits {
    return this.cachedLimits;
  }

  private check(): void {
    if (this.context.error) fail(`webgpu backend: ${this.context.error}`);
  }

  /**
   * Bytes of GPU storage made so far: owned tensors (weights, states, gradients, moments; never
   * freed by the backend) and the pool's buffers. Benchmarks report it as peak memory.
   */
  allocatedBytes(): number {
    return this.ownedBytes + this.pool.bytes;
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
    if (owned) this.ownedBytes += Math.max(16, Math.ceil(bytes / 16) * 16);
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

  /**
   * One owned buffer holding every part at an offset a binding can take, when made outside a tidy
   * and within one binding's size (else separate zeros). Releasing any part releases them all.
   */
  zerosTogether(shapes: readonly Shape[]): { parts: Tensor[]; whole: Tensor | null } {
    const align = this.limits.minStorageBufferOffsetAlignment / 4; // in f32
    const starts: number[] = [];
    let total = 0;
    for (const shape of shapes) {
      starts.push(total);
      total += Math.ceil(numel(shape) / align) * align;
    }
    if (this.scopes.length > 0 || total * 4 > this.limits.maxStorageBufferBindingSize)
      return { parts: shapes.map((shape) => this.zeros(shape)), whole: null };
    const whole = this.zeros([total]) as GpuTensor; // owned: made outside any tidy
    const parts = shapes.map((shape, i) => new GpuTensor([...shape], 'f32', whole.buffer, false, starts[i]));
    return { parts, whole };
  }

  copy(dst: Tensor, src: Tensor): void {
    const [d, s] = [dst as GpuTensor, src as GpuTensor];
    if (numel(d.shape) !== numel(s.shape) || d.dtype !== s.dtype || !d.contiguous)
      fail(`webgpu backend: cannot copy ${showShape(s.shape)} into ${showShape(d.shape)}`);
    const from = this.dense(s, false);
    this.commandEncoder().copyBufferToBuffer(from.buffer, from.offset * 4, d.buffer, d.offset * 4, d.bytes);
  }

  async read(tensor: Tensor): Promise<Float32Array | Int32Array> {
    return (await this.readAll([tensor]))[0];
  }

  /**
   * Several tensors read back through one staging buffer: one submit and one map for all (a
   * decoding loop reading the ids of several steps at once saves the others' ~0.1 ms each).
   */
  async readAll(tensors: readonly Tensor[]): Promise<Array<Float32Array | Int32Array>> {
    const ts = tensors.map((t) => this.dense(t as GpuTensor, false));
    const sizes = ts.map((t) => Math.ceil(t.bytes / 4) * 4);
    const size = sizes.reduce((a, b) => a + b, 0);
    // Staging buffers are reused by size class (a decoding loop reads the same size every step).
    const sizeClass = BufferPool.sizeClass(size);
    const staging =
      this.staging.get(sizeClass)?.pop() ??
      this.device.createBuffer({ size: sizeClass, usage: Usage.MAP_READ | Usage.COPY_DST });
    const encoder = this.commandEncoder();
    let at = 0;
    for (const [i, t] of ts.entries()) {
      encoder.copyBufferToBuffer(t.buffer, t.offset * 4, staging, at, sizes[i]);
      at += sizes[i];
    }
    this.flush();
    this.flushes = 0; // what follows a read (the next step) starts with a chunk of flushFirst
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
    at = 0;
    return ts.map((t, i) => {
      const view =
        t.dtype === 'i32'
          ? new Int32Array(bytes, at, numel(t.shape))
          : new Float32Array(bytes, at, numel(t.shape));
      at += sizes[i];
      return view;
    });
  }

  reshape(tensor: Tensor, shape: Shape): Tensor {
    let t = tensor as GpuTensor;
    if (numel(shape) !== numel(t.shape))
      fail(`webgpu backend: cannot reshape ${showShape(t.shape)} to ${showShape(shape)}`);
    const width = shape[shape.length - 1];
    // Rows keep their places when the last extent stays; otherwise the data must be one run.
    if (width === t.shape[t.shape.length - 1])
      return new GpuTensor(shape, t.dtype, t.buffer, false, t.offset, t.rowStride);
    if (!t.contiguous) t = this.dense(t, false);
    return new GpuTensor(shape, t.dtype, t.buffer, false, t.offset); // a view: the original owns the buffer
  }

  /**
   * `t` as kernels that know no views need it: its values in one run of a buffer, starting at an
   * offset that a binding can take (minStorageBufferOffsetAlignment, or 0 when `aligned` is
   * false: copies handle any multiple of 4 bytes). A view that is not one copies (one dispatch).
   */
  dense(t: GpuTensor, aligned = true): GpuTensor {
    if (t.offset === 0 && t.contiguous) return t;
    if (t.contiguous && (!aligned || (t.offset * 4) % this.limits.minStorageBufferOffsetAlignment === 0))
      return t;
    return copyView(this, t);
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

  /** Submits everything recorded so far (after the uniform slots it needs). */
  flush(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    if (this.encoder === null) return;
    this.uniforms.upload(this.device.queue);
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    this.dispatches = 0;
    this.flushes++;
  }

  /**
   * Records one dispatch of `kernel` over `workgroups`, with storage bindings and uniform params.
   * Bind groups are cached per pipeline by the buffers they bind (pooled buffers recur from step
   * to step); the params are found in (or added to) the uniform store, and bound with the bind
   * group or at their slot's dynamic offset (backendTuning.staticChurn). Every backendTuning.flushEvery dispatches the work so far is submitted, so that
   * the GPU runs while the CPU records the rest.
   */
  dispatch(
    kernel: Kernel,
    buffers: readonly Tensor[],
    params: readonly Param[],
    workgroups: readonly number[],
  ): void {
    const x = workgroups[0];
    const y = workgroups.length > 1 ? workgroups[1] : 1;
    const z = workgroups.length > 2 ? workgroups[2] : 1;
    const max = this.limits.maxComputeWorkgroupsPerDimension;
    if (x > max || y > max || z > max)
      fail(`webgpu backend: ${kernel.name} needs ${workgroups} workgroups, over ${max} per dimension`);
    const chunk = this.flushes === 0 ? backendTuning.flushFirst : backendTuning.flushEvery;
    if (this.dispatches >= chunk) this.flush();
    let offset = 0;
    if (params.length > 0) {
      offset = this.uniforms.slot(params);
      if (offset < 0) {
        this.flush(); // the slots' last readers are submitted before any is rewritten
        this.uniforms.reset();
        this.pipelines.uniformsMoved();
        offset = this.uniforms.slot(params);
      }
    }
    const cached = this.pipelines.get(kernel);
    const bindGroup = this.pipelines.bindGroup(
      cached,
      kernel,
      buffers as readonly GpuTensor[],
      params.length > 0 ? UniformStore.bytes(params) : 0,
      offset,
    );
    if (this.passTimer) {
      this.pass?.end();
      this.pass = null;
      const timestampWrites = this.passTimer.writes(kernel.name);
      this.pass = this.commandEncoder().beginComputePass({ timestampWrites });
      this.lastPipeline = null;
    } else if (this.pass === null) {
      this.pass = this.commandEncoder().beginComputePass();
      this.lastPipeline = null;
    }
    if (this.lastPipeline !== cached.pipeline) {
      this.pass.setPipeline(cached.pipeline);
      this.lastPipeline = cached.pipeline;
    }
    if (params.length > 0 && cached.dynamic) {
      this.offsets[0] = offset;
      this.pass.setBindGroup(0, bindGroup, this.offsets);
    } else this.pass.setBindGroup(0, bindGroup);
    this.dispatches++;
    this.dispatchCount++;
    // Only the extents that are not 1: each argument is a conversion in Dawn's Node bindings.
    if (x > 0 && y > 0 && z > 0) {
      if (z !== 1) this.pass.dispatchWorkgroups(x, y, z);
      else if (y !== 1) this.pass.dispatchWorkgroups(x, y);
      else this.pass.dispatchWorkgroups(x);
    }
  }

  /**
   * Gives a tensor's buffer back now: a pooled one to the pool (outside any tidy scope, e.g. a
   * step's logits), an owned one (a recurrent state, weights) destroyed after the work recorded
   * so far is submitted. Views share their base's buffer: releasing one releases it.
   */
  release(tensor: Tensor): void {
    const t = tensor as GpuTensor;
    if (t.released) return;
    t.released = true;
    if (t.pooled) {
      this.pool.release(t.buffer);
    } else if (!this.destroyed.has(t.buffer)) {
      this.flush(); // commands recorded but not submitted may still use it
      this.destroyed.add(t.buffer);
      this.ownedBytes -= t.buffer.size;
      t.buffer.destroy();
    }
  }

  embedding(ids: Tensor, weight: Tensor): Tensor {
    return embedding(this, this.dense(ids as GpuTensor), this.dense(weight as GpuTensor));
  }

  linear(x: Tensor, weight: Tensor, bias: Tensor | null): Tensor {
    return linear(this, x as GpuTensor, this.dense(weight as GpuTensor), bias as GpuTensor | null);
  }

  /** Column views of x (no copy): the kernels that read them take offset and row stride. */
  split(x: Tensor, sizes: readonly number[]): Tensor[] {
    const t = x as GpuTensor;
    const c = t.shape[t.shape.length - 1];
    if (sizes.reduce((a, b) => a + b, 0) !== c)
      fail(`split: parts ${sizes.join(' + ')} do not make ${showShape(t.shape)}`);
    let at = t.offset;
    return sizes.map((size) => {
      const part = new GpuTensor([...t.shape.slice(0, -1), size], t.dtype, t.buffer, false, at, t.rowStride);
      at += size;
      return part;
    });
  }

  addRmsNorm(x: Tensor, residual: Tensor | null, weight: Tensor, eps: number) {
    return addRmsNorm(
      this,
      this.dense(x as GpuTensor),
      residual && this.dense(residual as GpuTensor),
      weight as GpuTensor,
      eps,
    );
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
    return selectiveScan(this, { ...args, u: this.dense(args.u as GpuTensor) });
  }

  ssd(args: SsdArgs): Tensor {
    return ssd(this, args);
  }

  s4d(args: S4dArgs): Tensor {
    s4dDims(args);
    return s4dScan(this, { ...args, u: this.dense(args.u as GpuTensor), z: this.dense(args.z as GpuTensor) });
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
      this.dense(y as GpuTensor),
      z as GpuTensor,
      weight as GpuTensor,
      eps,
      groupSize,
      normBeforeGate,
    );
  }

  argmax(x: Tensor): Tensor {
    return argmax(this, this.dense(x as GpuTensor));
  }

  mambaStep(args: MambaStepArgs): Tensor {
    return mambaStep(this, args);
  }

  mambaBlockStep(args: MambaBlockStepArgs): { residual: Tensor; hidden: Tensor } {
    return mambaBlockStep(this, args);
  }

  mamba2BlockStep(
    args: Mamba2BlockStepArgs,
  ): { residual: Tensor; hidden: Tensor; squares: Tensor | null } | null {
    return mamba2BlockStep(this, args);
  }

  addRmsNormLinear(
    x: Tensor,
    residual: Tensor | null,
    normWeight: Tensor,
    eps: number,
    weight: Tensor,
    bias: Tensor | null,
  ) {
    const [xg, rg, w] = [x, residual, weight] as Array<GpuTensor | null>;
    return addRmsNormLinear(
      this,
      xg!,
      rg,
      normWeight as GpuTensor,
      eps,
      this.dense(w!),
      bias as GpuTensor | null,
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
