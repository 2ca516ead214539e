// Tests for src/generate/generate.ts, the generation API, on two fixture models: gen-mamba2-2k
// with its byte-level BPE tokenizer (text prompts) and mamba-tiny-0 (token id prompts, no text):
// - greedy reproduces generation.json, and the streamed pieces (with echo) add up to
//   tokenizer.decode(all ids), for greedy and sampled runs alike;
// - top-k 1 is greedy; a seed reproduces a run exactly and another seed gives another one;
// - stop strings cut the text before them and end the sequence, also when they span several
//   tokens, and the stream never shows a part of one that later completes;
// - an EOS id ends the sequence and stays in `ids`, out of the text;
// - a batch of prompts of different lengths, finishing at different steps, gives each sequence what
//   it gets alone (sequence i of a batch samples with seed + i);
// - prefill in chunks of 1, 3 or 512 tokens gives the same generation;
// - greedy on WebGPU (the argmax on the GPU) gives the CPU's ids.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { describe, test } from 'node:test';
import { CpuBackend } from '../../src/backends/cpu/cpuBackend.ts';
import { MambaError } from '../../src/core/errors.ts';
import {
  type GenerateOptions,
  type GenerationResult,
  generate,
  type Piece,
  type TextCodec,
} from '../../src/generate/generate.ts';
import { loadModel } from '../../src/io/hf.ts';
import { Tokenizer } from '../../src/io/tokenizer.ts';
import type { CausalLM } from '../../src/models/causalLM.ts';
import { webgpuBackend } from '../helpers/backends.ts';
import { fixture } from '../helpers/fixtures.ts';

interface Run {
  pieces: Piece[];
  result: GenerationResult;
}

/** Runs `generate` to the end, keeping every piece it yields. */
async function run(
  model: CausalLM,
  codec: TextCodec | null,
  prompts: ReadonlyArray<string | readonly number[]>,
  options: GenerateOptions,
): Promise<Run> {
  const pieces: Piece[] = [];
  const it = generate(model, codec, prompts, options);
  let next = await it.next();
  for (; !next.done; next = await it.next()) pieces.push(next.value);
  return { pieces, result: next.value };
}

/** What one sequence of a run produced (the parts that must not depend on the batch). */
function sequence({ pieces, result }: Run, i: number) {
  const own = pieces.filter((p) => p.sequence === i && !p.prompt);
  return {
    ids: result.ids[i],
    text: result.texts[i],
    reason: result.reasons[i],
    streamedIds: own.map((p) => p.id),
    streamedText: own.map((p) => p.text).join(''),
  };
}

/** The new ids of sequence `i` (after its prompt of `promptLength` tokens). */
const newIds = (r: Run, i: number, promptLength: number) => r.result.ids[i].slice(promptLength);

/** The first step >= 3 whose id did not come out earlier (so that it ends the sequence there as EOS), or -1. */
function firstFreshStep(ids: readonly number[]): number {
  for (let step = 3; step < ids.length; step++) if (!ids.slice(0, step).includes(ids[step])) return step;
  return -1;
}

const backend = new CpuBackend();
const genDir = fixture('hf', 'gen-mamba2-2k');
const gen = loadModel(genDir, backend);
const tokenizer = Tokenizer.fromDir(genDir);
const generation = JSON.parse(fs.readFileSync(fixture('hf', 'gen-mamba2-2k', 'generation.json'), 'utf8')) as {
  max_new_tokens: number;
  cases: Array<{ prompt: string; prompt_ids: number[]; greedy_ids: number[]; greedy_text: string }>;
};
const textPrompts = generation.cases.map((c) => c.prompt); // 8, 24 and 11 tokens

const tinyDir = fixture('hf', 'mamba-tiny-0');
const tiny = loadModel(tinyDir, backend);
const tinyGreedy = JSON.parse(fs.readFileSync(fixture('hf', 'mamba-tiny-0', 'greedy.json'), 'utf8')) as {
  prompt: number[][];
  greedy: number[][];
};
const idPrompts = [
  [1, 2, 3],
  tinyGreedy.prompt[0],
  [400, 12, 77, 5, 300, 301, 302, 9, 9, 9, 100, 200, 50, 60, 70, 80, 90, 10, 11, 12, 13],
];

