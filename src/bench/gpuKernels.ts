// GPU benchmark of the WebGPU backend on the 130m shapes: the kernels alone (matvec/matmul,
// selective scan, SSD) and whole models (prefill at batch 1, decode at batch 1 and 64) for both
// families, in one process. Every timing runs after a warm-up (pipelines compiled, pool filled)
// and is the median of several repetitions; GPU work is waited for with onSubmittedWorkDone.
// Inputs are random (never zeros). The timing and inputs are gpuTiming.ts's, shared with
// `mamba-ts bench --backend webgpu` (the table of record); this script adds the matmul kernels,
// --only=/--skip= filters, split-k and tile variants of the linear layers at m = 64, and greedy
// decoding at several flushEvery values. Prints a
// table and writes JSON.
// Run (after npm run build): node dist/src/bench/gpuKernels.js [--quick] [--json out.json]
//   --quick uses tiny shapes (for a smoke test on lavapipe).

import { writeFileSync } from 'node:fs';
import { linearTuning } from '../backends/webgpu/kernels/linear.ts';
import { blockStepTuning } from '../backends/webgpu/kernels/mambaBlockStep.ts';
import { mambaStepTuning } from '../backends/webgpu/kernels/mambaStep.ts';
import { matvecTuning } from '../backends/webgpu/kernels/matvec.ts';
import { skinnyTuning } from '../backends/webgpu/kernels/skinnyLinear.ts';
import { ssdTuning } from '../backends/webgpu/kernels/ssd.ts';
import { backendTuning, WebGpuBackend } from '../backends/webgpu/webgpuBackend.ts';
import { CausalLM } from '../models/causalLM.ts';
import { initParameters } from '../models/init.ts';
import { presetConfig } from '../models/presets.ts';
import { GpuTimer, median, passNote, selectiveScanBytes, ssdBytes } from './gpuTiming.ts';

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
const timer = new GpuTimer(be, quick ? 0 : 500);
const random = timer.random.bind(timer);
const time = timer.time.bind(timer);

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
        ['matmul out_proj m64 n768 k1536', 64, 768, 1536],
        ['matmul lm_head m64 n50280 k768', 64, 50280, 768],
        ['matmul in_proj m2048 n3072 k768', 2048, 3072, 768],
        ['matmul out_proj m2048 n768 k1536', 2048, 768, 1536],
        ['matmul x_proj m2048 n80 k1536', 2048, 80, 1536],
      ];
  // At m = 64 (batched decoding) also other split-k targets (1: no split) and 64-tiles only.
  const defaults = { ...linearTuning };
  for (const [name, m, n, k] of lin) {
    const sweep = m === 64 && !quick ? [1, 64, 128, 512, 1024] : [];
    for (const [splitKTarget, minTiles128] of [
      [defaults.splitKTarget, defaults.minTiles128],
      ...sweep.map((target) => [target, defaults.minTiles128]),
      ...(m === 64 ? [[defaults.splitKTarget, 1e9]] : []),
    ]) {
      const label = `${name}${splitKTarget === defaults.splitKTarget ? '' : ` splitK${splitKTarget}`}${minTiles128 === defaults.minTiles128 ? '' : ' tile64'}`;
      if (!want(label)) continue;
      Object.assign(linearTuning, { splitKTarget, minTiles128 });
      const x = random([m, k]);
      const w = random([n, k]);
      const ms = await time(() => be.linear(x, w, null), 5, quick ? 2 : 20);
      const gflops = (2 * m * n * k) / ms / 1e6;
      const gbps = ((m * k + n * k + m * n) * 4) / ms / 1e6;
      rows.push({ name: label, ms, gflops, gbps });
      Object.assign(linearTuning, defaults);
    }
  }
  // Selective scan alone: one layer of Mamba 130m, batch 8 x 2048.
  {
    const [b, l, d, n] = quick ? [2, 40, 70, 16] : [8, 2048, 1536, 16];
    const name = `selectiveScan b${b} l${l} d${d} n${n}`;
    if (want(name)) {
      const args = timer.selectiveScanArgs(b, l, d, n);
      const ms = await time(() => be.selectiveScan(args), 5, quick ? 1 : 3);
      const bytes = selectiveScanBytes(b, l, d, n);
      rows.push({ name, ms, tokensPerSecond: (b * l) / (ms / 1000), gbps: bytes / ms / 1e6 });
    }
    const ll = quick ? 300 : 2048;
    const name1 = `selectiveScan b1 l${ll} d1536 n16`;
    if (want(name1)) {
      const args = timer.selectiveScanArgs(1, ll, 1536, 16);
      const ms = await time(() => be.selectiveScan(args), 5, quick ? 1 : 5);
      rows.push({ name: name1, ms, tokensPerSecond: ll / (ms / 1000) });
    }
  }
  // SSD alone: one layer of Mamba-2 130m, batch 4 x 16384 (and batch 1 x 2048), the model's chunk
  // of 256 run as the backend's default (ssdTuning.maxChunk, 128) and, at 4 x 16384, as 256 and
  // 64 (ssdTuning.chunk: shorter chunks, fewer causal FLOPs, more chunk states to carry) and with
  // 64 x 64 tiles in every pass (ssdTuning.tiles: finer causal tiles, 4 x 4 per thread); the note
  // gives each pass's GPU time.
  type Variant = { chunk: number; tiles: readonly [number, number] | null };
  const auto: Variant = { chunk: 0, tiles: null };
  const variants: Variant[] = quick
    ? [auto, { chunk: 8, tiles: null }, { chunk: 0, tiles: [1, 1] }]
    : [auto, { chunk: 256, tiles: null }, { chunk: 64, tiles: null }, { chunk: 0, tiles: [1, 1] }];
  const ssdShapes: [number, number, Variant[]][] = quick
    ? [[1, 40, variants]]
    : [
        [4, 16384, variants],
        [1, 2048, [auto]],
      ];
  for (const [b, l, list] of ssdShapes) {
    const [h, p, n, q] = quick ? [4, 16, 32, 16] : [24, 64, 128, 256];
    const nameOf = ({ chunk, tiles }: Variant) =>
      `ssd b${b} l${l} h${h} p${p} n${n} q${q}${chunk ? ` run as ${chunk}` : ''}${tiles ? ` tiles ${tiles}` : ''}`;
    if (!list.some((v) => want(nameOf(v)))) continue;
    const args = timer.ssdArgs(b, l, h, p, n, q);
    for (const variant of list) {
      const name = nameOf(variant);
      if (!want(name)) continue;
      Object.assign(ssdTuning, variant);
      const { ms, passes } = await timer.ssd(args, 5, quick ? 1 : 3);
      Object.assign(ssdTuning, auto);
      const bytes = ssdBytes(b, l, h, p, n);
      const note = passNote(passes);
      rows.push({ name, ms, tokensPerSecond: (b * l) / (ms / 1000), gbps: bytes / ms / 1e6, note });
    }
  }
}

