// Text <-> token ids for a model folder, through @huggingface/tokenizers (tokenizers.js) reading the
// folder's tokenizer.json, with tokenizer_config.json (or a legacy special_tokens_map.json) naming
// the special tokens. Behaves as transformers 5 does with a tokenizer.json: encode() adds the special
// tokens its post-processor adds (add_bos_token / add_eos_token in the config are ignored then);
// decode() skips ids the vocabulary lacks and never cleans up spaces for BPE. Leaves out:
// SentencePiece .model or vocab.json-only folders, WordLevel models, the pipelines transformers
// rebuilds for model-specific tokenizer classes, chat templates, pairs, padding and truncation.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as TokenizersJs } from '@huggingface/tokenizers';
import { fail } from '../core/errors.ts';
import { readJsonFile } from './json.ts';

/** tokenizer.json model kinds tokenizers.js implements (Rust also has WordLevel). */
const supportedModels = ['BPE', 'WordPiece', 'Unigram'];

/** The special-token names transformers reads from tokenizer_config.json. */
const namedTokens = [
  'bos_token',
  'eos_token',
  'unk_token',
  'sep_token',
  'pad_token',
  'cls_token',
  'mask_token',
];

type Json = Record<string, unknown>;

/** The part of tokenizers.js used here (its bundled types do not resolve under NodeNext: any). */
interface HfTokenizer {
  model: { vocab: string[] };
  encode(text: string): { ids: Array<number | undefined> };
  decode(
    ids: number[],
    options: { skip_special_tokens: boolean; clean_up_tokenization_spaces: boolean },
  ): string;
  token_to_id(token: string): number | undefined;
  id_to_token(id: number): string | undefined;
}
const HfTokenizer: new (json: Json, config: Json) => HfTokenizer = TokenizersJs;

function readObject(file: string): Json {
  const value = readJsonFile(file);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(`${file}: not a JSON object`);
  return value as Json;
}

/** A token field: "<s>", {"content": "<s>", ...} or null. */
function tokenString(value: unknown, field: string, file: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return value;
  const content = (value as Json).content;
  if (typeof value === 'object' && typeof content === 'string') return content;
  return fail(`${file}: "${field}" must be a token string or {"content": ...}, got ${JSON.stringify(value)}`);
}

/** The named special tokens of a tokenizer_config.json or special_tokens_map.json, and the extra ones. */
function specialTokens(
  config: Json,
  file: string,
): { names: Record<string, string | null>; extra: string[] } {
  const names: Record<string, string | null> = {};
  for (const field of namedTokens) names[field] = tokenString(config[field], field, file);
  const listed = config.extra_special_tokens ?? config.additional_special_tokens;
  const list = listed !== null && typeof listed === 'object' ? Object.values(listed) : []; // list or {name: token}
  const extra = list.map((token, i) => tokenString(token, `extra_special_tokens[${i}]`, file));
  return { names, extra: extra.filter((token): token is string => token !== null) };
}

function checkSupported(json: Json, file: string): void {
  const model = json.model as Json | undefined;
  if (model === null || typeof model !== 'object') fail(`${file}: not a tokenizer.json (no "model" object)`);
  const kind = model.type;
  if (typeof kind !== 'string' || !supportedModels.includes(kind)) {
    fail(
      `${file}: unsupported tokenizer model type ${JSON.stringify(kind ?? null)} (supported: ${supportedModels.join(', ')})`,
    );
  }
  if (kind === 'BPE' && model.continuing_subword_prefix)
    fail(`${file}: unsupported BPE with continuing_subword_prefix`);
  if (kind === 'Unigram' && model.byte_fallback) fail(`${file}: unsupported Unigram with byte_fallback`);
}

export class Tokenizer {
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly padToken: string | null;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  private readonly hf: HfTokenizer;
  private readonly cleanUpSpaces: boolean;

  private constructor(json: Json, config: Json, tokens: ReturnType<typeof specialTokens>, file: string) {
    const { names, extra } = tokens;
    const special = [...Object.values(names), ...extra].filter((token): token is string => token !== null);
    // transformers 5 ignores clean_up_tokenization_spaces for BPE (it would corrupt the text).
    this.cleanUpSpaces = config.clean_up_tokenization_spaces === true && (json.model as Json).type !== 'BPE';
    try {
      this.hf = new HfTokenizer(json, { eos_token: names.eos_token, additional_special_tokens: special });
    } catch (error) {
      fail(`${file}: unsupported or invalid tokenizer (${(error as Error).message})`);
    }
    this.bosToken = names.bos_token;
    this.eosToken = names.eos_token;
    this.padToken = names.pad_token;
    this.bosTokenId = this.bosToken === null ? null : this.tokenToId(this.bosToken);
    this.eosTokenId = this.eosToken === null ? null : this.tokenToId(this.eosToken);
    this.padTokenId = this.padToken === null ? null : this.tokenToId(this.padToken);
  }

  /** Loads `dir`/tokenizer.json with its tokenizer_config.json and special_tokens_map.json, if any. */
  static fromDir(dir: string): Tokenizer {
    const file = join(dir, 'tokenizer.json');
    if (!existsSync(file)) {
      if (existsSync(join(dir, 'tokenizer.model'))) {
        fail(
          `${dir}: unsupported tokenizer: only a SentencePiece tokenizer.model, no tokenizer.json (pass token ids instead)`,
        );
      }
      fail(`${dir}: no tokenizer.json (text needs a tokenizer; pass token ids instead)`);
    }
    const json = readObject(file);
    checkSupported(json, file);
    const configFile = join(dir, 'tokenizer_config.json');
    const config = existsSync(configFile) ? readObject(configFile) : {};
    const tokens = specialTokens(config, configFile);
    // As transformers 5: special_tokens_map.json counts only for configs without added_tokens_decoder.
    const mapFile = join(dir, 'special_tokens_map.json');
    if (config.added_tokens_decoder === undefined && existsSync(mapFile)) {
      const mapped = specialTokens(readObject(mapFile), mapFile);
      for (const field of namedTokens) tokens.names[field] = mapped.names[field] ?? tokens.names[field];
      tokens.extra.push(...mapped.extra);
    }
    return new Tokenizer(json, config, tokens, file);
  }

  /** Number of token ids, added tokens included (ids run from 0 to vocabSize - 1). */
  get vocabSize(): number {
    return this.hf.model.vocab.length;
  }

  /** Ids of `text`, with the special tokens the tokenizer.json post-processor adds. */
  encode(text: string): number[] {
    // A BPE model without unk_token drops characters it cannot encode, as Rust's does.
    return this.hf.encode(text).ids.filter((id) => id !== undefined);
  }

  /** Text of `ids`; ids outside the vocabulary are skipped, as the Rust library does. */
  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    const known = ids.filter((id) => this.idToToken(id) !== null);
    if (known.length === 0) return ''; // tokenizers.js refuses an empty list
    return this.hf.decode(known, {
      skip_special_tokens: options.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: this.cleanUpSpaces,
    });
  }

  tokenToId(token: string): number | null {
    return this.hf.token_to_id(token) ?? null;
  }

  idToToken(id: number): string | null {
    return Number.isInteger(id) && id >= 0 ? (this.hf.id_to_token(id) ?? null) : null;
  }
}