interface Setup {
  name: string;
  model: CausalLM;
  codec: TextCodec | null;
  prompts: Array<string | number[]>;
  promptLengths: number[];
}

const setups: Setup[] = [
  {
    name: 'gen-mamba2-2k, text prompts',
    model: gen,
    codec: tokenizer,
    prompts: textPrompts,
    promptLengths: generation.cases.map((c) => c.prompt_ids.length),
  },
  {
    name: 'mamba-tiny-0, id prompts',
    model: tiny,
    codec: null,
    prompts: idPrompts,
    promptLengths: idPrompts.map((p) => p.length),
  },
];

const sampled: GenerateOptions = { temperature: 1.2, topK: 50, topP: 0.95, repetitionPenalty: 1.3 };

describe('gen-mamba2-2k: greedy and streaming text', { concurrency: true }, () => {
  test('greedy reproduces generation.json; with echo the pieces add up to greedy_text', async () => {
    for (const c of generation.cases) {
      const { pieces, result } = await run(gen, tokenizer, [c.prompt], {
        greedy: true,
        maxNewTokens: generation.max_new_tokens,
        echo: true,
      });
      assert.deepEqual(result.ids[0], c.greedy_ids, c.prompt);
      assert.equal(result.reasons[0], 'length');
      const prompt = pieces.filter((p) => p.prompt);
      assert.deepEqual(
        prompt.map((p) => p.id),
        c.prompt_ids,
        'the prompt is echoed first, one piece per token',
      );
      assert.deepEqual(
        pieces.map((p) => p.id),
        c.greedy_ids,
      );
      assert.equal(pieces.map((p) => p.text).join(''), c.greedy_text);
      assert.equal(tokenizer.decode(result.ids[0]), c.greedy_text);
      const promptText = prompt.map((p) => p.text).join('');
      assert.equal(promptText, c.prompt);
      assert.equal(result.texts[0], c.greedy_text.slice(promptText.length), 'texts hold the new text only');
    }
  });

  test('an EOS id inside the prompt is read as text like any other prompt id', async () => {
    const c = generation.cases[1]; // ends with 🐍, whose last byte is token 237
    const eos = c.prompt_ids.at(-1)!;
    const { pieces, result } = await run(gen, tokenizer, [c.prompt], {
      greedy: true,
      maxNewTokens: 30,
      eosTokenIds: [eos],
      echo: true,
    });
    const step = c.greedy_ids.indexOf(eos, c.prompt_ids.length) - c.prompt_ids.length; // 237 again, at step 3
    assert.equal(result.reasons[0], 'eos');
    assert.deepEqual(result.ids[0], c.greedy_ids.slice(0, c.prompt_ids.length + step + 1));
    const echoed = pieces.filter((p) => p.prompt);
    assert.equal(echoed.map((p) => p.text).join(''), c.prompt);
    assert.equal(pieces.map((p) => p.text).join(''), tokenizer.decode(result.ids[0].slice(0, -1)));
    assert.equal(result.texts[0], tokenizer.decode(result.ids[0].slice(0, -1)).slice(c.prompt.length));
    assert.ok(!result.texts[0].startsWith('\uFFFD'), JSON.stringify(result.texts[0]));
  });

  test('sampled runs: the pieces with echo add up to tokenizer.decode(all ids), without echo to the text', async () => {
    let replacements = 0;
    for (let seed = 0; seed < 6; seed++) {
      const options = { temperature: 1.5, seed, maxNewTokens: 40, eosTokenIds: [] };
      const echoed = await run(gen, tokenizer, textPrompts, { ...options, echo: true });
      const plain = await run(gen, tokenizer, textPrompts, options);
      assert.deepEqual(plain.result.ids, echoed.result.ids, 'echo changes nothing but the pieces');
      for (let i = 0; i < textPrompts.length; i++) {
        const all = echoed.pieces.filter((p) => p.sequence === i);
        const decoded = tokenizer.decode(echoed.result.ids[i]);
        assert.equal(all.map((p) => p.text).join(''), decoded, `seed ${seed}, sequence ${i}`);
        assert.equal(sequence(plain, i).streamedText, plain.result.texts[i]);
        replacements += decoded.split('\uFFFD').length - 1;
      }
    }
    // Byte-level BPE at temperature 1.5 splits characters across tokens: the held-back path ran.
    assert.ok(replacements > 0, 'some runs should hold partial UTF-8 characters');
  });
});

