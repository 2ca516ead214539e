// Tests for src/generate/sampling.ts: greedy equivalences, seeding, the empirical distribution of
// temperature sampling, the sets top-k / top-p / min-p keep (against a literal transcription of
// transformers' warpers on a 50k vocabulary), the repetition penalty formula, saved generator
// positions, and one error per invalid option.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MambaError } from '../../src/core/errors.ts';
import { Random } from '../../src/core/random.ts';
import {
  applyRepetitionPenalty,
  argmax,
  checkSamplingOptions,
  Sampler,
  type SamplingOptions,
} from '../../src/generate/sampling.ts';

/** Logits whose softmax is `probs`. */
const logitsOf = (probs: number[]) => Float32Array.from(probs, Math.log);

function randomLogits(vocab: number, seed: number, scale = 3): Float32Array {
  const r = new Random(seed);
  return Float32Array.from({ length: vocab }, () => scale * r.normal());
}

/** How often each id comes out of `draws` calls of next(). */
function histogram(sampler: Sampler, logits: Float32Array, draws: number, history: number[] = []): number[] {
  const counts = new Array<number>(logits.length).fill(0);
  for (let i = 0; i < draws; i++) counts[sampler.next(logits, history)]++;
  return counts;
}

const idsSeen = (counts: number[]) => counts.flatMap((c, id) => (c > 0 ? [id] : []));

