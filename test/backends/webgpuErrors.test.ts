// WebGPU failures become one clear MambaError, never a hang: a tensor over the adapter's binding
// limit names the limit; work on a lost (here: destroyed) device is refused.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WebGpuBackend } from '../../src/backends/webgpu/webgpuBackend.ts';
import { MambaError } from '../../src/core/errors.ts';
import { webgpuBackend } from '../helpers/backends.ts';

const shared = await webgpuBackend();
const skip = typeof shared === 'string' ? shared : false;

test('a tensor over maxStorageBufferBindingSize is refused, naming the limit', { skip }, () => {
  const be = shared as WebGpuBackend;
  const limit = be.limits.maxStorageBufferBindingSize;
  const floats = Math.floor(limit / 4) + 1024;
  assert.throws(
    () => be.zeros([floats]),
    (e: Error) =>
      e instanceof MambaError && /over this adapter's maxStorageBufferBindingSize of \d+/.test(e.message),
  );
});

test('a lost device gives a clear error, not a hang', { skip, timeout: 20_000 }, async () => {
  const be = await WebGpuBackend.create();
  const t = be.upload(Float32Array.of(1, 2, 3), [3]);
  assert.deepEqual([...(await be.read(t))], [1, 2, 3]);
  be.device.destroy();
  await be.device.lost;
  await assert.rejects(
    async () => be.read(be.upload(Float32Array.of(4), [1])),
    (e: Error) => e instanceof MambaError && /GPU device lost/.test(e.message),
  );
});