async function models(): Promise<void> {
  for (const family of ['mamba', 'mamba2']) {
    const preset = quick ? 'tiny' : '130m';
    const config = presetConfig(family, preset);
    const params = initParameters(config, 0);
    const model = new CausalLM(config, be, (name) => params.get(name));
    for (const len of quick ? [20] : [512, 2048]) {
      const name = `${family} prefill b1 l${len}`;
      if (!want(name)) continue;
      const ms = await timer.prefill(model, 1, len);
      rows.push({ name, ms, tokensPerSecond: len / (ms / 1000) });
    }
    // Greedy decoding (ids back), with the first submit of a step after flushFirst dispatches,
    // then every flushEvery (1e9: once per step).
    const flushDefault = { ...backendTuning };
    for (const batch of [1, quick ? 3 : 64]) {
      for (const [flushFirst, flushEvery] of [
        [flushDefault.flushFirst, flushDefault.flushEvery],
        [16, 1e9],
        [24, 1e9],
        [32, 1e9],
        [16, 48],
        [32, 96],
        [1e9, 1e9],
      ]) {
        const name = `${family} decode b${batch} flush${flushFirst},${flushEvery}`;
        if (!want(name)) continue;
        Object.assign(backendTuning, { flushFirst, flushEvery });
        const steps = quick ? 4 : batch === 1 ? 64 : 32;
        const { ms, recordMs, dispatches: perStep } = await timer.decode(model, batch, steps, true);
        rows.push({
          name,
          ms,
          tokensPerSecond: batch / (ms / 1000),
          note: `record ${recordMs.toFixed(2)} ms/step, ${perStep} dispatches`,
        });
      }
      Object.assign(backendTuning, flushDefault);
    }
  }
}

