// What makes recording a dispatch cheap must not change what runs: the uniform store (one slot per
// distinct params content, reset when full), the bind group cache (hashed keys), the pool's size
// classes, several reads through one staging buffer (readAll). The store and the size classes are checked on the host; the backend on lavapipe, with
// more distinct params in one command buffer than the store holds.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BufferPool } from '../../src/backends/webgpu/bufferPool.ts';
import { UniformStore } from '../../src/backends/webgpu/uniforms.ts';
import { backendTuning, type WebGpuBackend } from '../../src/backends/webgpu/webgpuBackend.ts';
import { webgpuBackend } from '../helpers/backends.ts';

const shared = await webgpuBackend();
const skip = typeof shared === 'string' ? shared : false;

/** A store on a stand-in device whose queue records the writes. */
function hostStore(align: number) {
  const writes: [number, number][] = [];
  const device = { createBuffer: () => ({}) } as unknown as GPUDevice;
  const queue = {
    writeBuffer: (_b: GPUBuffer, at: number, _d: ArrayBuffer, _o: number, size: number) =>
      writes.push([at, size]),
  } as unknown as GPUQueue;
  return { store: new UniformStore(device, align), queue, writes };
}

test('uniform store: one slot per content, written once, full only for new content', () => {
  const { store, queue, writes } = hostStore(256);
  const a = store.slot([1, 2, { f32: 0.5 }]);
  const b = store.slot([1, 2, { f32: 0.25 }]);
  const c = store.slot([1, 2, { f32: 0.5 }, 0, 0]); // 32 bytes: another binding size
  assert.deepEqual([a, b, c], [0, 256, 512]);
  assert.equal(store.slot([1, 2, { f32: 0.5 }]), a);
  assert.equal(store.slot([1, 2, { i32: -1 }]), 768);
  store.upload(queue);
  store.upload(queue);
  assert.deepEqual(writes, [[0, 1024]]);
  assert.equal(store.slot([1, 2, { f32: 0.25 }]), b);
  store.slot([7]);
  store.upload(queue);
  assert.deepEqual(writes.at(-1), [1024, 256]);
  // Fill it: 4096 slots of 256 bytes in all; then old contents are still found, new ones refused.
  for (let i = 5; i < 4096; i++) assert.equal(store.slot([i, 1000]), i * 256);
  assert.equal(store.slot([4096, 1000]), -1);
  assert.equal(store.slot([4095, 1000]), 4095 * 256);
  assert.equal(store.slot([1, 2, { f32: 0.5 }]), a);
  store.reset();
  assert.equal(store.slot([4096, 1000]), 0);
});

test('uniform store: contents whose hashes collide keep their own slots', () => {
  const { store } = hostStore(16);
  // Many contents of one size: some hashes collide or probe into each other; all stay distinct.
  const slots = new Map<number, number>();
  for (let i = 0; i < 20000; i++) slots.set(i, store.slot([i & 0xff, i >>> 8, { f32: i }]));
  assert.equal(new Set(slots.values()).size, 20000);
  for (let i = 0; i < 20000; i += 7) assert.equal(store.slot([i & 0xff, i >>> 8, { f32: i }]), slots.get(i));
});

test('pool size classes: the next power of two, at least 256 bytes', () => {
  const reference = (bytes: number) => Math.max(256, 2 ** Math.ceil(Math.log2(Math.max(bytes, 1))));
  const sizes = [0, 1, 255, 256, 257, 4096, 4097, 3 * 2 ** 20, 2 ** 30 - 1, 2 ** 30, 2 ** 30 + 1];
  for (const bytes of [...sizes, 2 ** 31 - 4, 2 ** 31, 2 ** 31 + 4, 2 ** 32, 2 ** 32 + 4])
    assert.equal(BufferPool.sizeClass(bytes), reference(bytes), `${bytes} bytes`);
});

const writeKernel = {
  name: 'testWriteParam',
  wgsl: /* wgsl */ `
struct Params { at: u32, value: f32 }
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<uniform> params: Params;
@compute @workgroup_size(1)
fn main() { out[params.at] = params.value; }`,
};

