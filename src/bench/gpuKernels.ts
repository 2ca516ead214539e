// GPU benchmark of the WebGPU backend on the 130m shapes: the kernels alone (matvec/matmul,
// selective scan, SSD) and whole models (prefill at batch 1, decode at batch 1 and 64) for both
// families, in one process. Every timing runs after a warm-up (pipelines compiled, pool filled)
// and is the median of several repetitions; GPU work is waited for with onSubmittedWorkDone.
// Inputs are random (never zeros). Prints a table and writes JSON.
// Run (after npm run build): node dist/src/bench/gpuKernels.js [--quick] [--json out.json]
//   --quick uses tiny shapes (for a smoke test on lavapipe).

import { writeFileSync } from 'node:fs';
import { backendTuning, WebGpuBackend } from '../backends/webgpu/webgpuBackend.ts';
import type { Tensor } from '../core/tensor.ts';
import { CausalLM } from '../models/causalLM.ts';
import { initParameters } from '../models/init.ts';
import { presetConfig } from '../models/presets.ts';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const only = argv.find((a) => a.startsWith('--only='))?.slice(7);
const skips = (argv.find((a) => a.startsWith('--skip='))?.slice(7) ?? '').split(',').filter(Boolean);
const jsonAt = argv.indexOf('--json');
const jsonPath = jsonAt >= 0 ? argv[jsonAt + 1] : 'bench/results/gpu-kernels.json';

interface Row {
  name: string;
  ms: number;
  tokensPerSecond?: number;
  gflops?: number;
  gbps?: number;
  note?: string;
}
const rows: Row[] = [];

const be = await WebGpuBackend.create();
const description = be.context.description;

let seed = 12345;
function rand(): number {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return seed / 2 ** 32;
}
function random(shape: number[], lo = -1, hi = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = lo + (hi - lo) * rand();
  return be.upload(data, shape);
}
async function gpuIdle(): Promise<void> {
  be.flush();
  await be.device.queue.onSubmittedWorkDone();
}
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Median ms of `fn` recorded `inner` times per submit, over `reps` submits (after a warm-up).
 * `run` returns nothing, so every tensor `fn` makes (its result included) goes back to the pool.
 */
async function time(fn: () => unknown, reps: number, inner = 1): Promise<number> {
  const run = () => {
    fn();
  };
  be.tidy(run);
  await gpuIdle();
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    for (let i = 0; i < inner; i++) be.tidy(run);
    await gpuIdle();
    times.push((performance.now() - t0) / inner);
  }
  return median(times);
}

function want(name: string): boolean {
  return (only === undefined || name.includes(only)) && !skips.some((s) => name.includes(s));
}

async function kernels(): Promise<void> {
  const lin: [string, number, number, number][] = quick
    ? [['linear m1 n300 k64', 1, 300, 64]]
    : [
        ['matvec lm_head m1 n50280 k768', 1, 50280, 768],
        ['matvec in_proj m1 n3072 k768', 1, 3072, 768],
        ['matvec out_proj m1 n768 k1536', 1, 768, 1536],
        ['matvec in_proj m8 n3072 k768', 8, 3072, 768],
        ['matmul in_proj m64 n3072 k768', 64, 3072, 768],
        ['matmul in_proj m2048 n3072 k768', 2048, 3072, 768],
        ['matmul out_proj m2048 n768 k1536', 2048, 768, 1536],
        ['matmul x_proj m2048 n80 k1536', 2048, 80, 1536],
      ];
  for (const [name, m, n, k] of lin) {
    if (!want(name)) continue;
    const x = random([m, k]);
    const w = random([n, k]);
    const ms = await time(() => be.linear(x, w, null), 5, quick ? 2 : 20);
    const gflops = (2 * m * n * k) / ms / 1e6;
    const gbps = ((m * k + n * k + m * n) * 4) / ms / 1e6;
    rows.push({ name, ms, gflops, gbps });
  }
  // Selective scan alone: one layer of Mamba 130m, batch 8 x 2048.
  {
    const [b, l, d, n] = quick ? [2, 40, 70, 16] : [8, 2048, 1536, 16];
    const name = `selectiveScan b${b} l${l} d${d} n${n}`;
    if (want(name)) {
      const args = {
        u: random([b, l, d]),
        delta: random([b, l, d]),
        deltaBias: random([d], -4, -1),
        A: random([d, n], -3, -0.3),
        B: random([b, l, n]),
        C: random([b, l, n]),
        D: random([d]),
        z: random([b, l, d]),
        state: random([b, d, n]),
      };
      const ms = await time(() => be.selectiveScan(args), 5, quick ? 1 : 3);
      const bytes = (5 * b * l * d + 2 * b * l * n) * 4;
      rows.push({ name, ms, tokensPerSecond: (b * l) / (ms / 1000), gbps: bytes / ms / 1e6 });
    }
    const l1 = [1, 1, 1536, 16];
    const name1 = `selectiveScan b1 l${quick ? 300 : 2048} d1536 n16`;
    if (want(name1)) {
      const ll = quick ? 300 : 2048;
      const args = {
        u: random([1, ll, l1[2]]),
        delta: random([1, ll, l1[2]]),
        deltaBias: random([l1[2]], -4, -1),
        A: random([l1[2], 16], -3, -0.3),
        B: random([1, ll, 16]),
        C: random([1, ll, 16]),
        D: random([l1[2]]),
        z: random([1, ll, l1[2]]),
        state: random([1, l1[2], 16]),
      };
      const ms = await time(() => be.selectiveScan(args), 5, quick ? 1 : 5);
      rows.push({ name: name1, ms, tokensPerSecond: ll / (ms / 1000) });
    }
  }
  // SSD alone: one layer of Mamba-2 130m, batch 4 x 16384 (and batch 1 x 2048).
  for (const [b, l] of quick
    ? [[1, 40]]
    : [
        [4, 16384],
        [1, 2048],
      ]) {
    const [h, p, n, q] = quick ? [4, 16, 32, 16] : [24, 64, 128, 256];
    const name = `ssd b${b} l${l} h${h} p${p} n${n} q${q}`;
    if (!want(name)) continue;
    const args = {
      x: random([b, l, h * p]),
      dt: random([b, l, h]),
      dtBias: random([h], -3, 0),
      dtLimit: [0, Number.POSITIVE_INFINITY] as const,
      A: random([h], -3, -0.3),
      B: random([b, l, n]),
      C: random([b, l, n]),
      D: random([h]),
      state: random([b, h, p, n]),
      chunkSize: q,
    };
    const ms = await time(() => be.ssd(args), 3, 1);
    const bytes = (2 * b * l * h * p + 2 * b * l * n + b * l * h) * 4;
    rows.push({ name, ms, tokensPerSecond: (b * l) / (ms / 1000), gbps: bytes / ms / 1e6 });
  }
}

