// `mamba-ts bench --train`: training throughput of randomly initialised models of a preset's
// shapes (130m by default) for both families, on the chosen backend: whole optimizer steps
// (zeroed gradients, forward, loss, backward, global-norm clip, AdamW, A refreshed, the loss read
// back) of --batch x --seq-len tokens, after one warm-up step. Reports tokens/s and peak memory
// (resident memory of the process on the CPU; on WebGPU the bytes of every buffer the backend made).
// Prints a table and writes JSON.

import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname } from 'node:path';
import type { Backend } from '../backends/backend.ts';
import { CausalLM } from '../models/causalLM.ts';
import { initParameters } from '../models/init.ts';
import { presetConfig } from '../models/presets.ts';
import { zeroGrads } from '../train/gradients.ts';
import { AdamW } from '../train/optimizer.ts';
import { intOption, makeBackend, type Values } from './args.ts';

interface TrainRow {
  family: string;
  preset: string;
  parameters: number;
  batch: number;
  seqLen: number;
  steps: number;
  secondsPerStep: number;
  tokensPerSecond: number;
  peakMemoryMiB: number;
  loss: number;
}

/** Peak memory in MiB: the backend's own count where it keeps one (GPU), else the process's. */
function peakMiB(backend: Backend): number {
  const gpu = (backend as { allocatedBytes?: () => number }).allocatedBytes?.();
  return gpu !== undefined ? gpu / 2 ** 20 : process.resourceUsage().maxRSS / 1024;
}

async function measure(
  backend: Backend,
  family: string,
  preset: string,
  batch: number,
  seqLen: number,
  steps: number,
): Promise<TrainRow> {
  const config = presetConfig(family, preset);
  let params: Map<string, Float32Array> | null = initParameters(config, 0);
  const parameters = [...params.values()].reduce((sum, p) => sum + p.length, 0);
  const model = new CausalLM(config, backend, (name) => params?.get(name));
  params = null;
  const grads = zeroGrads(model);
  const optimizer = new AdamW(backend, model.parameters(), {
    lr: 1e-3,
    minLr: 1e-4,
    warmup: 1,
    steps: steps + 1,
    beta1: 0.9,
    beta2: 0.95,
    eps: 1e-8,
    weightDecay: 0.1,
    clip: 1,
  });
  const ids = Int32Array.from({ length: batch * seqLen }, (_, i) => (i * 7919 + (i >> 9)) % config.vocabSize); // (b·l)
  const step = async () => {
    for (const g of grads.values()) backend.training.zero(g);
    const loss = backend.tidy(() => model.lossAndGrads(ids, batch, grads)); // (1)
    await optimizer.update(grads, 1);
    model.refreshDerived();
    return (await backend.read(loss))[0];
  };
  await step(); // warm-up: pipelines, pools
  const start = performance.now();
  let loss = 0;
  for (let i = 0; i < steps; i++) loss = await step();
  const secondsPerStep = (performance.now() - start) / 1000 / steps;
  return {
    family,
    preset,
    parameters,
    batch,
    seqLen,
    steps,
    secondsPerStep,
    tokensPerSecond: (batch * seqLen) / secondsPerStep,
    peakMemoryMiB: peakMiB(backend),
    loss,
  };
}

export async function benchTrain(values: Values): Promise<void> {
  const backendName = (values.backend as string | undefined) ?? 'cpu';
  const preset = (values.preset as string | undefined) ?? '130m';
  const families = values.family ? [values.family as string] : ['mamba', 'mamba2'];
  const batch = intOption('bench', values, 'batch', 8, 1);
  const seqLen = intOption('bench', values, 'seq-len', 2048, 2);
  const steps = intOption('bench', values, 'steps', 3, 1);
  const rows: TrainRow[] = [];
  for (const family of families) {
    // One backend per family, so that the peak memory is that family's alone.
    rows.push(await measure(await makeBackend('bench', backendName), family, preset, batch, seqLen, steps));
  }
  const head = ['family', 'preset', 'params', 'batch x len', 's/step', 'tokens/s', 'peak MiB'];
  const lines = rows.map((r) => [
    r.family,
    r.preset,
    `${(r.parameters / 1e6).toFixed(1)}M`,
    `${r.batch} x ${r.seqLen}`,
    r.secondsPerStep.toFixed(3),
    r.tokensPerSecond.toFixed(0),
    r.peakMemoryMiB.toFixed(0),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i])).join('  ');
  process.stdout.write(
    `training steps on ${backendName} (${cpus().length} CPUs here), ${steps} timed steps after one warm-up\n`,
  );
  process.stdout.write(`${[fmt(head), ...lines.map(fmt)].join('\n')}\n`);
  const json = (values.json as string | undefined) ?? `bench/results/train-${backendName}.json`;
  mkdirSync(dirname(json), { recursive: true });
  writeFileSync(
    json,
    `${JSON.stringify({ date: new Date().toISOString(), backend: backendName, rows }, null, 2)}\n`,
  );
  process.stdout.write(`wrote ${json}\n`);
}
