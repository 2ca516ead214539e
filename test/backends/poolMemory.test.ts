// The worker pool (threads.ts) must not keep a training run's activations: linearBackward's swapped
// products pass dy's rows as linear()'s right operand, which the pool used to register with the
// workers like a weight, held there until a FinalizationRegistry callback that a training loop of
// resolved awaits never lets run (~16 MB a step for a 3.6M model at 4 × 256). Here repeated
// backward calls on fresh dy register nothing after the first, and give the single-threaded bits.
// And since V8 gives shared bytes no weight in its collection heuristics, each thread collects its
// heap once per 512 MiB of SharedArrayBuffers it makes (countShared): a dropped activation is
// collected after that many bytes of others, with no JS allocation to prompt it.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate } from 'node:timers/promises';
import { linearDx } from '../../src/backends/cpu/linearBackward.ts';
import { registeredCount, sharedF32, workerCount } from '../../src/backends/cpu/threads.ts';
import { normal, rngFor } from '../helpers/random.ts';

test('linearDx on fresh dy registers no buffer per call with the workers', (t) => {
  const [tokens, n, k] = [256, 64, 32]; // tokens > k: the swapped product, dy's rows on the right
  const rand = rngFor(t);
  const w = sharedF32(n * k); // (n, k)
  for (let i = 0; i < w.length; i++) w[i] = normal(rand);
  const counts: number[] = [];
  for (let call = 0; call < 4; call++) {
    const dy = sharedF32(tokens * n); // (tokens, n) fresh, as a training step's gradient
    for (let i = 0; i < dy.length; i++) dy[i] = normal(rand);
    process.env['MAMBA_TS_THREADS'] = '1';
    const single = new Float32Array(tokens * k); // (tokens, k)
    linearDx(single, dy, w, tokens, n, k);
    process.env['MAMBA_TS_THREADS'] = '2';
    const threaded = sharedF32(tokens * k); // (tokens, k)
    linearDx(threaded, dy, w, tokens, n, k);
    assert.deepEqual(Array.from(threaded), Array.from(single), `call ${call}: threaded dx differs`);
    counts.push(registeredCount());
  }
  assert.ok(workerCount() > 0, 'the worker pool did not start');
  t.diagnostic(`buffers registered after each call: ${counts.join(', ')}`);
  assert.deepEqual(
    counts,
    counts.map(() => counts[0]),
    'each call registered buffers with the workers',
  );
});

test('making 512 MiB of shared arrays collects the dropped ones', async () => {
  let collected = false;
  const registry = new FinalizationRegistry(() => {
    collected = true;
  });
  (() => registry.register(sharedF32(1 << 20), 0))(); // dropped at once
  for (let i = 0; i < 32; i++) sharedF32(1 << 22); // 16 MiB each, dropped at once
  await setImmediate(); // the registry's callbacks run from the event loop
  await setImmediate();
  assert.ok(collected, 'the dropped shared array was not collected');
});