async function models(): Promise<void> {
  for (const family of ['mamba', 'mamba2']) {
    const preset = quick ? 'tiny' : '130m';
    const config = presetConfig(family, preset);
    const params = initParameters(config, 0);
    const model = new CausalLM(config, be, (name) => params.get(name));
    const vocab = config.vocabSize;
    for (const len of quick ? [20] : [512, 2048]) {
      const name = `${family} prefill b1 l${len}`;
      if (!want(name)) continue;
      const prompt = Int32Array.from({ length: len }, (_, i) => (i * 7919) % vocab);
      const times: number[] = [];
      for (let r = 0; r < 4; r++) {
        const state = model.newState(1);
        await gpuIdle();
        const t0 = performance.now();
        const logits = model.forward(prompt, 1, { state, lastOnly: true }).logits;
        await be.read(logits);
        if (r > 0) times.push(performance.now() - t0);
      }
      const ms = median(times);
      rows.push({ name, ms, tokensPerSecond: len / (ms / 1000) });
    }
    const flushDefault = backendTuning.flushEvery;
    for (const [batch, flushEvery] of [
      [1, flushDefault],
      [1, 1e9],
      [quick ? 3 : 64, flushDefault],
    ]) {
      backendTuning.flushEvery = flushEvery;
      const name = `${family} decode b${batch}${flushEvery === flushDefault ? '' : ' one submit'}`;
      if (!want(name)) continue;
      const state = model.newState(batch);
      const steps = quick ? 4 : batch === 1 ? 64 : 32;
      const tokens = Int32Array.from({ length: batch }, (_, i) => (i * 31) % vocab);
      for (let i = 0; i < 3; i++) await be.read(model.step(tokens, state)); // warm-up
      // Record-only CPU time of one step (what the JS + Dawn validation costs).
      const d0 = be.dispatchCount;
      const r0 = performance.now();
      const pending = model.step(tokens, state);
      const recordMs = performance.now() - r0;
      const perStep = be.dispatchCount - d0;
      await be.read(pending);
      const t0 = performance.now();
      for (let i = 0; i < steps; i++) {
        const logits = model.step(tokens, state);
        await be.read(logits);
        be.release(logits);
      }
      const ms = (performance.now() - t0) / steps;
      rows.push({
        name,
        ms,
        tokensPerSecond: batch / (ms / 1000),
        note: `record ${recordMs.toFixed(2)} ms/step, ${perStep} dispatches`,
      });
      backendTuning.flushEvery = flushDefault;
    }
  }
}

await kernels();
await models();

const head = ['name', 'ms', 'tok/s', 'GFLOP/s', 'GB/s', 'note'];
const body = rows.map((r) => [
  r.name,
  r.ms.toFixed(3),
  r.tokensPerSecond === undefined ? '' : r.tokensPerSecond.toFixed(0),
  r.gflops === undefined ? '' : r.gflops.toFixed(0),
  r.gbps === undefined ? '' : r.gbps.toFixed(0),
  r.note ?? '',
]);
const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
process.stdout.write(`${description}\n`);
process.stdout.write(
  `${[head, ...body].map((row) => row.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')).join('\n')}\n`,
);
writeFileSync(
  jsonPath,
  `${JSON.stringify({ date: new Date().toISOString(), device: description, rows }, null, 2)}\n`,
);
process.exit(0);