/**
 * The decode tunables, each moved alone from its default (rows `tune b<batch> <table>.<key>=<value>`):
 * Mamba 130m greedy decoding at batch 1 and 64, every variant timed in each of 3 rounds (whole
 * steps vary by tens of % between runs a minute apart; the median of interleaved rounds compares).
 * Only with --only=tune (it is long).
 */
async function tunables(): Promise<void> {
  if (quick || only !== 'tune') return;
  const tables: Record<string, Record<string, number>> = {
    backend: backendTuning,
    block: blockStepTuning,
    mambaStep: mambaStepTuning,
    matvec: matvecTuning,
    linear: linearTuning,
    skinny: skinnyTuning,
  };
  // [changes "table.key=value,…", the batches it can affect]
  const sweep: Array<[string, number[]]> = [
    ['', [1, 64]],
    ...[16, 32, 96].map((v): [string, number[]] => [`backend.flushFirst=${v}`, [1, 64]]),
    ...[24, 96].map((v): [string, number[]] => [`backend.flushEvery=${v}`, [1, 64]]),
    ...['maxBatch=0', 'inChannels=16', 'inChannels=64', 'maxLoads=12'].map((c): [string, number[]] => [
      `block.${c}`,
      [1],
    ]),
    ...['teams=2', 'teams=8', 'lanes=16', 'lanes=64', 'maxLoads=8', 'maxLoads=32'].map(
      (c): [string, number[]] => [`matvec.${c}`, [1]],
    ),
    ...['convChannels=32', 'convChannels=128', 'convThreads=128', 'scanChannels=64', 'scanChannels=256'].map(
      (c): [string, number[]] => [`mambaStep.${c}`, [1, 64]],
    ),
    ...['convSeqs=1', 'convSeqs=2', 'convSeqs=8', 'scanSeqs=1', 'scanSeqs=4', 'scanSeqs=8'].map(
      (c): [string, number[]] => [`mambaStep.${c}`, [64]],
    ),
    ...[48, 96, 128, 192].map((v): [string, number[]] => [`linear.skinnyGroups=${v}`, [64]]),
    ...[
      'threads=512',
      'threads=1024',
      'rowBlock=8',
      'colBlock=8',
      'rowBlock=8,skinny.colBlock=8',
      'memory=32768',
      'maxKt=4',
      'maxKt=8',
    ].map((c): [string, number[]] => [`skinny.${c}`, [64]]),
  ];
  const variants = sweep.map(([text, batches]) => {
    const changes = text
      .split(',')
      .filter(Boolean)
      .map((c) => {
        const [path, value] = c.split('=');
        const [table, key] = path.split('.');
        if (!(key in tables[table])) throw new Error(`tune: no ${path}`);
        return { tuning: tables[table], key, value: Number(value) };
      });
    const saved = changes.map(({ tuning, key }) => tuning[key]);
    return {
      label: text || 'defaults',
      batches,
      set: () => {
        for (const { tuning, key, value } of changes) tuning[key] = value;
      },
      unset: () => {
        changes.forEach(({ tuning, key }, i) => {
          tuning[key] = saved[i];
        });
      },
    };
  });
  const config = presetConfig('mamba', '130m');
  const params = initParameters(config, 0);
  const model = new CausalLM(config, be, (name) => params.get(name));
  const times = new Map<string, { ms: number[]; record: number[] }>();
  for (let round = 0; round < 3; round++)
    for (const { label, batches, set, unset } of variants)
      for (const batch of batches) {
        set();
        const { ms, recordMs } = await timer.decode(model, batch, batch === 1 ? 128 : 48, true);
        unset();
        const key = `tune b${batch} ${label}`;
        const entry = times.get(key) ?? { ms: [], record: [] };
        entry.ms.push(ms);
        entry.record.push(recordMs);
        times.set(key, entry);
      }
  for (const [name, { ms, record }] of times) {
    const m = median(ms);
    const batch = Number(name.split(' ')[1].slice(1));
    const note = `record ${median(record).toFixed(2)} ms/step; rounds ${ms.map((x) => x.toFixed(2)).join(' ')}`;
    rows.push({ name, ms: m, tokensPerSecond: batch / (m / 1000), note });
  }
}

if (only !== 'tune') {
  await kernels();
  await models();
}
await tunables();

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
