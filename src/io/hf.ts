// Loads a model folder in the Hugging Face layout (config.json + model.safetensors or a sharded
// index) or in the original mamba_ssm layout (same files, mamba_ssm config fields and key names).
// Every tensor is checked against the shape the config implies before any weight is read.

import { join } from 'node:path';
import type { Backend } from '../backends/backend.ts';
import { fail } from '../core/errors.ts';
import { sameShape, showShape } from '../core/tensor.ts';
import { CausalLM } from '../models/causalLM.ts';
import { type ModelConfig, parseConfig } from '../models/config.ts';
import { parameterShapes } from '../models/parameters.ts';
import { readJsonFile } from './json.ts';
import { Checkpoint } from './safetensors.ts';

/** mamba_ssm names the embedding table `backbone.embedding.weight`; transformers `embeddings`. */
const aliases: Record<string, string> = { 'backbone.embeddings.weight': 'backbone.embedding.weight' };

export function readConfig(dir: string): ModelConfig {
  const file = join(dir, 'config.json');
  return parseConfig(readJsonFile(file), file);
}

/** Maps every parameter of `config` to its key in the checkpoint, checking names and shapes. */
function matchKeys(config: ModelConfig, checkpoint: Checkpoint, dir: string): Map<string, string> {
  const keys = new Map<string, string>();
  for (const [name, shape] of parameterShapes(config)) {
    const key = checkpoint.has(name) ? name : aliases[name];
    if (key === undefined || !checkpoint.has(key)) fail(`${dir}: missing tensor "${name}"`);
    const info = checkpoint.info(key);
    if (!sameShape(info.shape, shape)) {
      fail(
        `${info.file}: tensor "${key}" has shape ${showShape(info.shape)} but config.json implies ${showShape(shape)}`,
      );
    }
    keys.set(name, key);
  }
  const used = new Set(keys.values());
  const ignored = config.tieWordEmbeddings ? 'lm_head.weight' : null; // a tied head saved anyway
  for (const key of checkpoint.names()) {
    if (!used.has(key) && key !== ignored) {
      fail(`${dir}: unexpected tensor "${key}" (not part of a ${config.family} model with this config.json)`);
    }
  }
  return keys;
}

/** Loads the model in `dir` onto `backend`. */
export function loadModel(dir: string, backend: Backend): CausalLM {
  const config = readConfig(dir);
  const checkpoint = Checkpoint.open(dir);
  try {
    const keys = matchKeys(config, checkpoint, dir);
    return new CausalLM(config, backend, (name) => {
      const key = keys.get(name);
      return key === undefined ? undefined : checkpoint.read(key);
    });
  } finally {
    checkpoint.close();
  }
}
