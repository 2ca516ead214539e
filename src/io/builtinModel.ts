// The built-in model that ships inside the package (models/default: config.json, f16
// model.safetensors, tokenizer.json): what `generate` and `chat` use when no --model is given.
// MODEL_CARD.md says how it was trained and on what.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The package root: the nearest folder above this file whose package.json names mamba-ts. */
function packageRoot(): string | null {
  for (let dir = import.meta.dirname; ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && JSON.parse(readFileSync(manifest, 'utf8')).name === 'mamba-ts') return dir;
    if (dirname(dir) === dir) return null;
  }
}

/** The built-in model's folder, or null when this installation lacks it. */
export function builtinModelDir(): string | null {
  const root = packageRoot();
  const dir = root && join(root, 'models', 'default');
  return dir && existsSync(join(dir, 'config.json')) ? dir : null;
}
