// `mamba-ts init --family mamba|mamba2 --preset NAME --out DIR [--seed N]`: writes a randomly
// initialised model (config.json + model.safetensors, Hugging Face layout) that transformers,
// mamba_ssm and mamba-ts load.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../core/errors.ts';
import { writeSafetensors } from '../io/safetensors.ts';
import { toHfConfigJson } from '../models/config.ts';
import { initParameters } from '../models/init.ts';
import { parameterShapes } from '../models/parameters.ts';
import { presetConfig } from '../models/presets.ts';
import { intOption, parse, requireString } from './args.ts';

export async function initCommand(argv: string[]): Promise<void> {
  const values = parse('init', argv, {
    family: { type: 'string' },
    preset: { type: 'string' },
    out: { type: 'string' },
    seed: { type: 'string' },
  });
  const config = presetConfig(
    requireString('init', values, 'family'),
    requireString('init', values, 'preset'),
  );
  const out = requireString('init', values, 'out');
  const params = initParameters(config, intOption('init', values, 'seed', 0));
  try {
    mkdirSync(out, { recursive: true });
  } catch (error) {
    fail(`${out}: cannot create the output folder (${(error as Error).message})`);
  }
  const shapes = parameterShapes(config);
  const tensors = [...params].map(([name, data]) => ({ name, shape: [...shapes.get(name)!], data }));
  writeSafetensors(join(out, 'model.safetensors'), tensors, { format: 'pt' });
  writeFileSync(join(out, 'config.json'), `${JSON.stringify(toHfConfigJson(config), null, 2)}\n`);
  process.stdout.write(`wrote ${config.family} model (${tensors.length} tensors) to ${out}\n`);
}