test('more distinct params in one command buffer than the uniform store holds', { skip }, async () => {
  const be = shared as WebGpuBackend;
  const n = 5000; // over the store's 4096 slots: it is reset (after a submit) while recording
  const saved = { ...backendTuning };
  Object.assign(backendTuning, { flushFirst: 1e9, flushEvery: 1e9 });
  try {
    const out = be.zeros([n]);
    // Each value twice: the second dispatch reuses the first one's slot.
    for (let r = 0; r < 2; r++)
      for (let i = 0; i < n; i++) be.dispatch(writeKernel, [out], [i, { f32: i / 2 }], [1]);
    const values = await be.read(out);
    assert.deepEqual(
      [...values],
      Array.from({ length: n }, (_, i) => i / 2),
    );
    be.release(out);
  } finally {
    Object.assign(backendTuning, saved);
  }
});

test('a repeated step binds and reads the same as the first', { skip }, async () => {
  const be = shared as WebGpuBackend;
  // The same buffers with different params, and views at offsets of one buffer, step after step.
  const base = be.zeros([64 + 8]);
  for (let step = 0; step < 3; step++) {
    be.tidy(() => {
      for (let i = 0; i < 8; i++) be.dispatch(writeKernel, [base], [64 + i, { f32: step * 10 + i }], [1]);
      const [, tail] = be.split(be.reshape(base, [1, 72]), [64, 8]); // (1, 8) at element 64
      const view = be.reshape(tail, [8]);
      for (let i = 0; i < 8; i++) be.dispatch(writeKernel, [view], [i, { f32: step * 10 + i + 0.5 }], [1]);
    });
    const values = await be.read(base);
    assert.deepEqual(
      [...values.subarray(64)],
      Array.from({ length: 8 }, (_, i) => step * 10 + i + 0.5),
    );
  }
  be.release(base);
});

test('a pipeline that binds its params slot keeps its values across a reset of the store', {
  skip,
}, async () => {
  const be = shared as WebGpuBackend;
  // Other sources for the same code are other pipelines: one, static, binds a's params slot, the
  // other fills the store with new params (and goes dynamic on the way).
  const kernel = { name: 'testStatic', wgsl: `${writeKernel.wgsl}\n// static` };
  const filler = { name: 'testFiller', wgsl: `${writeKernel.wgsl}\n// filler` };
  const a = be.zeros([2]);
  const b = be.zeros([5000]);
  be.dispatch(kernel, [a], [0, { f32: 1.5 }], [1]);
  for (let i = 0; i < 5000; i++) be.dispatch(filler, [b], [i, { f32: i }], [1]);
  be.dispatch(kernel, [a], [1, { f32: 2.5 }], [1]); // after the reset: a new slot
  be.dispatch(kernel, [a], [0, { f32: 1.5 }], [1]); // the first params, now elsewhere
  assert.deepEqual([...(await be.read(a))], [1.5, 2.5]);
  assert.equal((await be.read(b))[4999], 4999);
  be.release(a);
  be.release(b);
});

test('staticChurn 0 turns the pipelines made so far to dynamic offsets, same values', { skip }, async () => {
  const be = shared as WebGpuBackend;
  const kernel = { name: 'testSweep', wgsl: `${writeKernel.wgsl}\n// sweep` };
  const a = be.zeros([4]);
  const saved = { ...backendTuning };
  try {
    be.dispatch(kernel, [a], [0, { f32: 1 }], [1]); // static
    backendTuning.staticChurn = 0;
    for (let i = 1; i < 4; i++) be.dispatch(kernel, [a], [i, { f32: i + 1 }], [1]); // dynamic
    assert.deepEqual([...(await be.read(a))], [1, 2, 3, 4]);
  } finally {
    Object.assign(backendTuning, saved);
    be.release(a);
  }
});

test('readAll gives what each read gives: f32 and i32 tensors, a view at an offset, odd lengths', {
  skip,
}, async () => {
  const be = shared as WebGpuBackend;
  const f = be.upload(
    Float32Array.from({ length: 7 }, (_, i) => i / 3),
    [7],
  );
  const ids = be.upload(Int32Array.from([5, -1, 9]), [3]);
  const [, part] = be.split(
    be.upload(
      Float32Array.from({ length: 12 }, (_, i) => 10 + i),
      [1, 12],
    ),
    [5, 7],
  );
  const tensors = [f, ids, part, ids];
  const together = await be.readAll(tensors);
  const alone = await Promise.all(tensors.map((t) => be.read(t)));
  assert.deepEqual(together, alone);
  assert.ok(together[1] instanceof Int32Array && together[2] instanceof Float32Array);
  assert.deepEqual([...together[2]], [15, 16, 17, 18, 19, 20, 21]);
});
