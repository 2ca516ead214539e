// Tests for src/io/tokenizer.ts and src/generate/streamDecoder.ts: the bpe-bytelevel-2k cases and
// the gen-mamba2-2k generations against the Rust tokenizers / transformers outputs, a random
// property test of StreamDecoder (fresh seed each run, SEED=<n> replays one) including multi-byte
// characters split across byte tokens, its cost on long runs, and the error messages.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { MambaError } from '../../src/core/errors.ts';
import { StreamDecoder } from '../../src/generate/streamDecoder.ts';
import { Tokenizer } from '../../src/io/tokenizer.ts';
import { fixture } from '../helpers/fixtures.ts';
import { type Rand, rngFor, SEED } from '../helpers/random.ts';

const tokenizerDir = fixture('tokenizers', 'bpe-bytelevel-2k');
const genDir = fixture('hf', 'gen-mamba2-2k');
const tok = Tokenizer.fromDir(tokenizerDir);

const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8'));
const FFFD = '\uFFFD';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-tokenizer-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
let counter = 0;

/** A folder holding `files` (name → text). */
function folder(files: Record<string, string>): string {
  const dir = path.join(tmp, `${counter++}`);
  fs.mkdirSync(dir);
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

const fixtureJson = fs.readFileSync(path.join(tokenizerDir, 'tokenizer.json'), 'utf8');

/** The fixture tokenizer.json with `edit` applied. */
function editedJson(edit: (json: { model: { type: string }; decoder: unknown }) => void): string {
  const json = JSON.parse(fixtureJson);
  edit(json);
  return JSON.stringify(json);
}

function rejects(fn: () => unknown, start: string, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof MambaError, `not a MambaError: ${e}`);
    assert.ok(e.message.startsWith(start), e.message);
    assert.match(e.message, re);
    assert.ok(!e.message.includes('\n'), 'one line');
    return true;
  });
}

/**
 * Feeds `ids` one by one. With `lag`, checks after each id that the text out is decode(ids so far),
 * less at most a final U+FFFD.
 */
function stream(ids: readonly number[], lag = false, options: { skipSpecialTokens?: boolean } = {}) {
  const decoder = new StreamDecoder(tok, options);
  const pieces: string[] = [];
  ids.forEach((id, i) => {
    pieces.push(decoder.push(id));
    if (lag) {
      // Everything decoded so far is out, except at most a final U+FFFD that may still complete.
      const full = tok.decode(ids.slice(0, i + 1), options);
      const out = decoder.text;
      assert.ok(out === full || (out + FFFD === full && full.endsWith(FFFD)), `after ${i + 1} ids`);
    }
  });
  const tail = decoder.flush();
  assert.ok(tail === '' || tail === FFFD, `flush gave ${JSON.stringify(tail)}`);
  pieces.push(tail);
  assert.equal(decoder.text, pieces.join(''));
  return pieces;
}

/** GPT-2's byte → character map of byte-level BPE, to find the single-byte tokens. */
function byteChars(): string[] {
  const chars: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
    chars.push(String.fromCodePoint(printable ? b : 256 + extra++));
  }
  return chars;
}
const byteIds = byteChars().map((ch) => tok.tokenToId(ch)!);

/** Single-byte token ids spelling `text` in UTF-8. */
const bytesOf = (text: string) => [...Buffer.from(text, 'utf8')].map((b) => byteIds[b]);

test('bpe-bytelevel-2k: every case encodes and decodes as the Rust tokenizers library', (t) => {
  const cases = readJson(path.join(tokenizerDir, 'cases.json'));
  for (const c of cases) {
    assert.deepEqual(tok.encode(c.text), c.ids, `encode ${JSON.stringify(c.text)}`);
    assert.equal(tok.decode(c.ids), c.decoded, `decode ${JSON.stringify(c.text)}`);
    assert.equal(stream(c.ids, true).join(''), c.decoded);
  }
  t.diagnostic(`${cases.length} cases`);
});

test('bpe-bytelevel-2k: vocabulary, special tokens and ids outside it', () => {
  assert.equal(tok.vocabSize, 2000);
  assert.ok(byteIds.every((id) => Number.isInteger(id)));
  assert.equal(tok.tokenToId('<|endoftext|>'), 0);
  assert.equal(tok.idToToken(1), '<|padding|>');
  assert.equal(tok.tokenToId('no such token'), null);
  assert.equal(tok.idToToken(2000), null);
  assert.equal(tok.idToToken(-1), null);
  // No tokenizer_config.json: no named special tokens.
  assert.equal(tok.eosTokenId, null);
  assert.equal(tok.eosToken, null);
  const hello = tok.encode('Hello');
  assert.equal(tok.decode([0, ...hello, 1], { skipSpecialTokens: true }), 'Hello');
  assert.equal(tok.decode([0, ...hello, 1]), '<|endoftext|>Hello<|padding|>');
  assert.equal(tok.decode([5000, ...hello, 2000]), 'Hello', 'unknown ids are skipped');
  assert.equal(tok.decode([]), '');
  assert.equal(tok.decode([5000]), '');
});

