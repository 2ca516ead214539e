// `mamba-ts bench`: CPU throughput of randomly initialised models of a preset's shapes (130m by
// default) for both families: prefill tokens/s (batch 1, --prefill tokens, LM head on the last
// position as generation does), decode tokens/s (batch 1, --decode steps) and the peak resident
// memory. Each family runs in its own child process so that peak memory is its own. Prints a
// table and writes JSON. With --backend webgpu, the GPU table of benchWebgpu.ts instead; with
// --train, training steps (benchTrain.ts) on either backend.

import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname } from 'node:path';
import { fail } from '../core/errors.ts';
import { CausalLM } from '../models/causalLM.ts';
import { initParameters } from '../models/init.ts';
import { presetConfig } from '../models/presets.ts';
import { intOption, makeBackend, parse } from './args.ts';
import { benchTrain } from './benchTrain.ts';
import { benchWebgpu } from './benchWebgpu.ts';

interface Row {
  family: string;
  preset: string;
  parameters: number;
  prefillTokens: number;
  prefillSeconds: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  peakRssMiB: number;
}

async function measure(
  family: string,
  preset: string,
  prefill: number,
  decode: number,
  backend: string,
): Promise<Row> {
  const config = presetConfig(family, preset);
  let params: Map<string, Float32Array> | null = initParameters(config, 0);
  const parameters = [...params.values()].reduce((sum, p) => sum + p.length, 0);
  const model = new CausalLM(config, await makeBackend('bench', backend), (name) => params?.get(name));
  params = null; // the backend holds its own copy
  const prompt = Int32Array.from({ length: prefill }, (_, i) => (i * 7919) % config.vocabSize);
  const state = model.newState(1);
  let start = performance.now();
  let logits = model.forward(prompt, 1, { state, lastOnly: true }).logits;
  await model.backend.read(logits);
  const prefillSeconds = (performance.now() - start) / 1000;
  start = performance.now();
  for (let i = 0; i < decode; i++) {
    logits = model.step(Int32Array.of(i % config.vocabSize), state);
    await model.backend.read(logits);
  }
  const decodeSeconds = (performance.now() - start) / 1000;
  return {
    family,
    preset,
    parameters,
    prefillTokens: prefill,
    prefillSeconds,
    prefillTokensPerSecond: prefill / prefillSeconds,
    decodeTokensPerSecond: decode / decodeSeconds,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
  };
}

function table(rows: Row[]): string {
  const head = [
    'family',
    'preset',
    'params (M)',
    'prefill tok',
    'prefill s',
    'prefill tok/s',
    'decode tok/s',
    'peak RSS MiB',
  ];
  const body = rows.map((r) => [
    r.family,
    r.preset,
    (r.parameters / 1e6).toFixed(1),
    String(r.prefillTokens),
    r.prefillSeconds.toFixed(2),
    r.prefillTokensPerSecond.toFixed(1),
    r.decodeTokensPerSecond.toFixed(2),
    r.peakRssMiB.toFixed(0),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  return [head, ...body].map((row) => row.map((cell, i) => cell.padStart(widths[i])).join('  ')).join('\n');
}

export async function benchCommand(argv: string[]): Promise<void> {
  const values = parse('bench', argv, {
    family: { type: 'string' },
    preset: { type: 'string' },
    prefill: { type: 'string' },
    decode: { type: 'string' },
    backend: { type: 'string' },
    json: { type: 'string' },
    child: { type: 'boolean' },
    quick: { type: 'boolean' },
    'peak-gbps': { type: 'string' },
    profile: { type: 'boolean' },
    train: { type: 'boolean' },
    batch: { type: 'string' },
    'seq-len': { type: 'string' },
    steps: { type: 'string' },
  });
  if (values.train) return benchTrain(values);
  for (const name of ['batch', 'seq-len', 'steps']) {
    if (values[name] !== undefined) fail(`bench: --${name} needs --train`);
  }
  if (values.backend === 'webgpu') return benchWebgpu(values);
  for (const name of ['quick', 'peak-gbps', 'profile']) {
    if (values[name] !== undefined) fail(`bench: --${name} needs --backend webgpu`);
  }
  const preset = (values.preset as string | undefined) ?? '130m';
  const prefill = intOption('bench', values, 'prefill', 512, 1);
  const decode = intOption('bench', values, 'decode', 16, 1);
  const backend = (values.backend as string | undefined) ?? 'cpu';
  const families = values.family === undefined ? ['mamba', 'mamba2'] : [values.family as string];
  // Refuse a bad family, preset or backend here, in one line, rather than from inside a child.
  for (const family of families) presetConfig(family, preset);
  if (backend !== 'cpu' && backend !== 'webgpu')
    fail(`bench: unknown backend "${backend}" (available: cpu, webgpu)`);
  if (values.child) {
    const row = await measure(families[0], preset, prefill, decode, backend);
    process.stdout.write(JSON.stringify(row));
    return;
  }
  const rows = families.map((family) => {
    const args = ['bench', '--child', '--family', family, '--preset', preset];
    args.push('--prefill', String(prefill), '--decode', String(decode), '--backend', backend);
    const out = execFileSync(process.execPath, [...process.execArgv, process.argv[1], ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    return JSON.parse(out) as Row;
  });
  process.stdout.write(`${table(rows)}\n`);
  const json = (values.json as string | undefined) ?? 'bench/results/cpu.json';
  mkdirSync(dirname(json), { recursive: true });
  const machine = { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version };
  writeFileSync(
    json,
    `${JSON.stringify({ date: new Date().toISOString(), machine, backend, rows }, null, 2)}\n`,
  );
  process.stdout.write(`wrote ${json}\n`);
}
