// Finding a GPU: navigator.gpu in browsers, Dawn's Node bindings (the optional npm package
// `webgpu`) in Node. The device asks for the adapter's own limits (storage buffer sizes, workgroup
// memory) and for the optional features it has (subgroups, shader-f16, timestamp-query); kernels
// work without any of them. A lost device or an uncaptured error becomes a MambaError on the next
// call instead of a hang.
//
// Dawn in Node: the object returned by `create()` must stay reachable for as long as a device
// lives, or V8 may collect it and Dawn then crashes at a random later point; GpuContext holds it.

import { fail } from '../../core/errors.ts';

export interface GpuContext {
  /** The GPU entry point; held so that Dawn's instance outlives the device. */
  readonly gpu: GPU;
  readonly adapter: GPUAdapter;
  readonly device: GPUDevice;
  readonly description: string;
  readonly features: { subgroups: boolean; shaderF16: boolean; timestampQuery: boolean };
  /** Set when the device is lost or reports an uncaptured error. */
  error: string | null;
}

async function findGpu(): Promise<GPU> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu;
  let dawn: { create(options: string[]): GPU; globals: object };
  try {
    dawn = await import('webgpu');
  } catch {
    return fail('webgpu backend: no WebGPU here (in Node, install the optional npm package "webgpu")');
  }
  Object.assign(globalThis, dawn.globals);
  return dawn.create([]);
}

const optional = ['subgroups', 'shader-f16', 'timestamp-query'] as const;

export async function createGpuContext(): Promise<GpuContext> {
  const gpu = await findGpu();
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (adapter === null)
    fail('webgpu backend: no GPU adapter found (on Linux without a GPU, install Mesa lavapipe)');
  const requiredFeatures = optional.filter((f) => adapter.features.has(f));
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures,
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: l.maxComputeWorkgroupSizeY,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    },
  });
  const info = adapter.info;
  const context: GpuContext = {
    gpu,
    adapter,
    device,
    description: [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' '),
    features: {
      subgroups: requiredFeatures.includes('subgroups'),
      shaderF16: requiredFeatures.includes('shader-f16'),
      timestampQuery: requiredFeatures.includes('timestamp-query'),
    },
    error: null,
  };
  device.lost.then((lost) => {
    context.error = `GPU device lost (${lost.reason === 'destroyed' ? 'destroyed' : lost.message || lost.reason})`;
  });
  device.addEventListener('uncapturederror', (event) => {
    context.error ??= `GPU error: ${(event as GPUUncapturedErrorEvent).error.message.split('\n')[0]}`;
  });
  return context;
}
