// Training data: a text file or a folder of them (recursive, in sorted path order, UTF-8, names
// starting with a dot skipped) turned into one token stream — with a tokenizer.json
// (src/io/tokenizer.ts) or the byte-level scheme of byteTokenizer.ts — each file followed by the
// tokenizer's EOS token when it has one. The stream is cut into fixed-length sequences of l
// tokens (the tail that does not fill one is dropped); the last `valFraction` of them (at least
// one) are the held-out split. Training batches are drawn by a seeded Random: each epoch is a
// fresh shuffle of the training sequences, and the position (epoch, cursor, generator state at
// the epoch's start) is saved with checkpoints so that a resumed run draws the same batches.
// Leaves out: streaming corpora larger than memory.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { fail } from '../core/errors.ts';
import { Fnv64 } from '../core/hash.ts';
import { Random } from '../core/random.ts';
import { Tokenizer } from '../io/tokenizer.ts';
import { BYTE_VOCAB_SIZE, byteTokenizerFiles, encodeBytes } from './byteTokenizer.ts';

/** What training needs of a tokenizer: its size, EOS, text → ids, and the files a checkpoint ships. */
export interface TextTokenizer {
  readonly vocabSize: number;
  readonly eosTokenId: number | null;
  encode(text: string): ArrayLike<number>;
  /** File name → contents (tokenizer.json and its companions), copied into every checkpoint. */
  readonly files: ReadonlyMap<string, string>;
}

export function byteTokenizer(): TextTokenizer {
  return { vocabSize: BYTE_VOCAB_SIZE, eosTokenId: null, encode: encodeBytes, files: byteTokenizerFiles() };
}

const companions = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'];

/** The tokenizer of `path`: a tokenizer.json file or a folder holding one (with its companions). */
export function loadTokenizer(path: string): TextTokenizer {
  let dir = path;
  try {
    if (!statSync(path).isDirectory()) {
      if (basename(path) !== 'tokenizer.json')
        fail(`${path}: a tokenizer must be a file named tokenizer.json or a folder holding one`);
      dir = dirname(path);
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') fail(`${path}: tokenizer not found`);
    throw error;
  }
  const tokenizer = Tokenizer.fromDir(dir);
  const files = new Map<string, string>();
  for (const name of companions) {
    try {
      files.set(name, readFileSync(join(dir, name), 'utf8'));
    } catch {}
  }
  return {
    vocabSize: tokenizer.vocabSize,
    eosTokenId: tokenizer.eosTokenId,
    encode: (text) => tokenizer.encode(text),
    files,
  };
}

/** The files of `path` (itself when a file), recursively, hidden ones (.name) left out, sorted by path (code units). */
export function corpusFiles(path: string): string[] {
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(path);
  } catch {
    return fail(`${path}: training data not found`);
  }
  if (!stat.isDirectory()) return [path];
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name.startsWith('.')) continue; // .git, .DS_Store and the like
      const full = join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (statSync(full).isFile()) files.push(full);
    }
  };
  walk(path);
  files.sort((a, b) => {
    const [x, y] = [relative(path, a), relative(path, b)];
    return x < y ? -1 : x > y ? 1 : 0;
  });
  if (files.length === 0) fail(`${path}: no files to train on`);
  return files;
}

export interface Corpus {
  tokens: Int32Array; // (number of tokens)
  files: number;
  /** FNV-1a of the token stream: a resumed run checks that its data did not change. */
  digest: string;
}

/** Reads and tokenizes every file of `path` into one stream. */
export function readCorpus(path: string, tokenizer: TextTokenizer): Corpus {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const parts: ArrayLike<number>[] = [];
  const files = corpusFiles(path);
  for (const file of files) {
    let text: string;
    try {
      text = decoder.decode(readFileSync(file));
    } catch (error) {
      return fail(`${file}: cannot read it as UTF-8 text (${(error as Error).message})`);
    }
    parts.push(tokenizer.encode(text));
    if (tokenizer.eosTokenId !== null) parts.push([tokenizer.eosTokenId]);
  }
  const tokens = new Int32Array(parts.reduce((sum, p) => sum + p.length, 0));
  let at = 0;
  for (const part of parts) {
    tokens.set(part, at);
    at += part.length;
  }
  const digest = new Fnv64().update(new Uint8Array(tokens.buffer)).hex();
  return { tokens, files: files.length, digest };
}

/** Fixed-length sequences of a token stream and their split into training and held-out parts. */
export class Dataset {
  readonly trainCount: number;
  readonly valCount: number;

  constructor(
    private readonly tokens: Int32Array,
    readonly seqLen: number, // l
    valFraction: number,
  ) {
    const count = Math.floor(tokens.length / seqLen);
    if (count < 2) {
      fail(
        `training data: ${tokens.length} tokens make ${count} sequences of ${seqLen}; at least 2 are needed (one held out)`,
      );
    }
    this.valCount = Math.min(count - 1, Math.max(1, Math.round(count * valFraction)));
    this.trainCount = count - this.valCount;
  }

  /** Training sequences `indices` as one batch (b, l), row-major. */
  trainBatch(indices: readonly number[]): Int32Array {
    return this.rows(indices);
  }

  /** Held-out sequences [start, start + b) as one batch (b, l). */
  valBatch(start: number, b: number): Int32Array {
    const count = Math.min(b, this.valCount - start);
    return this.rows(Array.from({ length: count }, (_, i) => this.trainCount + start + i));
  }

  private rows(sequences: readonly number[]): Int32Array {
    const l = this.seqLen;
    const out = new Int32Array(sequences.length * l); // (b, l)
    for (const [i, s] of sequences.entries()) out.set(this.tokens.subarray(s * l, (s + 1) * l), i * l);
    return out;
  }
}

/** Where batch drawing stands: enough to draw the same batches again. */
export interface DataPosition {
  epoch: number;
  cursor: number;
  /** The generator's state at the start of the epoch (its shuffle is redone from it). */
  rng: number[];
}

/** Draws training sequence indices: a seeded shuffle per epoch, taken in order. */
export class Batcher {
  private readonly rng: Random;
  private readonly order: Uint32Array;
  private epochStart: number[] = [];
  private epoch = 0;
  private cursor = 0;

  constructor(
    private readonly count: number,
    seed: number,
  ) {
    this.rng = new Random(seed);
    this.order = new Uint32Array(count);
    this.shuffle();
  }

  private shuffle(): void {
    this.epochStart = this.rng.state;
    for (let i = 0; i < this.count; i++) this.order[i] = i;
    for (let i = this.count - 1; i > 0; i--) {
      const j = Math.floor(this.rng.uniform() * (i + 1));
      [this.order[i], this.order[j]] = [this.order[j], this.order[i]];
    }
  }

  /** The next `b` sequence indices, crossing into a new epoch (a new shuffle) when needed. */
  next(b: number): number[] {
    const out: number[] = [];
    for (let i = 0; i < b; i++) {
      if (this.cursor === this.count) {
        this.epoch++;
        this.cursor = 0;
        this.shuffle();
      }
      out.push(this.order[this.cursor++]);
    }
    return out;
  }

  get position(): DataPosition {
    return { epoch: this.epoch, cursor: this.cursor, rng: [...this.epochStart] };
  }

  set position(p: DataPosition) {
    this.rng.state = p.rng;
    this.shuffle();
    this.epoch = p.epoch;
    this.cursor = p.cursor;
  }
}