test('gen-mamba2-2k: prompts, greedy texts and the streamed text match transformers', (t) => {
  const gen = Tokenizer.fromDir(genDir);
  assert.equal(gen.eosToken, '<|endoftext|>');
  assert.equal(gen.eosTokenId, 0);
  assert.equal(gen.padTokenId, 1);
  assert.equal(gen.bosTokenId, null);
  const { cases } = readJson(path.join(genDir, 'generation.json'));
  let replacements = 0;
  for (const c of cases) {
    assert.deepEqual(gen.encode(c.prompt), c.prompt_ids);
    assert.equal(gen.decode(c.greedy_ids), c.greedy_text);
    const pieces = stream(c.greedy_ids, true);
    assert.equal(pieces.join(''), c.greedy_text);
    // Every U+FFFD in a piece is one the full decode has at the same place.
    let at = 0;
    for (const piece of pieces) {
      for (let i = 0; i < piece.length; i++) {
        if (piece[i] === FFFD) {
          assert.equal(c.greedy_text[at + i], FFFD);
          replacements++;
        }
      }
      at += piece.length;
    }
  }
  assert.ok(replacements > 0, 'the fixture has partial bytes');
  t.diagnostic(`${cases.length} generations, ${replacements} U+FFFD streamed in place`);
});

test('StreamDecoder holds back a split character until it completes', () => {
  const snake = bytesOf('🐍'); // 4 byte tokens
  const decoder = new StreamDecoder(tok);
  assert.equal(decoder.push(tok.encode('a')[0]), 'a');
  for (const id of snake.slice(0, 3)) assert.equal(decoder.push(id), '');
  assert.equal(decoder.push(snake[3]), '🐍');
  // A lead byte followed by a non-continuation: the U+FFFD is real and comes out then.
  assert.equal(decoder.push(byteIds[0xe2]), '');
  assert.equal(decoder.push(byteIds[0x41]), `${FFFD}A`);
  assert.equal(decoder.push(byteIds[0xf0]), '');
  assert.equal(decoder.flush(), FFFD);
  assert.equal(decoder.text, `a🐍${FFFD}A${FFFD}`);
});

/** Random ids: vocabulary ids, special tokens, whole or cut UTF-8 characters as byte tokens. */
function randomIds(rand: Rand, length: number): number[] {
  const chars = ['🐍', '👨‍👩‍👧‍👦', '日本語', 'é', '€', '𝔽', '🚀!', ' ü'];
  const ids: number[] = [];
  while (ids.length < length) {
    const r = rand();
    if (r < 0.5) ids.push(Math.floor(rand() * tok.vocabSize));
    else if (r < 0.55)
      ids.push(Math.floor(rand() * 2)); // <|endoftext|>, <|padding|>
    else if (r < 0.6)
      ids.push(byteIds[0x80 + Math.floor(rand() * 128)]); // a lone high byte
    else {
      const bytes = bytesOf(chars[Math.floor(rand() * chars.length)]);
      const cut = rand() < 0.3 ? Math.floor(rand() * bytes.length) : bytes.length;
      ids.push(...bytes.slice(0, cut));
    }
  }
  return ids.slice(0, length);
}

test('StreamDecoder property: pieces add up to decode(all ids)', (t) => {
  const rand = rngFor(t);
  let total = 0;
  for (let run = 0; run < 300; run++) {
    const ids = randomIds(rand, 1 + Math.floor(rand() * 60));
    const skip = rand() < 0.3;
    const pieces = stream(ids, true, { skipSpecialTokens: skip });
    assert.equal(pieces.join(''), tok.decode(ids, { skipSpecialTokens: skip }), `SEED=${SEED} run ${run}`);
    total += ids.length;
  }
  t.diagnostic(`300 random sequences, ${total} ids`);
});

test('StreamDecoder on 5000 ids decodes a bounded window per id', (t) => {
  const rand = rngFor(t);
  let decoded = 0;
  const counting = {
    decode(ids: readonly number[]) {
      decoded += ids.length;
      return tok.decode(ids);
    },
  };
  const runs: Array<[string, number[]]> = [
    ['random', randomIds(rand, 5000)],
    ['repeated lead byte', Array(5000).fill(byteIds[0xf0])],
    ['repeated continuation byte', Array(5000).fill(byteIds[0x9f])],
  ];
  for (const [name, ids] of runs) {
    decoded = 0;
    const start = performance.now();
    const decoder = new StreamDecoder(counting);
    let text = '';
    for (const id of ids) text += decoder.push(id);
    text += decoder.flush();
    const ms = performance.now() - start;
    assert.equal(text, tok.decode(ids), `${name} (SEED=${SEED})`);
    assert.ok(decoded < 20 * ids.length, `${name}: ${decoded} ids decoded for ${ids.length}`);
    t.diagnostic(`${name}: ${ids.length} ids, ${decoded} decoded in windows, ${ms.toFixed(0)} ms`);
  }
});

