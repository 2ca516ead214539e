// `mamba-ts generate` as a user runs it (one child process per command):
// - greedy on gen-mamba2-2k prints generation.json's greedy_text byte for byte (no newline when
//   stdout is not a terminal), and with --format ids its greedy_ids as one JSON array and a newline;
// - --stats adds one line on stderr: prefill and decode tokens/s and the state size in bytes;
// - bad input of every kind (sampling options, flags that clash, formats, models without a usable
//   tokenizer, unusable --state-in files, Hugging Face repo ids that cannot be had) is one line
//   `mamba-ts: error: ...`, exit 1, no stack trace.
// Every command starts when the file loads (a few run at a time); the tests await their results.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { describe, test } from 'node:test';
import { CpuBackend } from '../../src/backends/cpu/cpuBackend.ts';
import { generate } from '../../src/generate/generate.ts';
import { decodeSnapshot, encodeSnapshot } from '../../src/generate/snapshot.ts';
import { loadModel } from '../../src/io/hf.ts';
import {
  assertOk,
  assertOneLineError,
  type CliResult,
  cli,
  type ErrorCase,
  errorTests,
  re,
  tmpRoot,
} from '../helpers/cli.ts';
import { fixture } from '../helpers/fixtures.ts';

const tmp = tmpRoot('generate-cli');
const gen = fixture('hf', 'gen-mamba2-2k');
const tiny = fixture('hf', 'mamba-tiny-0'); // no tokenizer.json
const generation = JSON.parse(fs.readFileSync(path.join(gen, 'generation.json'), 'utf8')) as {
  max_new_tokens: number;
  cases: Array<{ prompt: string; prompt_ids: number[]; greedy_ids: number[]; greedy_text: string }>;
};

// Snapshot files for --state-in: a good one of gen-mamba2-2k, broken copies of it, and one of
// mamba2-tiny-0 (same state shapes, another model).
async function snapshotOf(dir: string, prompt: number[]): Promise<Uint8Array> {
  const it = generate(loadModel(dir, new CpuBackend()), null, [prompt], { greedy: true, maxNewTokens: 3 });
  let next = await it.next();
  while (!next.done) next = await it.next();
  return encodeSnapshot(next.value.snapshot);
}
const good = await snapshotOf(gen, generation.cases[0].prompt_ids);
const stateFile = (name: string, bytes: Uint8Array) => {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, bytes);
  return file;
};
const fingerprints = {
  gen: loadModel(gen, new CpuBackend()).fingerprint,
  other: loadModel(fixture('hf', 'mamba2-tiny-0'), new CpuBackend()).fingerprint,
};
const flipped = good.slice();
flipped[good.length - 40] ^= 0x10; // a byte of the state data
const wrongMagic = good.slice();
wrongMagic[0] = 'X'.charCodeAt(0);
const stateFiles = {
  good: stateFile('good.state', good),
  flipped: stateFile('flipped.state', flipped),
  truncated: stateFile('truncated.state', good.subarray(0, good.length - 100)),
  wrongMagic: stateFile('magic.state', wrongMagic),
  other: stateFile('other-model.state', await snapshotOf(fixture('hf', 'mamba2-tiny-0'), [1, 2, 3])),
  missing: path.join(tmp, 'missing.state'),
};

// A copy of gen-mamba2-2k whose tokenizer.json has a model type tokenizers.js lacks.
const wordLevel = path.join(tmp, 'word-level');
fs.mkdirSync(wordLevel);
for (const file of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) {
  fs.copyFileSync(path.join(gen, file), path.join(wordLevel, file));
}
const tokenizerJson = JSON.parse(fs.readFileSync(path.join(gen, 'tokenizer.json'), 'utf8'));
tokenizerJson.model.type = 'WordLevel';
fs.writeFileSync(path.join(wordLevel, 'tokenizer.json'), JSON.stringify(tokenizerJson));

/** `cli` with extra environment variables (cli copies process.env when called). */
function cliWith(env: Record<string, string | undefined>, args: string[]): Promise<CliResult> {
  const saved = { ...process.env };
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
  try {
    return cli(args);
  } finally {
    for (const key of Object.keys(env)) {
      if (saved[key] === undefined) delete process.env[key];
      else process.env[key] = saved[key];
    }
  }
}