function softmax(values: number[]): number[] {
  const max = Math.max(...values);
  const e = values.map((v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

/**
 * transformers' Temperature → TopK → TopP → MinP warpers followed by softmax, transcribed literally
 * in float64 (masking with -Infinity, sorting ascending for top-p), except that top-k breaks ties
 * by id as mamba-ts does. Returns the kept ids, ascending, with their probabilities.
 */
function reference(logits: Float32Array, o: SamplingOptions): Map<number, number> {
  const vocab = logits.length;
  let s = Array.from(logits, (x) => x / (o.temperature ?? 1));
  const byScoreDesc = (a: number, b: number) => s[b] - s[a] || a - b;
  const ids = [...Array(vocab).keys()];
  if (o.topK) {
    const kept = new Set(ids.slice().sort(byScoreDesc).slice(0, o.topK));
    s = s.map((v, i) => (kept.has(i) ? v : -Infinity));
  }
  if (o.topP !== undefined && o.topP < 1) {
    const ascending = ids.slice().sort((a, b) => -byScoreDesc(a, b));
    const probs = softmax(ascending.map((i) => s[i]));
    let cum = 0;
    const remove = probs.map((p) => (cum += p) <= 1 - o.topP!);
    remove[vocab - 1] = false;
    ascending.forEach((id, j) => {
      if (remove[j]) s[id] = -Infinity;
    });
  }
  if (o.minP) {
    const probs = softmax(s);
    const top = Math.max(...probs);
    s = s.map((v, i) => (probs[i] < o.minP! * top ? -Infinity : v));
  }
  const probs = softmax(s);
  return new Map(ids.filter((i) => probs[i] > 0).map((i) => [i, probs[i]]));
}

function assertMatchesReference(logits: Float32Array, o: SamplingOptions): void {
  const expected = reference(logits, o);
  const got = new Sampler(o).distribution(logits);
  const gotIds = Array.from(got.ids).sort((a, b) => a - b);
  assert.deepEqual(gotIds, [...expected.keys()], `kept ids for ${JSON.stringify(o)}`);
  got.ids.forEach((id, j) => {
    assert.ok(
      Math.abs(got.probs[j] - expected.get(id)!) < 1e-9,
      `probability of ${id} for ${JSON.stringify(o)}`,
    );
  });
}

test('top-k 1, temperature 0 and a tiny temperature all equal greedy (argmax) on random logits', () => {
  const greedy = new Sampler({ greedy: true });
  const topK1 = new Sampler({ topK: 1, seed: 3 });
  const cold = new Sampler({ temperature: 0, topP: 0.5 });
  const nearlyCold = new Sampler({ temperature: 1e-4, seed: 4 });
  for (let row = 0; row < 200; row++) {
    const logits = randomLogits(1000, row);
    const expected = argmax(logits);
    assert.equal(greedy.next(logits, []), expected);
    assert.equal(topK1.next(logits, []), expected);
    assert.equal(cold.next(logits, []), expected);
    assert.equal(nearlyCold.next(logits, []), expected);
  }
  // On ties top-k 1 takes the first, as argmax does.
  const tied = Float32Array.of(0, 2, 1, 2);
  assert.equal(new Sampler({ topK: 1 }).next(tied, []), 1);
  assert.equal(argmax(tied), 1);
});

test('the same seed gives the same draws, another seed other draws, and samplers do not share state', () => {
  const logits = randomLogits(100, 7, 0.5);
  const run = (seed: number) => {
    const s = new Sampler({ seed, temperature: 1.3 });
    return Array.from({ length: 40 }, () => s.next(logits, []));
  };
  assert.deepEqual(run(42), run(42));
  assert.notDeepEqual(run(42), run(43));
  // Interleaving two samplers leaves each one's sequence as if it ran alone.
  const a = new Sampler({ seed: 42, temperature: 1.3 });
  const b = new Sampler({ seed: 43, temperature: 1.3 });
  const interleaved: number[][] = [[], []];
  for (let i = 0; i < 40; i++) {
    interleaved[0].push(a.next(logits, []));
    interleaved[1].push(b.next(logits, []));
    b.next(logits, []); // b draws twice as often
  }
  assert.deepEqual(interleaved[0], run(42));
  // No seed means seed 0.
  assert.deepEqual(
    run(0),
    (() => {
      const s = new Sampler({ temperature: 1.3 });
      return Array.from({ length: 40 }, () => s.next(logits, []));
    })(),
  );
});

test('draws follow softmax(logits / T) (chi-square over 20000 draws)', () => {
  const logits = Float32Array.of(1, 0.5, -0.3, 2, 0, -1.5);
  for (const temperature of [0.5, 1, 2.5]) {
    const draws = 20000;
    const counts = histogram(new Sampler({ temperature, seed: 11 }), logits, draws);
    const expected = softmax(Array.from(logits, (x) => x / temperature)).map((p) => p * draws);
    const chi2 = counts.reduce((sum, c, i) => sum + (c - expected[i]) ** 2 / expected[i], 0);
    assert.ok(chi2 < 25, `chi-square ${chi2.toFixed(2)} (5 degrees of freedom) at T=${temperature}`);
  }
});

test('top-k only ever returns the k largest, and each of them', () => {
  const logits = randomLogits(50, 5, 0.3);
  const largest = Array.from(logits.keys())
    .sort((a, b) => logits[b] - logits[a])
    .slice(0, 5)
    .sort((a, b) => a - b);
  const counts = histogram(new Sampler({ topK: 5, temperature: 2, seed: 1 }), logits, 5000);
  assert.deepEqual(idsSeen(counts), largest);
  // Equal logits at the k-th place: the lower id is kept.
  const tied = Float32Array.of(1, 3, 2, 2, 2, 0);
  assert.deepEqual(Array.from(new Sampler({ topK: 2 }).distribution(tied).ids), [1, 2]);
  assert.deepEqual(Array.from(new Sampler({ topK: 4 }).distribution(tied).ids), [1, 2, 3, 4]);
  // k at or beyond the vocabulary keeps everything.
  assert.equal(new Sampler({ topK: 6 }).distribution(tied).ids.length, 6);
  assert.equal(new Sampler({ topK: 1000 }).distribution(tied).ids.length, 6);
});

test('top-p keeps the smallest most likely set that reaches top_p', () => {
  const logits = logitsOf([0.5, 0.3, 0.15, 0.05]);
  const seen = (topP: number) => idsSeen(histogram(new Sampler({ topP, seed: 2 }), logits, 3000));
  assert.deepEqual(seen(0.8), [0, 1]);
  assert.deepEqual(seen(0.81), [0, 1, 2]);
  assert.deepEqual(seen(0.95), [0, 1, 2]);
  assert.deepEqual(seen(0.96), [0, 1, 2, 3]);
  assert.deepEqual(seen(0.3), [0]);
  assert.deepEqual(seen(1), [0, 1, 2, 3]);
  // Every boundary case of four probabilities in steps of 0.05: top_p equal to the sum of the k most
  // likely keeps exactly those k, although float32 logits make the sums land on either side.
  for (let a = 1; a < 20; a++)
    for (let b = 1; b <= a; b++)
      for (let c = 1; c <= b && a + b + c < 20; c++) {
        const probs = [a, b, c, 20 - a - b - c].map((x) => x / 20);
        if (probs[3] > probs[2]) continue;
        for (let k = 1; k < 4; k++) {
          if (probs[k] === probs[k - 1]) continue; // ties are covered below
          const topP = Number(
            probs
              .slice(0, k)
              .reduce((x, y) => x + y)
              .toFixed(2),
          );
          const kept = new Sampler({ topP }).distribution(logitsOf(probs)).ids;
          assert.deepEqual(Array.from(kept), [0, 1, 2].slice(0, k), `${probs} with top-p ${topP}`);
        }
      }
  // The kept probabilities are renormalised.
  const d = new Sampler({ topP: 0.8 }).distribution(logits);
  assert.deepEqual(Array.from(d.ids), [0, 1]);
  assert.ok(Math.abs(d.probs[0] - 0.625) < 1e-6 && Math.abs(d.probs[1] - 0.375) < 1e-6);
  // Order in the vocabulary does not matter; equal probabilities keep the lower id.
  const shuffled = logitsOf([0.05, 0.3, 0.15, 0.5]);
  assert.deepEqual(Array.from(new Sampler({ topP: 0.8 }).distribution(shuffled).ids), [3, 1]);
  const tied = logitsOf([0.2, 0.4, 0.2, 0.2]);
  assert.deepEqual(Array.from(new Sampler({ topP: 0.5 }).distribution(tied).ids), [1, 0]);
});

test('min-p keeps the tokens with p >= min_p * p_max', () => {
  const logits = logitsOf([0.5, 0.3, 0.15, 0.05]);
  const seen = (minP: number) => idsSeen(histogram(new Sampler({ minP, seed: 3 }), logits, 3000));
  assert.deepEqual(seen(0.05), [0, 1, 2, 3]);
  assert.deepEqual(seen(0.25), [0, 1, 2]);
  assert.deepEqual(seen(0.5), [0, 1]);
  assert.deepEqual(seen(0.7), [0]);
  // The same with a temperature: p_i / p_max = exp((l_i - l_max) / T).
  const warm = new Sampler({ minP: 0.5, temperature: 2 }).distribution(logits);
  assert.deepEqual(
    Array.from(warm.ids),
    [0, 1, 2, 3].filter((i) => Math.sqrt([0.5, 0.3, 0.15, 0.05][i] / 0.5) >= 0.5),
  );
});

test('temperature, top-k, top-p and min-p match transformers warpers on a 50k vocabulary', () => {
  const logits = randomLogits(50_000, 9, 2.5);
  const cases: SamplingOptions[] = [
    { temperature: 0.7 },
    { topK: 40 },
    { topK: 40, temperature: 1.8 },
    { topK: 3000, topP: 0.9 },
    { topP: 0.9 },
    { topP: 0.5, temperature: 0.6 },
    { topP: 0.99, temperature: 3 },
    { topP: 0.01 },
    { minP: 0.05 },
    { minP: 0.1, temperature: 1.5 },
    { topK: 50, topP: 0.95, minP: 0.05, temperature: 0.8 },
    { topP: 0.9, minP: 0.02, temperature: 1.2 },
  ];
  for (const o of cases) assertMatchesReference(logits, o);
  // A flat distribution (everything in one bucket of the top-p candidate search).
  const flat = randomLogits(50_000, 10, 1e-3);
  assertMatchesReference(flat, { topP: 0.3 });
  assertMatchesReference(flat, { topK: 100, topP: 0.3 });
});

test('repetition penalty follows transformers: divide positive, multiply negative logits, once per id', () => {
  const logits = Float32Array.of(2, -1, 0.5, -3, 1, 0);
  const penalized = applyRepetitionPenalty(logits, [0, 1, 1, 4, 5, 0], 2);
  assert.deepEqual(Array.from(penalized), [1, -2, 0.5, -3, 0.5, 0]);
  assert.deepEqual(Array.from(logits), [2, -1, 0.5, -3, 1, 0]); // input untouched
  // In place, repeated ids are still penalised once.
  const inPlace = Float32Array.of(2, -1);
  applyRepetitionPenalty(inPlace, [0, 0, 1, 1, 1], 2, inPlace);
  assert.deepEqual(Array.from(inPlace), [1, -2]);
  // A penalty below 1 rewards repeats.
  assert.deepEqual(Array.from(applyRepetitionPenalty(Float32Array.of(2, -1), [0, 1], 0.5)), [4, -0.5]);

  // It changes greedy's choice when it should, for positive and for negative logits.
  const greedy = new Sampler({ greedy: true, repetitionPenalty: 1.5 });
  const positive = Float32Array.of(3, 2.5, 0);
  assert.equal(greedy.next(positive, []), 0);
  assert.equal(greedy.next(positive, [0]), 1); // 3 / 1.5 = 2 < 2.5
  assert.equal(greedy.next(positive, [2, 2]), 0); // penalising a zero logit changes nothing
  const negative = Float32Array.of(-1, -1.2);
  assert.equal(greedy.next(negative, [0]), 1); // -1 * 1.5 = -1.5 < -1.2
  assert.equal(new Sampler({ greedy: true, repetitionPenalty: 1.1 }).next(positive, [0]), 0); // 2.73 > 2.5
  assert.deepEqual(Array.from(positive), [3, 2.5, 0]);
  // And sampling sees the penalised logits.
  const d = new Sampler({ repetitionPenalty: 2 }).distribution(Float32Array.of(2, 2), Int32Array.of(0));
  const expected = softmax([2, 1]);
  assert.deepEqual(Array.from(d.ids), [1, 0]);
  assert.ok(Math.abs(d.probs[0] - expected[0]) < 1e-12 && Math.abs(d.probs[1] - expected[1]) < 1e-12);
  assert.throws(
    () => greedy.next(positive, [3]),
    /token id 3 in the sequence is outside the model's vocabulary/,
  );
});

test('saveState / restoreState continue the same draws', () => {
  const logits = randomLogits(200, 12, 0.5);
  const whole = new Sampler({ seed: 5 });
  const all = Array.from({ length: 30 }, () => whole.next(logits, []));
  const first = new Sampler({ seed: 5 });
  for (let i = 0; i < 12; i++) first.next(logits, []);
  assert.deepEqual(first.saveState(), [5, 12]);
  const resumed = new Sampler({ seed: 99 });
  resumed.restoreState(JSON.parse(JSON.stringify(first.saveState())));
  assert.deepEqual(
    Array.from({ length: 18 }, () => resumed.next(logits, [])),
    all.slice(12),
  );
  assert.throws(() => resumed.restoreState([5, -1]), MambaError);
  assert.throws(() => resumed.restoreState([5]), MambaError);
});

test('checkSamplingOptions fills in defaults and makes temperature 0 greedy', () => {
  assert.deepEqual(checkSamplingOptions({}), {
    greedy: false,
    temperature: 1,
    topK: 0,
    topP: 1,
    minP: 0,
    repetitionPenalty: 1,
    seed: 0,
  });
  assert.deepEqual(checkSamplingOptions({ temperature: 0, topK: 5, repetitionPenalty: 1.2, seed: 7 }), {
    greedy: true,
    temperature: 1,
    topK: 0,
    topP: 1,
    minP: 0,
    repetitionPenalty: 1.2,
    seed: 7,
  });
  // Neutral values go with --greedy.
  const neutral = {
    greedy: true,
    temperature: 1,
    topK: 0,
    topP: 1,
    minP: 0,
    repetitionPenalty: 1.3,
    seed: 1,
  };
  assert.deepEqual(checkSamplingOptions(neutral), neutral);
  assert.equal(checkSamplingOptions({ greedy: true, temperature: 0 }).greedy, true);
});

test('every invalid option gives a one-line error naming it', () => {
  const cases: Array<[SamplingOptions, string]> = [
    [{ topP: 0 }, '--top-p must be in (0, 1], got 0'],
    [{ topP: 1.5 }, '--top-p must be in (0, 1], got 1.5'],
    [{ topP: Number.NaN }, '--top-p must be in (0, 1], got NaN'],
    [{ temperature: -1 }, '--temperature must be a finite number >= 0 (0 means greedy), got -1'],
    [
      { temperature: Number.POSITIVE_INFINITY },
      '--temperature must be a finite number >= 0 (0 means greedy), got Infinity',
    ],
    [{ topK: -1 }, '--top-k must be an integer >= 1 (or 0 for off), got -1'],
    [{ topK: 2.5 }, '--top-k must be an integer >= 1 (or 0 for off), got 2.5'],
    [{ minP: 1 }, '--min-p must be in [0, 1), got 1'],
    [{ minP: -0.1 }, '--min-p must be in [0, 1), got -0.1'],
    [{ repetitionPenalty: 0 }, '--repetition-penalty must be a finite number > 0 (1 for off), got 0'],
    [{ repetitionPenalty: -2 }, '--repetition-penalty must be a finite number > 0 (1 for off), got -2'],
    [{ seed: 1.5 }, '--seed must be an integer in [0, 4294967295], got 1.5'],
    [{ seed: -1 }, '--seed must be an integer in [0, 4294967295], got -1'],
    [{ seed: 2 ** 32 }, '--seed must be an integer in [0, 4294967295], got 4294967296'],
    [
      { greedy: true, topK: 5 },
      '--greedy cannot be combined with --top-k 5 (greedy always takes the most likely token)',
    ],
    [
      { greedy: true, topK: 1 },
      '--greedy cannot be combined with --top-k 1 (greedy always takes the most likely token)',
    ],
    [
      { greedy: true, temperature: 0.7 },
      '--greedy cannot be combined with --temperature 0.7 (greedy always takes the most likely token)',
    ],
    [
      { greedy: true, topP: 0.9 },
      '--greedy cannot be combined with --top-p 0.9 (greedy always takes the most likely token)',
    ],
    [
      { greedy: true, minP: 0.1 },
      '--greedy cannot be combined with --min-p 0.1 (greedy always takes the most likely token)',
    ],
    [{ topK: '5' as unknown as number }, '--top-k must be a number, got "5"'],
    [{ greedy: 'yes' as unknown as boolean }, '--greedy must be true or false, got "yes"'],
  ];
  for (const [options, message] of cases) {
    for (const check of [() => checkSamplingOptions(options), () => new Sampler(options)]) {
      assert.throws(check, (e: unknown) => {
        assert.ok(e instanceof MambaError, `${JSON.stringify(options)} throws a MambaError`);
        assert.equal(e.message, message);
        assert.ok(!e.message.includes('\n'));
        return true;
      });
    }
  }
});