for (const setup of setups) {
  const { model, codec, prompts, promptLengths } = setup;

  describe(setup.name, { concurrency: true }, () => {
    test('top-k 1 (temperature 1) is greedy, with and without a repetition penalty', async () => {
      for (const repetitionPenalty of [1, 1.3]) {
        const common = { maxNewTokens: 30, eosTokenIds: [], repetitionPenalty };
        const greedy = await run(model, codec, prompts, { ...common, greedy: true });
        for (const seed of [0, 11]) {
          const topK1 = await run(model, codec, prompts, { ...common, topK: 1, temperature: 1, seed });
          assert.deepEqual(topK1.result.ids, greedy.result.ids, `penalty ${repetitionPenalty}, seed ${seed}`);
          assert.deepEqual(topK1.result.texts, greedy.result.texts);
        }
      }
    });

    test('the same seed reproduces a sampled run exactly; another seed gives another one', async () => {
      const options = { ...sampled, maxNewTokens: 30, eosTokenIds: [] };
      const a = await run(model, codec, prompts, { ...options, seed: 7 });
      const b = await run(model, codec, prompts, { ...options, seed: 7 });
      const c = await run(model, codec, prompts, { ...options, seed: 8 });
      assert.deepEqual(b.result.ids, a.result.ids);
      assert.deepEqual(b.result.texts, a.result.texts);
      assert.deepEqual(
        b.pieces.map((p) => [p.sequence, p.id, p.text]),
        a.pieces.map((p) => [p.sequence, p.id, p.text]),
      );
      for (let i = 0; i < prompts.length; i++) {
        assert.notDeepEqual(newIds(c, i, promptLengths[i]), newIds(a, i, promptLengths[i]), `sequence ${i}`);
      }
      const greedy = await run(model, codec, prompts, { greedy: true, maxNewTokens: 30, eosTokenIds: [] });
      assert.notDeepEqual(a.result.ids, greedy.result.ids, 'sampling is not greedy');
    });

    test('an EOS id ends the sequence: it is the last of `ids`, and not in the text', async () => {
      let tested = 0;
      for (const mode of [{ greedy: true }, { ...sampled, seed: 3 }] as GenerateOptions[]) {
        for (const [i, prompt] of prompts.entries()) {
          const common = { ...mode, eosTokenIds: [] as number[] };
          const free = await run(model, codec, [prompt], { ...common, maxNewTokens: 30 });
          const ids = newIds(free, 0, promptLengths[i]);
          const step = firstFreshStep(ids);
          if (step < 0) continue; // greedy on mamba-tiny-0 soon repeats one token
          tested++;
          const eos = ids[step];
          const stopped = await run(model, codec, [prompt], {
            ...common,
            eosTokenIds: [eos],
            maxNewTokens: 30,
          });
          const got = sequence(stopped, 0);
          assert.equal(got.reason, 'eos');
          assert.deepEqual(got.ids, free.result.ids[0].slice(0, promptLengths[i] + step + 1));
          assert.equal(got.ids.at(-1), eos, 'the EOS id is kept in ids');
          // The EOS piece is streamed; its text is only what was held back (an unfinished character).
          assert.deepEqual(got.streamedIds, ids.slice(0, step + 1));
          // The text is that of the tokens before EOS, as a run cut there by length gives it.
          const before = await run(model, codec, [prompt], { ...common, maxNewTokens: step });
          assert.deepEqual(before.result.ids[0], got.ids.slice(0, -1));
          assert.equal(got.text, before.result.texts[0]);
          assert.equal(got.streamedText, got.text);
          if (codec)
            assert.equal(tokenizer.decode(got.ids.slice(0, -1)), tokenizer.decode(before.result.ids[0]));
        }
      }
      assert.ok(tested >= 3, `tested ${tested} prompts`);
    });

    test("without eosTokenIds the model's eos_token_id ends a sequence", async () => {
      const eos = model.config.eosTokenId!;
      assert.equal(eos, 0);
      // Hot sampled runs (16 seeds at once: sequence i uses seed i) until one draws it; that run
      // with the default stops ends there.
      const options = { temperature: 4, maxNewTokens: 150 };
      const copies = Array.from({ length: 16 }, () => prompts[0]);
      for (let first = 0; first < 64; first += copies.length) {
        const free = await run(model, codec, copies, { ...options, seed: first, eosTokenIds: [] });
        const seq = free.result.ids.findIndex((_, i) => newIds(free, i, promptLengths[0]).includes(eos));
        if (seq < 0) continue;
        const at = newIds(free, seq, promptLengths[0]).indexOf(eos);
        const byDefault = await run(model, codec, [prompts[0]], { ...options, seed: first + seq });
        assert.equal(byDefault.result.reasons[0], 'eos');
        assert.deepEqual(byDefault.result.ids[0], free.result.ids[seq].slice(0, promptLengths[0] + at + 1));
        return;
      }
      assert.fail('no seed drew the EOS id');
    });

    for (const mode of ['greedy', 'sampled'] as const) {
      test(`a batch of 3 prompts of different lengths equals each run alone (${mode}), finishing at different steps`, async () => {
        const seed = 21;
        const base: GenerateOptions =
          mode === 'greedy' ? { greedy: true, maxNewTokens: 25 } : { ...sampled, seed, maxNewTokens: 25 };
        assert.equal(new Set(promptLengths).size, 3, 'the prompts differ in length');
        const alone = (i: number, options: GenerateOptions) =>
          run(model, codec, [prompts[i]], { ...options, seed: seed + i });
        const free = await Promise.all(prompts.map((_, i) => alone(i, { ...base, eosTokenIds: [] })));
        const freeIds = free.map((r, i) => newIds(r, 0, promptLengths[i]));
        // Sequence 0 ends on an EOS id seen in no other sequence; sequence 1 on a stop string (text)
        // or another EOS id (ids only); sequence 2 runs to maxNewTokens.
        const candidates: GenerateOptions[] = [];
        for (let step = codec ? 3 : 1; step < 15; step++) {
          const eos0 = freeIds[0][step];
          if (
            freeIds[0].slice(0, step).includes(eos0) ||
            freeIds[1].includes(eos0) ||
            freeIds[2].includes(eos0)
          )
            continue;
          if (codec) {
            const texts = free.map((r) => r.result.texts[0]);
            for (let at = 4; at + 3 <= texts[1].length; at++) {
              const stop = texts[1].slice(at, at + 3);
              if (texts[1].indexOf(stop) !== at || texts[0].includes(stop) || texts[2].includes(stop))
                continue;
              candidates.push({ ...base, eosTokenIds: [eos0], stop: [stop, 'never appears'] });
            }
          } else {
            for (let step1 = 1; step1 < 20; step1++) {
              const eos1 = freeIds[1][step1];
              if (freeIds[1].slice(0, step1).includes(eos1) || freeIds[0].includes(eos1)) continue;
              if (freeIds[2].includes(eos1)) continue;
              candidates.push({ ...base, eosTokenIds: [eos0, eos1] });
            }
          }
        }
        let chosen: { options: GenerateOptions; runs: Run[] } | null = null;
        for (const options of candidates) {
          const runs = await Promise.all(prompts.map((_, i) => alone(i, options)));
          const lengths = runs.map((r, i) => newIds(r, 0, promptLengths[i]).length);
          const reasons = runs.map((r) => r.result.reasons[0]);
          const want = codec ? ['eos', 'stop', 'length'] : ['eos', 'eos', 'length'];
          if (new Set(lengths).size === 3 && JSON.stringify(reasons) === JSON.stringify(want)) {
            chosen = { options, runs };
            break;
          }
        }
        assert.ok(chosen, 'found stop conditions that end the sequences at three different steps');
        const { options, runs } = chosen;
        const batch = await run(model, codec, prompts, { ...options, seed });
        for (let i = 0; i < prompts.length; i++) {
          assert.deepEqual(sequence(batch, i), sequence(runs[i], 0), `sequence ${i}`);
        }
        const lengths = batch.result.ids.map((ids, i) => ids.length - promptLengths[i]);
        assert.equal(new Set(lengths).size, 3, `finished at steps ${lengths}`);
        assert.equal(lengths[2], 25);
        assert.equal(batch.result.stats.newTokens, lengths[0] + lengths[1] + lengths[2]);
        // Pieces of the batch come one per live sequence per step, in sequence order.
        let at = 0;
        for (let step = 0; step < 25; step++) {
          const live = lengths.flatMap((n, i) => (step < n ? [i] : []));
          assert.deepEqual(
            batch.pieces.slice(at, at + live.length).map((p) => p.sequence),
            live,
          );
          at += live.length;
        }
        assert.equal(at, batch.pieces.length);
      });
    }

    test('prefill in chunks of 1, 3 and 512 tokens gives identical generations', async () => {
      for (const options of [
        { greedy: true, maxNewTokens: 20 },
        { ...sampled, seed: 4, maxNewTokens: 20 },
      ] as GenerateOptions[]) {
        const [one, three, whole] = await Promise.all(
          [1, 3, 512].map((prefillChunk) => run(model, codec, prompts, { ...options, prefillChunk })),
        );
        for (const other of [one, three]) {
          assert.deepEqual(other.result.ids, whole.result.ids);
          assert.deepEqual(other.result.texts, whole.result.texts);
          assert.deepEqual(other.result.reasons, whole.result.reasons);
          assert.deepEqual(
            other.pieces.map((p) => [p.sequence, p.id, p.text]),
            whole.pieces.map((p) => [p.sequence, p.id, p.text]),
          );
          assert.equal(other.result.stats.promptTokens, whole.result.stats.promptTokens);
        }
      }
    });
  });
}