// A port on 127.0.0.1 that nothing listens on: a server's, once it is closed.
const closedPort = await new Promise<number>((resolve) => {
  const server = http.createServer();
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as AddressInfo;
    server.close(() => resolve(port));
  });
});
const emptyHome = fs.mkdtempSync(path.join(tmp, 'hf-home-'));
const hubEnv = { HF_HOME: emptyHome, HF_HUB_CACHE: undefined, HF_TOKEN: undefined };
const hubRuns = {
  download: cliWith({ ...hubEnv, HF_ENDPOINT: `http://127.0.0.1:${closedPort}` }, [
    'generate',
    '--model',
    'some-org/some-model',
    '--prompt',
    'hi',
  ]),
  offline: cliWith({ ...hubEnv, HF_ENDPOINT: `http://127.0.0.1:${closedPort}` }, [
    'generate',
    '--model',
    'some-org/some-model',
    '--prompt',
    'hi',
    '--offline',
  ]),
};

describe('greedy generation.json through the command line', { concurrency: true }, () => {
  const runs = generation.cases.map((c) => {
    const args = ['generate', '--model', gen, '--prompt', c.prompt, '--max-new-tokens', '30', '--greedy'];
    return { c, text: cli(args), ids: cli([...args, '--format', 'ids', '--stats']) };
  });

  for (const [i, { c, text, ids }] of runs.entries()) {
    test(`case ${i}: --greedy prints greedy_text byte for byte, no newline after it`, async () => {
      assert.equal(generation.max_new_tokens, 30);
      assert.equal(assertOk(await text), c.greedy_text);
    });

    test(`case ${i}: --format ids prints greedy_ids; --stats one line on stderr`, async () => {
      const result = await ids;
      assert.equal(result.status, 0, result.stderr);
      assert.equal(result.stdout, `${JSON.stringify(c.greedy_ids)}\n`);
      const stats = result.stderr.match(
        /^prefill: (\d+) tokens, ([\d.]+) s, ([\d.]+) tokens\/s; decode: (\d+) tokens, ([\d.]+) s, ([\d.]+) tokens\/s; state: (\d+) bytes per sequence\n$/,
      );
      assert.ok(stats, `stats line: ${JSON.stringify(result.stderr)}`);
      const [prefillTokens, , prefillRate, decodeTokens, , decodeRate, stateBytes] = stats
        .slice(1)
        .map(Number);
      assert.equal(prefillTokens, c.prompt_ids.length);
      assert.equal(decodeTokens, 30);
      assert.ok(prefillRate > 0 && decodeRate > 0);
      // 2 layers × (conv (128 + 2·16) × 3 + ssm 8 × 16 × 16) float32
      assert.equal(stateBytes, 2 * 4 * (160 * 3 + 8 * 16 * 16));
    });
  }
});

const generate2k = (...args: string[]) => ['generate', '--model', gen, '--prompt', 'Hello', ...args];
const generateTiny = (...args: string[]) => ['generate', '--model', tiny, ...args];
const plain = (name: string, args: string[], error: string): ErrorCase => ({
  name,
  make: () => ({ args, error }),
});

const stateOutMissing = cli(
  generate2k(
    '--max-new-tokens',
    '3',
    '--greedy',
    '--state-out',
    path.join(tmp, 'no-such-folder', 'out.state'),
  ),
);

