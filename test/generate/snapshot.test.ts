// Tests for state snapshots (src/generate/snapshot.ts and `from` / `result.snapshot` of generate):
// - encode → decode gives the snapshot back, byte for byte when encoded again;
// - k tokens, a snapshot, then m more equals k + m in one go (greedy, and seeded sampling with a
//   repetition penalty), in one process and across processes (`--state-out` then `--state-in`);
// - a fork (one snapshot, several prompts) gives one continuation per prompt, each equal to reading
//   its whole history from scratch, and continuing without forking equals the uninterrupted run;
// - a long prefix read once and saved serves several suffixes, each equal to prefix + suffix read
//   from scratch;
// - corrupted snapshots and another model's are refused with one line;
// - the state's size in bytes does not depend on how many tokens were read.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { CpuBackend } from '../../src/backends/cpu/cpuBackend.ts';
import { MambaError } from '../../src/core/errors.ts';
import {
  type GenerateOptions,
  type GenerationResult,
  generate,
  type TextCodec,
} from '../../src/generate/generate.ts';
import { decodeSnapshot, encodeSnapshot, type Snapshot } from '../../src/generate/snapshot.ts';
import { loadModel } from '../../src/io/hf.ts';
import { Tokenizer } from '../../src/io/tokenizer.ts';
import type { CausalLM } from '../../src/models/causalLM.ts';
import { assertOk, cli, tmpRoot } from '../helpers/cli.ts';
import { fixture } from '../helpers/fixtures.ts';

/** Runs `generate` to the end and returns its result, with the text its pieces streamed. */
async function run(
  model: CausalLM,
  codec: TextCodec | null,
  prompts: ReadonlyArray<string | readonly number[]>,
  options: GenerateOptions,
): Promise<GenerationResult & { streamed: string[] }> {
  const streamed = prompts.map(() => '');
  const it = generate(model, codec, prompts, options);
  let next = await it.next();
  for (; !next.done; next = await it.next()) streamed[next.value.sequence] += next.value.text;
  return { ...next.value, streamed };
}

/** Through bytes and back, as a file would carry it. */
const viaBytes = (s: Snapshot) => decodeSnapshot(encodeSnapshot(s), 'snapshot.state');

/** The state's floats, one array (to compare states exactly). */
const stateFloats = (s: Snapshot) => s.state.layers.flatMap((l) => [...l.conv, ...l.ssm]);

/** Bytes of the recurrent state per sequence, counted from the arrays. */
const stateBytes = (s: Snapshot) =>
  (4 * s.state.layers.reduce((sum, l) => sum + l.conv.length + l.ssm.length, 0)) / s.rows.length;

const tmp = tmpRoot('snapshot');
const backend = new CpuBackend();
const genDir = fixture('hf', 'gen-mamba2-2k');
const gen = loadModel(genDir, backend);
const tokenizer = Tokenizer.fromDir(genDir);
const tiny = loadModel(fixture('hf', 'mamba-tiny-0'), backend);
const otherDir = fixture('hf', 'mamba2-tiny-0');
const other = loadModel(otherDir, backend);
const cases = (
  JSON.parse(fs.readFileSync(fixture('hf', 'gen-mamba2-2k', 'generation.json'), 'utf8')) as {
    cases: Array<{ prompt: string }>;
  }
).cases;

const sampled: GenerateOptions = { temperature: 0.9, topK: 40, repetitionPenalty: 1.3, seed: 5 };
const modes: Array<[string, GenerateOptions]> = [
  ['greedy', { greedy: true }],
  ['seeded sampling with a repetition penalty', sampled],
];