test('mamba-tiny-0: greedy from ids reproduces greedy.json, with empty texts and pieces', async () => {
  const [prompt] = tinyGreedy.prompt;
  const { pieces, result } = await run(tiny, null, [prompt], {
    greedy: true,
    maxNewTokens: tinyGreedy.greedy[0].length - prompt.length,
    echo: true,
  });
  assert.deepEqual(result.ids[0], tinyGreedy.greedy[0]);
  assert.deepEqual(
    pieces.map((p) => p.id),
    tinyGreedy.greedy[0],
  );
  assert.ok(pieces.every((p) => p.text === ''));
  assert.deepEqual(result.texts, ['']);
});

test('greedy on WebGPU (argmax on the GPU, ids back): mamba-tiny-0 reproduces greedy.json, a batch of 3 the CPU ids', async (t) => {
  const gpu = await webgpuBackend();
  if (typeof gpu === 'string') return t.skip(gpu);
  const onGpu = loadModel(tinyDir, gpu);
  const [prompt] = tinyGreedy.prompt;
  const maxNewTokens = tinyGreedy.greedy[0].length - prompt.length;
  const alone = await run(onGpu, null, [prompt], { greedy: true, maxNewTokens });
  assert.deepEqual(alone.result.ids[0], tinyGreedy.greedy[0]);
  const options = { greedy: true, maxNewTokens: 12, eosTokenIds: [] };
  const batch = await run(onGpu, null, idPrompts, options);
  const onCpu = await run(tiny, null, idPrompts, options);
  assert.deepEqual(batch.result.ids, onCpu.result.ids);
  // Sequences ending at different steps (an EOS that sequence 0 emits as its 4th new token) while
  // the next steps are already in flight (0 to 3 of them after the one being read): the same ids,
  // and final states (last token pending) as the CPU's without any.
  const eosTokenIds = [onCpu.result.ids[0][idPrompts[0].length + 3]];
  const cpuEos = await run(tiny, null, idPrompts, { ...options, eosTokenIds, lookahead: 0 });
  assert.ok(new Set(cpuEos.result.ids.map((ids) => ids.length)).size > 1, 'they end at different steps');
  for (const lookahead of [0, 1, 2, 3]) {
    const gpuEos = await run(onGpu, null, idPrompts, { ...options, eosTokenIds, lookahead });
    assert.deepEqual(gpuEos.result.ids, cpuEos.result.ids, `lookahead ${lookahead}`);
    assert.deepEqual(gpuEos.result.snapshot.rows, cpuEos.result.snapshot.rows);
    gpuEos.result.snapshot.state.layers.forEach((layer, i) => {
      const cpu = cpuEos.result.snapshot.state.layers[i];
      for (const part of ['conv', 'ssm'] as const)
        layer[part].forEach((v, j) => {
          assert.ok(
            Math.abs(v - cpu[part][j]) <= 1e-5 * (1 + Math.abs(cpu[part][j])),
            `lookahead ${lookahead}`,
          );
        });
    });
  }
});

