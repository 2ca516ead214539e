// Named model sizes: the shapes of the published checkpoints (state-spaces/mamba-*-hf and
// state-spaces/mamba2-*), plus "tiny" ones for tests and quick experiments and "small" (the built-in model's shape). Each preset is the
// config.json fields that differ from transformers' defaults.

import { fail } from '../core/errors.ts';
import { type ModelConfig, parseConfig } from './config.ts';

type Fields = Record<string, number | boolean | string>;

const mamba = (hidden: number, layers: number): Fields => ({
  hidden_size: hidden,
  num_hidden_layers: layers,
  vocab_size: 50280,
  initializer_range: 0.02,
});

const mamba2 = (hidden: number, layers: number): Fields => ({
  hidden_size: hidden,
  num_hidden_layers: layers,
  num_heads: (2 * hidden) / 64,
  head_dim: 64,
  n_groups: 1,
  state_size: 128,
  vocab_size: 50288,
  tie_word_embeddings: true,
  eos_token_id: 0,
  pad_token_id: 0,
  initializer_range: 0.02,
});

const tiny: Fields = {
  hidden_size: 64,
  num_hidden_layers: 2,
  vocab_size: 512,
  state_size: 16,
  initializer_range: 0.02,
};

/** The built-in model's size (MODEL_CARD.md): ~3.6 M parameters with a byte vocabulary. */
const small: Fields = {
  hidden_size: 256,
  num_hidden_layers: 8,
  vocab_size: 256,
  state_size: 16,
  initializer_range: 0.02,
};

const presets: Record<'mamba' | 'mamba2', Record<string, Fields>> = {
  mamba: {
    tiny,
    small,
    '130m': mamba(768, 24),
    '370m': mamba(1024, 48),
    '790m': mamba(1536, 48),
    '1.4b': mamba(2048, 48),
    '2.8b': mamba(2560, 64),
  },
  mamba2: {
    tiny: { ...tiny, num_heads: 8, head_dim: 16, n_groups: 1, chunk_size: 16, tie_word_embeddings: true },
    small: { ...small, num_heads: 8, head_dim: 64, n_groups: 1, state_size: 64, tie_word_embeddings: true },
    '130m': mamba2(768, 24),
    '370m': mamba2(1024, 48),
    '780m': mamba2(1536, 48),
    '1.3b': mamba2(2048, 48),
    '2.7b': mamba2(2560, 64),
  },
};

export function presetConfig(family: string, preset: string): ModelConfig {
  if (family !== 'mamba' && family !== 'mamba2')
    fail(`unknown family "${family}" (expected mamba or mamba2)`);
  const fields = presets[family][preset];
  if (fields === undefined) {
    fail(`unknown ${family} preset "${preset}" (available: ${Object.keys(presets[family]).join(', ')})`);
  }
  return parseConfig({ model_type: family, ...fields }, `preset ${family}/${preset}`);
}
