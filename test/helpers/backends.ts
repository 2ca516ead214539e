// The backends a test runs on: the CPU always, WebGPU where an adapter exists (lavapipe on CI and
// developer machines). Without an adapter, WebGPU tests are skipped loudly, except under CI
// (CI=true), where a missing adapter is a failure: CI must never silently skip the GPU path.

import type { Backend } from '../../src/backends/backend.ts';
import { CpuBackend } from '../../src/backends/cpu/cpuBackend.ts';
import { WebGpuBackend } from '../../src/backends/webgpu/webgpuBackend.ts';

let webgpu: Promise<WebGpuBackend | string> | null = null;

/** One WebGPU backend per test process (device creation is slow on lavapipe), or why there is none. */
export function webgpuBackend(): Promise<WebGpuBackend | string> {
  webgpu ??= WebGpuBackend.create().catch((error: Error) => {
    if (process.env.CI) throw new Error(`CI must run the WebGPU tests, but: ${error.message}`);
    process.stderr.write(`\n*** SKIPPING WebGPU tests: ${error.message} ***\n\n`);
    return error.message;
  });
  return webgpu;
}

export interface NamedBackend {
  name: string;
  /** The backend, or the reason it is unavailable (for t.skip). */
  backend: Backend | string;
}

export async function testBackends(): Promise<NamedBackend[]> {
  return [
    { name: 'cpu', backend: new CpuBackend() },
    { name: 'webgpu', backend: await webgpuBackend() },
  ];
}