test("generating on WebGPU gives back its states and each step's logits: memory stays flat", async (t) => {
  const gpu = await webgpuBackend();
  if (typeof gpu === 'string') return t.skip(gpu);
  const onGpu = loadModel(tinyDir, gpu);
  // Sampled (logits read every step), greedy (ids only, the next step in flight), sequences
  // finishing at different steps.
  const runs = async (maxNewTokens: number) => {
    await run(onGpu, null, idPrompts, { temperature: 1, seed: 3, eosTokenIds: [], maxNewTokens });
    await run(onGpu, null, idPrompts, { greedy: true, maxNewTokens });
    await run(onGpu, null, idPrompts, { greedy: true, eosTokenIds: [5, 9], maxNewTokens });
    await run(onGpu, null, idPrompts, { temperature: 1, seed: 5, eosTokenIds: [1, 2, 3], maxNewTokens });
  };
  await runs(40); // the pool grows to the shapes these runs use
  const warm = gpu.allocatedBytes();
  await runs(40);
  await runs(60);
  t.diagnostic(`allocated after one round ${warm} bytes, after two more ${gpu.allocatedBytes()}`);
  assert.equal(gpu.allocatedBytes(), warm);
});

describe('gen-mamba2-2k: stop strings', { concurrency: true }, () => {
  const [prompt] = textPrompts;
  const options = { greedy: true, maxNewTokens: 30 };
  const free = run(gen, tokenizer, [prompt], options);

  /** Runs with `stop` and checks the contract against the free run; returns the stopped run. */
  async function stopsAt(stop: string[], expectedOffset: number, expectedTokens: number): Promise<Run> {
    const full = (await free).result.texts[0];
    const stopped = await run(gen, tokenizer, [prompt], { ...options, stop });
    const got = sequence(stopped, 0);
    assert.equal(got.reason, 'stop');
    assert.equal(got.text, full.slice(0, expectedOffset), 'the text is cut before the stop string');
    assert.equal(
      got.streamedText,
      got.text,
      'the stream shows exactly the text (no part of the stop string)',
    );
    assert.equal(
      got.ids.length,
      generation.cases[0].prompt_ids.length + expectedTokens,
      'ends at that token',
    );
    assert.deepEqual(got.ids, (await free).result.ids[0].slice(0, got.ids.length));
    // At every step, what was streamed so far is a prefix of the final text (nothing taken back).
    let shown = '';
    for (const p of stopped.pieces) {
      shown += p.text;
      assert.ok(got.text.startsWith(shown), `streamed ${JSON.stringify(shown)}`);
    }
    return stopped;
  }

  test('a stop string spanning three tokens cuts the text before it and ends the sequence there', async () => {
    const pieces = (await free).pieces.map((p) => p.text);
    const full = pieces.join('');
    // From the middle of token j to the first character of token j + 2.
    let j = 3;
    while (!(pieces[j].length >= 2 && pieces[j + 1].length >= 1 && pieces[j + 2].length >= 1)) j++;
    const offset = pieces.slice(0, j).join('').length + 1;
    const stop = `${pieces[j].slice(1)}${pieces[j + 1]}${pieces[j + 2][0]}`;
    assert.equal(full.indexOf(stop), offset, `stop ${JSON.stringify(stop)} first occurs there`);
    const stopped = await stopsAt([stop], offset, j + 3);
    // Token j's first character was shown at once; the rest waited for the stop string to resolve.
    const shownAt = stopped.pieces.map((p) => p.text);
    assert.equal(shownAt[j], pieces[j][0]);
    assert.equal(shownAt[j + 1], '');
    assert.equal(shownAt[j + 2], '');
  });

  test('the earliest of several stop strings wins; a stop string in one token works too', async () => {
    const pieces = (await free).pieces.map((p) => p.text);
    const full = pieces.join('');
    let j = 5;
    while (pieces[j].length < 3 || full.indexOf(pieces[j]) !== pieces.slice(0, j).join('').length) j++;
    const offset = pieces.slice(0, j).join('').length;
    const later = pieces.slice(j + 4, j + 6).join('');
    assert.ok(full.indexOf(later) > offset);
    await stopsAt([later, pieces[j]], offset, j + 1);
    await stopsAt([pieces[j], later], offset, j + 1);
  });

  test('a partial stop string that never completes is held back, then shown in full', async () => {
    const { pieces, result } = await free;
    const texts = pieces.map((p) => p.text);
    const j = texts.findIndex((t, i) => i >= 2 && t.length >= 2);
    const stop = `${texts[j]}\u0000never`; // a prefix of it appears at token j
    const held = await run(gen, tokenizer, [prompt], { ...options, stop: [stop] });
    assert.equal(held.result.reasons[0], 'length');
    assert.equal(held.result.texts[0], result.texts[0]);
    assert.equal(sequence(held, 0).streamedText, result.texts[0]);
    assert.equal(held.pieces[j].text, '', 'held while it could still become the stop string');
    assert.equal(held.pieces[j + 1].text, texts[j] + texts[j + 1], 'released with the next token');
  });

  test('in a batch a stop string ends only the sequences whose text contains it', async () => {
    const alone = await Promise.all(textPrompts.map((p) => run(gen, tokenizer, [p], options)));
    const texts = alone.map((r) => r.result.texts[0]);
    const stop = texts[2].slice(6, 9);
    assert.ok(!texts[0].includes(stop) && !texts[1].includes(stop));
    const batch = await run(gen, tokenizer, textPrompts, { ...options, stop: [stop] });
    assert.deepEqual(batch.result.reasons, ['length', 'length', 'stop']);
    assert.deepEqual(batch.result.texts, [texts[0], texts[1], texts[2].slice(0, 6)]);
  });

  test('empty stop strings are ignored', async () => {
    const { result } = await run(gen, tokenizer, [prompt], { ...options, stop: [''] });
    assert.deepEqual(result.texts, (await free).result.texts);
  });
});