test('encode → decode gives the snapshot back; encoding it again gives the same bytes', async () => {
  const snapshots = [
    (await run(gen, tokenizer, [cases[0].prompt, cases[1].prompt], { ...sampled, maxNewTokens: 5 })).snapshot,
    (await run(gen, tokenizer, [cases[2].prompt], { maxNewTokens: 0 })).snapshot,
    (await run(tiny, null, [[1, 2, 3]], { greedy: true, maxNewTokens: 3 })).snapshot,
  ];
  for (const snapshot of snapshots) {
    const bytes = encodeSnapshot(snapshot);
    const back = decodeSnapshot(bytes, 'x.state');
    assert.equal(back.model, snapshot.model);
    assert.deepEqual(back.rows, snapshot.rows);
    assert.equal(back.state.batch, snapshot.rows.length);
    assert.deepEqual(stateFloats(back), stateFloats(snapshot));
    assert.deepEqual(encodeSnapshot(back), bytes);
    // A snapshot inside a larger buffer (as a file read in pieces may be) decodes the same.
    const padded = new Uint8Array(bytes.length + 3);
    padded.set(bytes, 3);
    assert.deepEqual(stateFloats(decodeSnapshot(padded.subarray(3), 'x.state')), stateFloats(snapshot));
    // So does a Node Buffer (what fs.readFileSync returns), also one at an offset in a larger buffer.
    const buffer = Buffer.concat([Buffer.alloc(5), Buffer.from(bytes)]).subarray(5);
    for (const b of [Buffer.from(bytes), buffer]) {
      assert.deepEqual(stateFloats(decodeSnapshot(b, 'x.state')), stateFloats(snapshot));
    }
  }
  assert.equal(snapshots[0].rows.length, 2);
  assert.deepEqual(snapshots[0].rows[1].rng, [sampled.seed! + 1, 5], 'sequence 1 drew 5 times with seed + 1');
  assert.deepEqual(snapshots[1].rows[0].pending, [], 'nothing sampled, nothing pending');
});

describe('k tokens, a snapshot, m more = k + m in one go', { concurrency: true }, () => {
  const setups: Array<[string, CausalLM, TextCodec | null, Array<string | number[]>]> = [
    ['gen-mamba2-2k', gen, tokenizer, cases.map((c) => c.prompt)],
    ['mamba-tiny-0', tiny, null, [[1, 2, 3], [400, 12, 77, 5, 300], [9]]],
  ];
  for (const [name, model, codec, prompts] of setups) {
    for (const [mode, options] of modes) {
      test(`${name}, ${mode}`, async () => {
        const common = { ...options, eosTokenIds: [] };
        let cleanSplits = 0;
        for (const [k, m] of [
          [1, 20],
          [7, 14],
          [20, 1],
        ]) {
          const whole = await run(model, codec, prompts, { ...common, maxNewTokens: k + m });
          const first = await run(model, codec, prompts, { ...common, maxNewTokens: k });
          const empty = prompts.map((p) => (typeof p === 'string' ? '' : []));
          const rest = await run(model, codec, empty, {
            ...common,
            maxNewTokens: m,
            from: viaBytes(first.snapshot),
          });
          assert.deepEqual(rest.ids, whole.ids, `k ${k}, m ${m}`);
          assert.deepEqual(rest.reasons, whole.reasons);
          assert.deepEqual(rest.snapshot.rows, whole.snapshot.rows, 'same history and sampler position');
          assert.deepEqual(
            stateFloats(rest.snapshot),
            stateFloats(whole.snapshot),
            'the same state, exactly',
          );
          assert.equal(rest.stats.promptTokens, prompts.length, 'only the pending token is read again');
          for (let i = 0; i < prompts.length && codec; i++) {
            // The text splits where the ids do, unless a character was cut in two there.
            if (tokenizer.decode(first.ids[i]).endsWith('\uFFFD')) continue;
            assert.equal(first.texts[i] + rest.texts[i], whole.texts[i]);
            cleanSplits++;
          }
          // One sequence of the snapshot, continued alone (not a fork), also goes on exactly.
          const single = { ...first.snapshot, rows: [first.snapshot.rows[1]] };
          single.state = { batch: 1, layers: first.snapshot.state.layers.map((l) => rowOf(l, 1, 3)) };
          const seq1 = await run(model, codec, [empty[1]], {
            ...common,
            maxNewTokens: m,
            from: viaBytes(single),
          });
          assert.deepEqual(seq1.ids[0], whole.ids[1], 'row 1 keeps its own sampler (seed + 1) and position');
        }
        if (codec) assert.ok(cleanSplits > 0);
      });
    }
  }
});

/** Row `row` of a layer state holding `batch` rows. */
function rowOf(layer: { conv: Float32Array; ssm: Float32Array }, row: number, batch: number) {
  const part = (a: Float32Array) => a.slice((row * a.length) / batch, ((row + 1) * a.length) / batch);
  return { conv: part(layer.conv), ssm: part(layer.ssm) };
}