errorTests({
  'sampling and length options': [
    plain('--top-p 0', generate2k('--top-p', '0'), '--top-p must be in \\(0, 1\\], got 0$'),
    plain('--top-p 1.5', generate2k('--top-p', '1.5'), '--top-p must be in \\(0, 1\\], got 1.5$'),
    plain(
      '--temperature -1',
      generate2k('--temperature', '-1'),
      "generate: Option '--temperature' argument is ambiguous",
    ),
    plain(
      '--temperature=-1',
      generate2k('--temperature=-1'),
      '--temperature must be a finite number >= 0 \\(0 means greedy\\), got -1$',
    ),
    plain(
      '--max-new-tokens -1',
      generate2k('--max-new-tokens', '-1'),
      "generate: Option '--max-new-tokens' argument is ambiguous",
    ),
    plain(
      '--max-new-tokens=-1',
      generate2k('--max-new-tokens=-1'),
      'generate: --max-new-tokens must be an integer >= 0, got "-1"$',
    ),
    plain(
      '--top-k 2.5',
      generate2k('--top-k', '2.5'),
      '--top-k must be an integer >= 1 \\(or 0 for off\\), got 2.5$',
    ),
    plain(
      '--greedy with --temperature 0.7',
      generate2k('--greedy', '--temperature', '0.7'),
      '--greedy cannot be combined with --temperature 0.7 ',
    ),
  ],
  'prompts and formats': [
    plain(
      '--prompt with --prompt-ids',
      generate2k('--prompt-ids', '1,2'),
      'generate: give --prompt or --prompt-ids, not both$',
    ),
    plain(
      'unknown --format',
      generate2k('--format', 'json'),
      'generate: unknown --format "json" \\(available: text, ids\\)$',
    ),
    plain(
      '--prompt for a model folder without tokenizer.json',
      generateTiny('--prompt', 'Hello'),
      `generate: ${re(tiny)} has no tokenizer.json, so it cannot read or print text; use --prompt-ids and --format ids$`,
    ),
    plain(
      '--prompt --format ids for a model folder without tokenizer.json',
      generateTiny('--prompt', 'Hello', '--format', 'ids'),
      `generate: ${re(tiny)} has no tokenizer.json, so it cannot read or print text; use --prompt-ids and --format ids$`,
    ),
    plain(
      'a tokenizer.json of an unsupported model type (WordLevel)',
      ['generate', '--model', wordLevel, '--prompt', 'Hello'],
      `${re(path.join(wordLevel, 'tokenizer.json'))}: unsupported tokenizer model type "WordLevel" \\(supported: BPE, WordPiece, Unigram\\)$`,
    ),
  ],
  '--state-in': [
    plain(
      'a missing file',
      generate2k('--state-in', stateFiles.missing),
      `${re(stateFiles.missing)}: file not found$`,
    ),
    plain(
      'one flipped byte',
      generate2k('--state-in', stateFiles.flipped),
      `${re(stateFiles.flipped)}: not a valid mamba-ts state snapshot \\(checksum mismatch: the file is corrupted or truncated\\)$`,
    ),
    plain(
      'a truncated file',
      generate2k('--state-in', stateFiles.truncated),
      `${re(stateFiles.truncated)}: not a valid mamba-ts state snapshot \\(checksum mismatch: the file is corrupted or truncated\\)$`,
    ),
    plain(
      'wrong magic bytes',
      generate2k('--state-in', stateFiles.wrongMagic),
      `${re(stateFiles.wrongMagic)}: not a valid mamba-ts state snapshot \\(wrong magic bytes\\)$`,
    ),
    plain(
      'a folder',
      generate2k('--state-in', tmp),
      `${re(tmp)}: cannot read \\(EISDIR: illegal operation on a directory, read\\)$`,
    ),
    plain(
      "another model's snapshot (mamba2-tiny-0 for gen-mamba2-2k), naming both",
      generate2k('--state-in', stateFiles.other),
      `${re(stateFiles.other)}: this state snapshot belongs to another model \\(${fingerprints.other}, not ${fingerprints.gen}\\)$`,
    ),
  ],
});

test('--state-out into a missing folder: the generation is printed, then one error line, exit 1', async () => {
  const target = path.join(tmp, 'no-such-folder', 'out.state');
  const result = await stateOutMissing;
  assert.equal(result.status, 1, result.stderr);
  assert.ok(result.stdout.startsWith('Hello'), JSON.stringify(result.stdout));
  assert.match(
    result.stderr,
    new RegExp(`^mamba-ts: error: ${re(target)}: write failed \\(ENOENT: [^\\n]*\\)\\n$`),
  );
  assert.ok(!fs.existsSync(path.dirname(target)));
});

test('the broken snapshots were made from a good one; the two models differ', () => {
  const snapshot = decodeSnapshot(fs.readFileSync(stateFiles.good), stateFiles.good);
  assert.equal(snapshot.model, fingerprints.gen);
  assert.notEqual(fingerprints.other, fingerprints.gen);
});

describe('a Hugging Face repo id that cannot be had', { concurrency: true }, () => {
  const cacheDir = re(path.join(emptyHome, 'hub', 'models--some-org--some-model'));

  test('not cached, and the endpoint refuses the connection', async () => {
    assertOneLineError(
      await hubRuns.download,
      new RegExp(
        `^mamba-ts: error: some-org/some-model: not in the local Hugging Face cache \\(${cacheDir}\\) and could not be downloaded from http://127\\.0\\.0\\.1:${closedPort} \\(ECONNREFUSED\\)$`,
      ),
    );
  });

  test('--offline, not cached', async () => {
    assertOneLineError(
      await hubRuns.offline,
      new RegExp(
        `^mamba-ts: error: some-org/some-model: not in the local Hugging Face cache \\(${cacheDir}\\)$`,
      ),
    );
  });
});
