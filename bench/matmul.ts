// Benchmark of linear() on the Mamba-130m shapes, at m = 1 (decode) and m = 512 (prefill), on one
// thread (MAMBA_TS_THREADS=1) and on the worker pool (default thread count). Weights are
// SharedArrayBuffer-backed, as the CPU backend allocates them. At m ≤ 8 every call reads a
// different copy of the weights, the copies adding up to ≥ 1 GiB, so the numbers are for weights
// streamed from memory rather than from cache. Times are the best of 3 means (each over ≥ 0.4 s)
// after a warm-up call: other processes may share the machine, and threads suffer most from that.
// Prints a table and an estimate of the model's decode speed (24 layers of in/x/dt/out_proj + LM
// head, linear layers only), and writes bench/results/matmul.json.
// Run: node --import tsx bench/matmul.ts [m …]

import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { linear } from '../src/backends/cpu/matmul.ts';
import { sharedF32, threadCount, workerCount } from '../src/backends/cpu/threads.ts';

const SHAPES: [string, number, number][] = [
  ['in_proj', 3072, 768],
  ['out_proj', 768, 1536],
  ['x_proj', 80, 1536],
  ['dt_proj', 1536, 48],
  ['lm_head', 50280, 768],
];
const LAYERS = 24;
const COLD_BYTES = 2 ** 30;
const TRIALS = 3;
const TRIAL_MS = 400;
const ms = process.argv.slice(2).map(Number);
const M = ms.length > 0 ? ms : [1, 512];
const defaultThreads = threadCount();

interface Row {
  shape: string;
  m: number;
  n: number;
  k: number;
  threads: number;
  ms: number;
  gflops: number;
  weightGBs: number;
}

function randomShared(length: number): Float32Array {
  const a = sharedF32(length);
  for (let i = 0; i < length; i++) a[i] = Math.random() * 2 - 1;
  return a;
}

/** ms per call: the best of TRIALS means, each over ≥ TRIAL_MS and one pass through the copies. */
function time(m: number, n: number, k: number, ws: Float32Array[], bias: Float32Array): number {
  const x = randomShared(m * k);
  const out = sharedF32(m * n);
  linear(out, x, ws[0], bias, m, n, k);
  let best = Number.POSITIVE_INFINITY;
  for (let trial = 0; trial < TRIALS; trial++) {
    let calls = 0;
    const start = performance.now();
    while (performance.now() - start < TRIAL_MS || calls < ws.length) {
      linear(out, x, ws[calls % ws.length], bias, m, n, k);
      calls++;
    }
    best = Math.min(best, (performance.now() - start) / calls);
  }
  return best;
}

const rows: Row[] = [];
for (const m of M) {
  for (const [shape, n, k] of SHAPES) {
    const w = randomShared(n * k);
    const copies = m <= 8 ? Math.ceil(COLD_BYTES / (4 * n * k)) : 1;
    const ws = [w];
    for (let c = 1; c < copies; c++) {
      ws.push(sharedF32(n * k));
      ws[c].set(w);
    }
    const bias = randomShared(n);
    for (const threads of [1, defaultThreads]) {
      process.env['MAMBA_TS_THREADS'] = String(threads);
      const t = time(m, n, k, ws, bias);
      const used = threads > 1 ? workerCount() + 1 : 1;
      const gflops = (2 * m * n * k) / t / 1e6;
      const weightGBs = (4 * n * k) / t / 1e6;
      rows.push({ shape, m, n, k, threads: used, ms: t, gflops, weightGBs });
      console.log(
        `${shape.padEnd(9)} m=${String(m).padEnd(4)} n=${String(n).padEnd(6)} k=${String(k).padEnd(5)}` +
          ` threads=${used}  ${t.toFixed(3).padStart(9)} ms  ${gflops.toFixed(2).padStart(6)} GFLOP/s` +
          `  ${weightGBs.toFixed(2).padStart(6)} GB/s`,
      );
      if (defaultThreads === 1) break;
    }
  }
}

const decode: Record<string, { msPerToken: number; tokensPerS: number; weightGBs: number }> = {};
for (const threads of new Set(rows.filter((r) => r.m === 1).map((r) => r.threads))) {
  const at = (shape: string) => rows.find((r) => r.m === 1 && r.threads === threads && r.shape === shape)!;
  const layer = SHAPES.slice(0, 4).reduce((s, [shape]) => s + at(shape).ms, 0);
  const msPerToken = LAYERS * layer + at('lm_head').ms;
  const bytes = 4 * (LAYERS * SHAPES.slice(0, 4).reduce((s, [, n, k]) => s + n * k, 0) + 50280 * 768);
  decode[`threads=${threads}`] = {
    msPerToken,
    tokensPerS: 1000 / msPerToken,
    weightGBs: bytes / msPerToken / 1e6,
  };
  console.log(
    `Mamba-130m decode, linear layers only, threads=${threads}: ${msPerToken.toFixed(1)} ms/token = ` +
      `${(1000 / msPerToken).toFixed(2)} tokens/s (${(bytes / msPerToken / 1e6).toFixed(2)} GB/s of weights)`,
  );
}

const dir = new URL('./results/', import.meta.url);
mkdirSync(dir, { recursive: true });
const meta = { date: new Date().toISOString(), node: process.version, cpu: cpus()[0]?.model ?? '' };
const result = { ...meta, cores: availableParallelism(), rows, decode };
writeFileSync(new URL('matmul.json', dir), `${JSON.stringify(result, null, 2)}\n`);