describe('forks', { concurrency: true }, () => {
  const prompt = cases[0].prompt;
  const branches = ['', '\n    x = 1', ' and then']; // branch 0 simply goes on
  const k = 6;
  const m = 12;

  for (const [mode, options] of modes) {
    test(`one snapshot, 3 prompts: 3 continuations, each as if read from scratch (${mode})`, async () => {
      const common = { ...options, eosTokenIds: [] };
      const start = await run(gen, tokenizer, [prompt], { ...common, maxNewTokens: k });
      const snapshot = viaBytes(start.snapshot);
      const history = snapshot.rows[0].ids;
      const forked = await run(gen, tokenizer, branches, { ...common, maxNewTokens: m, from: snapshot });
      assert.equal(forked.snapshot.rows.length, 3);
      const continuations = forked.ids.map((ids, i) => {
        const head = [...history, ...tokenizer.encode(branches[i])];
        assert.deepEqual(ids.slice(0, head.length), head, `branch ${i} keeps its history`);
        assert.equal(ids.length, head.length + m);
        return ids.slice(head.length);
      });
      assert.equal(new Set(continuations.map((c) => c.join())).size, 3, 'three different continuations');
      // Each branch i equals its whole history read from scratch, sampling with seed + i.
      for (const [i, branch] of branches.entries()) {
        const ids = [...history, ...tokenizer.encode(branch)];
        const seed = (options.seed ?? 0) + i;
        const scratch = await run(gen, tokenizer, [ids], { ...common, seed, maxNewTokens: m });
        assert.deepEqual(forked.ids[i], scratch.ids[0], `branch ${i}`);
        assert.equal(forked.texts[i], scratch.texts[0]);
      }
      // Not forked: the same snapshot continued alone equals the run that never stopped.
      const whole = await run(gen, tokenizer, [prompt], { ...common, maxNewTokens: k + m });
      const alone = await run(gen, tokenizer, [''], { ...common, maxNewTokens: m, from: snapshot });
      assert.deepEqual(alone.ids, whole.ids);
      if (mode === 'greedy') assert.deepEqual(forked.ids[0], whole.ids[0], 'greedy: branch 0 too');
      // The forked snapshot (3 rows) goes on with one prompt per row.
      const more = await run(gen, tokenizer, ['', '', ''], {
        ...common,
        maxNewTokens: 4,
        from: viaBytes(forked.snapshot),
      });
      const longer = await run(gen, tokenizer, branches, { ...common, maxNewTokens: m + 4, from: snapshot });
      assert.deepEqual(more.ids, longer.ids);
    });
  }

  test('a snapshot of 2 sequences cannot take 3 prompts', async () => {
    const two = (await run(tiny, null, [[1], [2]], { greedy: true, maxNewTokens: 1 })).snapshot;
    await assert.rejects(
      run(tiny, null, [[], [], []], { from: two }),
      /the snapshot holds 2 sequences, but 3 prompts were given/,
    );
  });
});

describe('a long prefix read once serves several suffixes', { concurrency: true }, () => {
  const prefix = `${cases.map((c) => c.prompt).join('\n')}\n`.repeat(4);
  const prefixIds = tokenizer.encode(prefix);
  const suffixes = ['x = 1', ' Hello', '\n\nThe end', 'é'];
  const saved = path.join(tmp, 'prefix.state');

  for (const [index, [mode, options]] of modes.entries()) {
    test(`each suffix from the saved prefix equals prefix + suffix from scratch (${mode})`, async () => {
      assert.ok(prefixIds.length > 150, `${prefixIds.length} prefix tokens`);
      const common = { ...options, eosTokenIds: [], maxNewTokens: 15 };
      const read = await run(gen, tokenizer, [prefix], { ...options, maxNewTokens: 0 });
      assert.deepEqual(read.ids, [prefixIds]);
      assert.equal(read.stats.newTokens, 0);
      fs.writeFileSync(`${saved}.${index}`, encodeSnapshot(read.snapshot));
      const fromFile = () => decodeSnapshot(fs.readFileSync(`${saved}.${index}`), saved);
      for (const suffix of suffixes) {
        const suffixIds = tokenizer.encode(suffix);
        const reused = await run(gen, tokenizer, [suffix], { ...common, from: fromFile() });
        const scratch = await run(gen, tokenizer, [[...prefixIds, ...suffixIds]], common);
        assert.deepEqual(reused.ids, scratch.ids, JSON.stringify(suffix));
        assert.deepEqual(reused.texts, scratch.texts);
        assert.equal(reused.stats.promptTokens, suffixIds.length, 'the prefix is not read again');
        assert.equal(scratch.stats.promptTokens, prefixIds.length + suffixIds.length);
      }
      // All suffixes at once: a fork of the prefix (sequence i samples with seed + i).
      const all = await run(gen, tokenizer, suffixes, { ...common, from: fromFile() });
      for (const [i, suffix] of suffixes.entries()) {
        const ids = [...prefixIds, ...tokenizer.encode(suffix)];
        const seed = (options.seed ?? 0) + i;
        const scratch = await run(gen, tokenizer, [ids], { ...common, seed });
        assert.deepEqual(all.ids[i], scratch.ids[0], JSON.stringify(suffix));
        assert.equal(all.texts[i], scratch.texts[0]);
      }
    });
  }
});