test('bad arguments are refused with one line', async () => {
  const refuses = async (prompts: Array<string | number[]>, options: GenerateOptions, re: RegExp) =>
    assert.rejects(run(gen, tokenizer, prompts, options), (e: unknown) => {
      assert.ok(e instanceof MambaError, String(e));
      assert.match(e.message, re);
      assert.doesNotMatch(e.message, /\n/);
      return true;
    });
  await refuses(['x'], { maxNewTokens: -1 }, /--max-new-tokens must be an integer >= 0/);
  await refuses(['x'], { maxNewTokens: 2.5 }, /--max-new-tokens must be an integer >= 0/);
  await refuses(['x'], { prefillChunk: 0 }, /--prefill-chunk must be an integer >= 1/);
  await refuses(['x'], { lookahead: -1 }, /lookahead must be an integer from 0 to 8, got -1/);
  await refuses(['x'], { lookahead: 1.5 }, /lookahead must be an integer from 0 to 8, got 1.5/);
  await refuses(['x'], { topP: 0 }, /--top-p must be in \(0, 1\]/);
  await refuses(['x'], { greedy: true, temperature: 0.7 }, /--greedy cannot be combined with --temperature/);
  await refuses([], {}, /no prompts given/);
  await refuses([''], {}, /prompt 0: nothing to read/);
  await assert.rejects(run(tiny, null, ['text'], {}), /a text prompt needs a tokenizer/);
  await assert.rejects(
    run(tiny, null, [[1, 512]], { greedy: true }),
    /token id 512 .* outside the vocabulary/,
  );
});

test('step takes ids on the backend (a step argmax, any shape) and refuses other tensors and a next state of another batch in one line', async () => {
  const state = tiny.newState(2);
  const onHost = await backend.read(tiny.step(Int32Array.from([5, 9]), tiny.newState(2)));
  const onBackend = await backend.read(tiny.step(backend.upload(Int32Array.from([5, 9]), [2, 1]), state));
  assert.deepEqual(onBackend, onHost);
  assert.throws(
    () => tiny.step(backend.upload(Float32Array.from([5, 9]), [2]), state),
    /token ids on the backend must be b·l i32 for 2 sequences, got f32 \[2\]/,
  );
  assert.throws(
    () => tiny.step(backend.upload(Int32Array.from([5, 9, 1]), [3]), state),
    /step: 3 tokens for 2 sequences/,
  );
  assert.throws(
    () => tiny.step(Int32Array.from([5, 9]), state, tiny.newState(3)),
    /step: a next state of 3 sequences for 2/,
  );
});