test('StreamDecoder keeps context for decoders that look back (WordPiece, Metaspace)', (t) => {
  const vocab = (tokens: string[]) => Object.fromEntries(tokens.map((token, i) => [token, i]));
  const base = { normalizer: null, post_processor: null, added_tokens: [] };
  const wordPiece = ['hello', 'world', 'a', '##s', '##ing', '.', '[UNK]'];
  const metaspace = ['▁hello', '▁world', '▁', 'a', 's', '▁a'];
  const meta = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true };
  const tokenizers: Array<[string, number, Record<string, unknown>]> = [
    [
      'WordPiece',
      wordPiece.length,
      {
        ...base,
        model: {
          type: 'WordPiece',
          vocab: vocab(wordPiece),
          unk_token: '[UNK]',
          continuing_subword_prefix: '##',
        },
        pre_tokenizer: { type: 'WhitespaceSplit' },
        decoder: { type: 'WordPiece', prefix: '##', cleanup: false },
      },
    ],
    [
      'Metaspace',
      metaspace.length,
      {
        ...base,
        model: { type: 'BPE', vocab: vocab(metaspace), merges: [] },
        pre_tokenizer: meta,
        decoder: meta,
      },
    ],
  ];
  const rand = rngFor(t);
  for (const [name, size, json] of tokenizers) {
    const other = Tokenizer.fromDir(folder({ 'tokenizer.json': JSON.stringify(json) }));
    assert.equal(other.decode([1]), 'world', `${name}: the first token decodes differently`);
    for (let run = 0; run < 100; run++) {
      const ids = Array.from({ length: 1 + Math.floor(rand() * 30) }, () => Math.floor(rand() * size));
      const decoder = new StreamDecoder(other);
      let text = '';
      for (const id of ids) text += decoder.push(id);
      assert.equal(
        text + decoder.flush(),
        other.decode(ids),
        `${name} ${JSON.stringify(ids)} (SEED=${SEED})`,
      );
    }
  }
});

test('errors name the folder or file', () => {
  const empty = folder({});
  rejects(
    () => Tokenizer.fromDir(empty),
    `${empty}: `,
    /no tokenizer\.json \(text needs a tokenizer; pass token ids/,
  );
  const spm = folder({ 'tokenizer.model': 'x' });
  rejects(() => Tokenizer.fromDir(spm), `${spm}: `, /SentencePiece tokenizer\.model/);
  const bad = folder({ 'tokenizer.json': '{"model": ' });
  rejects(() => Tokenizer.fromDir(bad), path.join(bad, 'tokenizer.json'), /invalid JSON/);
  const noModel = folder({ 'tokenizer.json': '{"version": "1.0"}' });
  rejects(() => Tokenizer.fromDir(noModel), path.join(noModel, 'tokenizer.json'), /no "model"/);
  const wordLevel = folder({ 'tokenizer.json': editedJson((json) => (json.model.type = 'WordLevel')) });
  rejects(
    () => Tokenizer.fromDir(wordLevel),
    path.join(wordLevel, 'tokenizer.json'),
    /model type "WordLevel"/,
  );
  const decoder = folder({ 'tokenizer.json': editedJson((json) => (json.decoder = { type: 'Fancy' })) });
  rejects(() => Tokenizer.fromDir(decoder), path.join(decoder, 'tokenizer.json'), /Decoder type: Fancy/);
  const config = folder({ 'tokenizer.json': fixtureJson, 'tokenizer_config.json': '{"eos_token": 7}' });
  rejects(() => Tokenizer.fromDir(config), path.join(config, 'tokenizer_config.json'), /"eos_token"/);
  const badConfig = folder({ 'tokenizer.json': fixtureJson, 'tokenizer_config.json': '[' });
  rejects(() => Tokenizer.fromDir(badConfig), path.join(badConfig, 'tokenizer_config.json'), /invalid JSON/);
});

test('special tokens from tokenizer_config.json objects and a legacy special_tokens_map.json', () => {
  const objects = folder({
    'tokenizer.json': fixtureJson,
    'tokenizer_config.json': JSON.stringify({
      bos_token: { __type: 'AddedToken', content: '<|endoftext|>' },
      eos_token: { content: '<|endoftext|>' },
      pad_token: null,
      added_tokens_decoder: {},
    }),
    'special_tokens_map.json': '{"pad_token": "<|padding|>"}', // ignored: the config is not legacy
  });
  const a = Tokenizer.fromDir(objects);
  assert.deepEqual([a.bosTokenId, a.eosTokenId, a.padTokenId], [0, 0, null]);
  const legacy = folder({
    'tokenizer.json': fixtureJson,
    'tokenizer_config.json': '{"eos_token": "<|padding|>"}',
    'special_tokens_map.json': '{"eos_token": {"content": "<|endoftext|>"}, "pad_token": "<|padding|>"}',
  });
  const b = Tokenizer.fromDir(legacy);
  assert.deepEqual([b.eosToken, b.eosTokenId, b.padTokenId], ['<|endoftext|>', 0, 1]);
  const missing = folder({ 'tokenizer.json': fixtureJson, 'tokenizer_config.json': '{"eos_token": "</s>"}' });
  assert.equal(Tokenizer.fromDir(missing).eosTokenId, null, 'a token the vocabulary lacks has no id');
});