describe('refused snapshots', { concurrency: true }, () => {
  const good = async () =>
    encodeSnapshot(
      (await run(gen, tokenizer, [cases[0].prompt], { greedy: true, maxNewTokens: 4 })).snapshot,
    );

  /** decodeSnapshot must throw one line naming the file and `why`. */
  function refused(bytes: Uint8Array, why: RegExp): void {
    assert.throws(
      () => decodeSnapshot(bytes, 'turn1.state'),
      (e: unknown) => {
        assert.ok(e instanceof MambaError, String(e));
        assert.match(e.message, /^turn1\.state: not a valid mamba-ts state snapshot \(/);
        assert.match(e.message, why);
        assert.doesNotMatch(e.message, /\n/);
        return true;
      },
    );
  }

  test('one flipped byte anywhere (magic, header, state data, checksum) is refused', async () => {
    const bytes = await good();
    const headerEnd = 16 + new DataView(bytes.buffer).getUint32(12, true);
    const places = [
      3,
      9,
      20,
      headerEnd - 2,
      headerEnd + 8,
      Math.floor(bytes.length / 2),
      bytes.length - 5,
      bytes.length - 1,
    ];
    for (const at of places) {
      for (const bit of [0x01, 0x80]) {
        const bad = bytes.slice();
        bad[at] ^= bit;
        refused(
          bad,
          at < 8 ? /wrong magic bytes/ : at < 12 ? /unsupported version|checksum/ : /checksum mismatch/,
        );
      }
    }
  });

  test('a truncated snapshot is refused', async () => {
    const bytes = await good();
    for (const length of [bytes.length - 1, bytes.length - 4, Math.floor(bytes.length / 2), 30]) {
      refused(bytes.subarray(0, length), /checksum mismatch: the file is corrupted or truncated/);
    }
    for (const length of [0, 7, 19]) refused(bytes.subarray(0, length), /wrong magic bytes/);
  });

  test('wrong magic bytes are refused: another file type, or text', async () => {
    const bytes = await good();
    const magic = bytes.slice();
    magic.set(new TextEncoder().encode('MAMBAXX\0'), 0);
    refused(magic, /wrong magic bytes/);
    refused(fs.readFileSync(fixture('hf', 'gen-mamba2-2k', 'model.safetensors')), /wrong magic bytes/);
    refused(new TextEncoder().encode('{"model": "x", "rows": []}\n'), /wrong magic bytes/);
  });

  test("another model's snapshot is refused, naming both models", async () => {
    // mamba2-tiny-0 has the same state shapes as gen-mamba2-2k: only the fingerprint tells them apart.
    const { snapshot } = await run(other, null, [[1, 2, 3]], { greedy: true, maxNewTokens: 2 });
    assert.deepEqual(
      snapshot.state.layers.map((l) => [l.conv.length, l.ssm.length]),
      (await run(gen, null, [[1, 2, 3]], { greedy: true, maxNewTokens: 2 })).snapshot.state.layers.map(
        (l) => [l.conv.length, l.ssm.length],
      ),
    );
    assert.notEqual(other.fingerprint, gen.fingerprint);
    await assert.rejects(run(gen, tokenizer, [''], { from: viaBytes(snapshot) }), (e: unknown) => {
      assert.ok(e instanceof MambaError, String(e));
      assert.equal(
        e.message,
        `the snapshot belongs to another model (${other.fingerprint}, not ${gen.fingerprint})`,
      );
      return true;
    });
  });
});

test('the state size in bytes does not depend on how many tokens were read', async () => {
  const sizes: number[] = [];
  for (const [model, expected] of [
    // Mamba-2: per layer conv (128 + 2·16) × 3 and ssm 8 heads × 16 × 16; Mamba: conv 128 × 3, ssm 128 × 16.
    [gen, 2 * 4 * (160 * 3 + 8 * 16 * 16)],
    [tiny, 2 * 4 * (128 * 3 + 128 * 16)],
  ] as const) {
    const five = await run(model, null, [[1, 2, 3, 4, 5]], { maxNewTokens: 0 });
    const long = await run(model, null, [[1, 2, 3, 4, 5]], {
      greedy: true,
      maxNewTokens: 195,
      eosTokenIds: [],
    });
    assert.equal(five.ids[0].length, 5);
    assert.equal(long.ids[0].length, 200);
    for (const r of [five, long]) {
      assert.equal(r.stats.stateBytes, expected);
      assert.equal(stateBytes(r.snapshot), expected);
    }
    // The files differ only by the token history in their headers.
    const [a, b] = [encodeSnapshot(five.snapshot), encodeSnapshot(long.snapshot)];
    const header = (bytes: Uint8Array) => new DataView(bytes.buffer).getUint32(12, true);
    const data = (bytes: Uint8Array) => bytes.length - ((16 + header(bytes) + 3) & ~3) - 4;
    assert.equal(data(a), expected);
    assert.equal(data(b), expected);
    sizes.push(expected);
  }
  assert.notEqual(sizes[0], sizes[1]);
});

describe('across processes: --state-out, then --state-in', { concurrency: true }, () => {
  const model = genDir;
  const prompt = cases[2].prompt;
  const file = (name: string) => path.join(tmp, name);
  const sampling = ['--temperature', '0.9', '--top-k', '40', '--repetition-penalty', '1.3', '--seed', '5'];
  const k = 8;
  const m = 12;

  // Text, sampled: the first run prints the prompt and k tokens, the second the m next.
  const wholeText = cli([
    'generate',
    '--model',
    model,
    '--prompt',
    prompt,
    '--max-new-tokens',
    `${k + m}`,
    ...sampling,
  ]);
  const firstText = cli([
    'generate',
    '--model',
    model,
    '--prompt',
    prompt,
    '--max-new-tokens',
    `${k}`,
    ...sampling,
    '--state-out',
    file('text.state'),
  ]);
  // Ids, greedy, on mamba-tiny-0: the second run prints every id, its history included.
  const tinyDir = fixture('hf', 'mamba-tiny-0');
  const ids = ['generate', '--model', tinyDir, '--prompt-ids', '7,8,9,10', '--format', 'ids', '--ignore-eos'];
  const wholeIds = cli([...ids, '--max-new-tokens', `${k + m}`, ...sampling]);
  const firstIds = cli([...ids, '--max-new-tokens', `${k}`, ...sampling, '--state-out', file('ids.state')]);

  test('text, seeded sampling with a repetition penalty: the two runs print what one run prints', async () => {
    const first = assertOk(await firstText);
    const rest = assertOk(
      await cli([
        'generate',
        '--model',
        model,
        '--state-in',
        file('text.state'),
        '--max-new-tokens',
        `${m}`,
        ...sampling,
        '--state-out',
        file('text2.state'),
      ]),
    );
    const whole = assertOk(await wholeText);
    assert.ok(first.startsWith(prompt));
    assert.equal(first + rest, whole);
    // The saved snapshots hold what the API would: the history and the sampler's position.
    const saved = decodeSnapshot(fs.readFileSync(file('text2.state')), 'text2.state');
    const api = await run(gen, tokenizer, [prompt], {
      ...sampled,
      eosTokenIds: [],
      maxNewTokens: k + m,
    });
    assert.deepEqual(saved.rows, api.snapshot.rows);
    assert.equal(tokenizer.decode(saved.rows[0].ids), whole);
  });

  test('ids: continuing from the file prints the ids of the uninterrupted run', async () => {
    const first = JSON.parse(assertOk(await firstIds)) as number[];
    assert.equal(first.length, 4 + k);
    const rest = assertOk(
      await cli([
        'generate',
        '--model',
        tinyDir,
        '--state-in',
        file('ids.state'),
        '--format',
        'ids',
        '--ignore-eos',
        '--max-new-tokens',
        `${m}`,
        ...sampling,
      ]),
    );
    assert.equal(rest, assertOk(await wholeIds));
    // With more prompt ids after the snapshot (greedy): as reading history + them from scratch.
    const more = [
      '--prompt-ids',
      '5,6',
      '--max-new-tokens',
      '6',
      '--greedy',
      '--format',
      'ids',
      '--ignore-eos',
    ];
    const [continued, scratch] = await Promise.all([
      cli(['generate', '--model', tinyDir, '--state-in', file('ids.state'), ...more]),
      cli(['generate', '--model', tinyDir, ...more.slice(0, 1), [...first, 5, 6].join(), ...more.slice(2)]),
    ]);
    assert.equal(assertOk(continued), assertOk(scratch));
    assert.deepEqual(JSON.parse(assertOk(continued)).slice(0, first.length + 2), [...first, 5, 6]);
  });
});
