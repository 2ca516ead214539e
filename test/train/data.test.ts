// Tests for src/train/data.ts and byteTokenizer.ts: the corpus order of a folder, the byte-level
// tokenizer.json against tokenizers.js (random text with multi-byte characters), a tokenizer.json
// corpus, packing into sequences and the held-out split, the seeded batch order and its saved
// position, and the one-line errors for bad data.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { MambaError } from '../../src/core/errors.ts';
import { Tokenizer } from '../../src/io/tokenizer.ts';
import {
  Batcher,
  byteTokenizer,
  corpusFiles,
  Dataset,
  loadTokenizer,
  readCorpus,
} from '../../src/train/data.ts';
import { tmpRoot } from '../helpers/cli.ts';
import { fixture } from '../helpers/fixtures.ts';
import { type Rand, rngFor } from '../helpers/random.ts';

const root = tmpRoot('data');
let counter = 0;

/** A folder holding `files` (relative path → contents). */
function folder(files: Record<string, string | Uint8Array>): string {
  const dir = path.join(root, `${counter++}`);
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

/** Random text mixing ASCII, accented letters, CJK and emoji (1 to 4 UTF-8 bytes). */
function randomText(rand: Rand, length: number): string {
  const pools = ['abc xyz\n\t.,!', 'éüñß', '漢字かな', '😀🚀'];
  let text = '';
  for (let i = 0; i < length; i++) {
    const pool = [...pools[Math.floor(rand() * pools.length)]];
    text += pool[Math.floor(rand() * pool.length)];
  }
  return text;
}

const bytesOf = (text: string) => [...new TextEncoder().encode(text)];

test('a folder is read recursively in sorted path order, hidden files left out, files concatenated', () => {
  const dir = folder({
    'b.txt': 'B',
    'a/z.txt': 'AZ',
    'a/b/c.txt': 'ABC',
    'A.txt': 'upper',
    '.git/HEAD': 'hidden',
    'a/.notes': 'hidden',
  });
  assert.deepEqual(
    corpusFiles(dir).map((f) => path.relative(dir, f)),
    ['A.txt', 'a/b/c.txt', 'a/z.txt', 'b.txt'],
  );
  const corpus = readCorpus(dir, byteTokenizer());
  assert.deepEqual([...corpus.tokens], bytesOf('upperABCAZB'));
  assert.equal(corpus.files, 4);
  assert.equal(readCorpus(dir, byteTokenizer()).digest, corpus.digest);
  assert.notEqual(readCorpus(path.join(dir, 'b.txt'), byteTokenizer()).digest, corpus.digest);
});

test('the byte-level tokenizer.json gives the UTF-8 bytes in tokenizers.js, and decodes them back', (t) => {
  const rand = rngFor(t);
  const dir = folder(Object.fromEntries(byteTokenizer().files));
  const tok = Tokenizer.fromDir(dir);
  assert.equal(tok.vocabSize, 256);
  for (let i = 0; i < 20; i++) {
    const text = randomText(rand, 1 + Math.floor(rand() * 60));
    assert.deepEqual(tok.encode(text), bytesOf(text), JSON.stringify(text));
    assert.deepEqual(Array.from(byteTokenizer().encode(text)), bytesOf(text));
    assert.equal(tok.decode(bytesOf(text)), text);
  }
  // Every byte value is one token, the id being the byte.
  assert.deepEqual(
    Array.from({ length: 256 }, (_, b) => tok.tokenToId(tok.idToToken(b)!)),
    Array.from({ length: 256 }, (_, b) => b),
  );
});

test('a tokenizer.json corpus: ids of each file, EOS after each when the tokenizer has one', () => {
  const tokDir = fixture('tokenizers', 'bpe-bytelevel-2k');
  const tokenizer = loadTokenizer(path.join(tokDir, 'tokenizer.json'));
  const reference = Tokenizer.fromDir(tokDir);
  assert.ok(tokenizer.files.has('tokenizer.json'));
  const dir = folder({ '1.txt': 'Hello world', '2.txt': 'second file' });
  const want = [...reference.encode('Hello world'), ...reference.encode('second file')];
  const eos = tokenizer.eosTokenId;
  const expected =
    eos === null ? want : [...reference.encode('Hello world'), eos, ...reference.encode('second file'), eos];
  assert.deepEqual([...readCorpus(dir, tokenizer).tokens], expected);
  assert.deepEqual(loadTokenizer(tokDir).files, tokenizer.files);
});

test('packing: contiguous sequences of l, the tail dropped, the last fraction held out', (t) => {
  const rand = rngFor(t);
  const total = 200 + Math.floor(rand() * 300);
  const tokens = Int32Array.from({ length: total }, (_, i) => i);
  const l = 2 + Math.floor(rand() * 10);
  const data = new Dataset(tokens, l, 0.1);
  const count = Math.floor(total / l);
  assert.equal(data.trainCount + data.valCount, count);
  assert.equal(data.valCount, Math.max(1, Math.round(count * 0.1)));
  assert.deepEqual([...data.trainBatch([2, 0])], [...tokens.slice(2 * l, 3 * l), ...tokens.slice(0, l)]);
  const firstVal = data.trainCount * l;
  assert.deepEqual([...data.valBatch(0, 1)], [...tokens.slice(firstVal, firstVal + l)]);
  // A batch running past the held-out part is cut short.
  assert.equal(data.valBatch(data.valCount - 1, 5).length, l);
  // Two sequences: one trains, one is held out; fewer is an error.
  assert.equal(new Dataset(tokens.slice(0, 2 * l), l, 0.5).valCount, 1);
  assert.equal(new Dataset(tokens.slice(0, 2 * l), l, 0).valCount, 1);
  assert.throws(() => new Dataset(tokens.slice(0, 2 * l - 1), l, 0.1), {
    name: 'MambaError',
    message: new RegExp(`^training data: ${2 * l - 1} tokens make 1 sequences of ${l}; at least 2`),
  });
});

test('batches: the same seed draws the same order; each epoch covers every sequence once', (t) => {
  const rand = rngFor(t);
  const count = 10 + Math.floor(rand() * 20); // 10! orders: a repeat by chance is negligible
  const seed = Math.floor(rand() * 1000);
  const a = new Batcher(count, seed);
  const b = new Batcher(count, seed);
  const drawnA = [...a.next(count), ...a.next(count)];
  const drawnB = b.next(2 * count);
  assert.deepEqual(drawnA, drawnB);
  const sorted = (xs: number[]) => [...xs].sort((x, y) => x - y);
  const all = Array.from({ length: count }, (_, i) => i);
  assert.deepEqual(sorted(drawnA.slice(0, count)), all);
  assert.deepEqual(sorted(drawnA.slice(count)), all);
  assert.notDeepEqual(drawnA.slice(0, count), drawnA.slice(count), 'each epoch is a new shuffle');
  assert.notDeepEqual(new Batcher(count, seed + 1).next(count), drawnA.slice(0, count));
});

test('batches: a saved position continues exactly, across epoch boundaries', (t) => {
  const rand = rngFor(t);
  const count = 3 + Math.floor(rand() * 10);
  const straight = new Batcher(count, 7);
  straight.next(Math.floor(rand() * 3 * count));
  const position = JSON.parse(JSON.stringify(straight.position));
  const rest = straight.next(2 * count + 1);
  const resumed = new Batcher(count, 7);
  resumed.position = position;
  assert.deepEqual(resumed.next(2 * count + 1), rest);
});

test('bad data: a clear error naming the path', () => {
  const missing = path.join(root, 'nothing-here');
  assert.throws(() => corpusFiles(missing), {
    name: 'MambaError',
    message: `${missing}: training data not found`,
  });
  const empty = folder({});
  fs.mkdirSync(empty, { recursive: true });
  assert.throws(() => corpusFiles(empty), { message: `${empty}: no files to train on` });
  const binary = folder({ 'ok.txt': 'fine', 'bad.bin': new Uint8Array([0x66, 0xff, 0xfe]) });
  assert.throws(
    () => readCorpus(binary, byteTokenizer()),
    (e: Error) => {
      assert.ok(e instanceof MambaError);
      assert.match(e.message, new RegExp(`^${path.join(binary, 'bad.bin')}: cannot read it as UTF-8 text`));
      return true;
    },
  );
  const notTokenizer = folder({ 'vocab.txt': 'x' });
  assert.throws(() => loadTokenizer(path.join(notTokenizer, 'vocab.txt')), {
    message: /vocab\.txt: a tokenizer must be a file named tokenizer\.json or a folder holding one$/,
  });
  assert.throws(() => loadTokenizer(missing), { message: `${missing}: tokenizer not found` });
});
