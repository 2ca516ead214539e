// Choosing the next token from one row of logits, with the logits processors and warpers of
// transformers' generate() in its order: repetition penalty (also for greedy) → temperature →
// top-k → top-p → min-p → softmax → one draw from a seeded generator (inverse CDF over the kept
// tokens, in float64). Each Sampler owns its generator, so sequences with their own seeds are
// independent of each other and of how their steps interleave.
//
// Choices made here, where transformers differs or says nothing:
// - temperature 0 means greedy (transformers refuses it when sampling); --top-k/--top-p/--min-p
//   are then no-ops, as they are in the limit temperature → 0+ (the most likely token survives
//   every filter). --greedy itself refuses any non-neutral sampling option.
// - top-k keeps exactly k tokens; on equal logits the lower id wins (transformers keeps every token
//   tied with the k-th). So top-k 1 is always argmax (first on ties), as greedy is.
// - top-p keeps the smallest set of most likely tokens (lower id first on ties) whose probability
//   reaches top_p, always at least one; the sum is compared with top_p − 1e-6 so that hand-made
//   probabilities exactly on the boundary behave as written despite float32 logits.
// - probabilities are computed in float64 from the float32 logits; the penalised logits are
//   rounded to float32, as transformers' float32 scores are.
// - without a seed the seed is 0: runs are reproducible unless the caller passes another seed.
// - every sampling step consumes exactly one uniform draw, whatever the filters keep, so the
//   generator's position is the number of sampled tokens (saveState/restoreState rely on it).
// Cost per token on a 50k vocabulary is a few passes over the logits: top-k keeps a size-k heap,
// top-p alone sorts only the tokens near its cut (bucketed by logit first), min-p sorts nothing.
// Left out: transformers' other processors (no_repeat_ngram, typical, epsilon, eta, bad words,
// forced tokens, min length, ...), beam search, and defaults from a model's generation_config.json
// (transformers samples with top_k 50 unless told otherwise; here nothing is on unless asked).
// Logits are expected to be free of NaN.

import { fail } from '../core/errors.ts';
import { Random } from '../core/random.ts';

export interface SamplingOptions {
  /** Always take the most likely token; the sampling options must then be absent or neutral. */
  greedy?: boolean;
  /** > 0 divides the logits; 0 means greedy. Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens; integer >= 1, 0 = off (default). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches top_p; in (0, 1], 1 = off (default). */
  topP?: number;
  /** Keep the tokens with probability >= min_p × the largest; in [0, 1), 0 = off (default). */
  minP?: number;
  /** > 0; divides positive and multiplies negative logits of every id already in the sequence; 1 = off (default). */
  repetitionPenalty?: number;
  /** Integer in [0, 2^32 − 1]; the same seed gives the same choices. Default 0. */
  seed?: number;
}

/** Sampling options after checking: every field present; greedy (by --greedy or temperature 0) sets the filters neutral. */
export type CheckedSamplingOptions = Required<SamplingOptions>;

export const DEFAULT_SEED = 0;

/** Index of the largest value in row `row` of a (rows, width) array (first one on ties). */
export function argmax(values: Float32Array, row = 0, width = values.length): number {
  let best = row * width;
  for (let i = best + 1; i < (row + 1) * width; i++) if (values[i] > values[best]) best = i;
  return best - row * width;
}
const TOP_P_TOLERANCE = 1e-6;
const BUCKETS_PER_NAT = 16; // top-p without top-k: buckets 1/16 nat (after temperature) wide,
const BUCKETS = 64 * BUCKETS_PER_NAT; // down to 64 nats below the largest logit (the last takes the rest)
const ID_SPAN = 2 ** 21; // vocabularies up to this size sort through packed float64 keys

/** Checks sampling options (flags named as on the command line) and fills in the defaults. */
export function checkSamplingOptions(o: SamplingOptions = {}): CheckedSamplingOptions {
  const greedy = o.greedy ?? false;
  if (typeof greedy !== 'boolean') fail(`--greedy must be true or false, got ${show(greedy)}`);
  const temperature = numberOption('--temperature', o.temperature, 1);
  if (!(Number.isFinite(temperature) && temperature >= 0))
    fail(`--temperature must be a finite number >= 0 (0 means greedy), got ${temperature}`);
  const topK = numberOption('--top-k', o.topK, 0);
  if (!(Number.isSafeInteger(topK) && topK >= 0))
    fail(`--top-k must be an integer >= 1 (or 0 for off), got ${topK}`);
  const topP = numberOption('--top-p', o.topP, 1);
  if (!(topP > 0 && topP <= 1)) fail(`--top-p must be in (0, 1], got ${topP}`);
  const minP = numberOption('--min-p', o.minP, 0);
  if (!(minP >= 0 && minP < 1)) fail(`--min-p must be in [0, 1), got ${minP}`);
  const repetitionPenalty = numberOption('--repetition-penalty', o.repetitionPenalty, 1);
  if (!(Number.isFinite(repetitionPenalty) && repetitionPenalty > 0))
    fail(`--repetition-penalty must be a finite number > 0 (1 for off), got ${repetitionPenalty}`);
  const seed = numberOption('--seed', o.seed, DEFAULT_SEED);
  if (!(Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff))
    fail(`--seed must be an integer in [0, 4294967295], got ${seed}`);
  if (greedy) {
    const clash: Array<[string, number, boolean]> = [
      ['--temperature', temperature, temperature === 1 || temperature === 0],
      ['--top-k', topK, topK === 0],
      ['--top-p', topP, topP === 1],
      ['--min-p', minP, minP === 0],
    ];
    for (const [flag, value, neutral] of clash)
      if (!neutral)
        fail(`--greedy cannot be combined with ${flag} ${value} (greedy always takes the most likely token)`);
  }
  if (greedy || temperature === 0)
    return { greedy: true, temperature: 1, topK: 0, topP: 1, minP: 0, repetitionPenalty, seed };
  return { greedy: false, temperature, topK, topP, minP, repetitionPenalty, seed };
}

function numberOption(flag: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number') fail(`${flag} must be a number, got ${show(value)}`);
  return value;
}

function show(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

/**
 * transformers' RepetitionPenaltyLogitsProcessor: every id in `history` (each once, however often
 * it occurs) gets logit < 0 ? logit × penalty : logit / penalty. Returns `out` (a new array by
 * default; may be `scores` itself to work in place).
 */
export function applyRepetitionPenalty(
  scores: Float32Array,
  history: ArrayLike<number>,
  penalty: number,
  out: Float32Array = new Float32Array(scores.length),
): Float32Array {
  const vocab = scores.length;
  if (out !== scores) out.set(scores);
  // Read every id's original logit from `scores` before writing, so repeated ids are penalised once
  // even when working in place.
  const ids: number[] = [];
  const values: number[] = [];
  for (let i = 0; i < history.length; i++) {
    const id = history[i];
    if (!(Number.isInteger(id) && id >= 0 && id < vocab))
      fail(`token id ${id} in the sequence is outside the model's vocabulary (0 to ${vocab - 1})`);
    const x = scores[id];
    ids.push(id);
    values.push(x < 0 ? x * penalty : x / penalty);
  }
  for (let i = 0; i < ids.length; i++) out[ids[i]] = values[i];
  return out;
}

/** The tokens that the sampler may pick next, most likely first, with their probabilities. */
export interface NextTokenDistribution {
  ids: Int32Array;
  probs: Float64Array;
}

/** Picks next tokens for one sequence; holds its own seeded generator. */
export class Sampler {
  readonly options: CheckedSamplingOptions;
  private random: Random;
  private draws = 0;
  private penalized = new Float32Array(0);
  private ids = new Int32Array(0);
  private weights = new Float64Array(0);
  private buckets = new Uint16Array(0);
  private tokenWeights = new Float64Array(0);
  private bucketMass = new Float64Array(BUCKETS);
  private keys = new Float64Array(0);

  constructor(options: SamplingOptions = {}) {
    this.options = checkSamplingOptions(options);
    this.random = new Random(this.options.seed);
  }

  /**
   * Picks the next id from one row of logits (length vocab), given every id of the sequence so far
   * (prompt and generated, for the repetition penalty). `logits` is not modified.
   */
  next(logits: Float32Array, history: ArrayLike<number> = []): number {
    const scores = this.scores(logits, history);
    if (this.options.greedy) return argmax(scores);
    const n = this.keep(scores);
    const ids = this.ids;
    const weights = this.weights;
    let total = 0;
    for (let i = 0; i < n; i++) total += weights[i];
    const u = this.random.uniform() * total;
    this.draws++;
    let acc = 0;
    let last = ids[0];
    for (let i = 0; i < n; i++) {
      if (weights[i] === 0) continue;
      acc += weights[i];
      last = ids[i];
      if (u < acc) return last;
    }
    return last; // only reached through rounding
  }

  /**
   * The distribution that `next` would draw from, most likely first (lower id on ties); greedy gives
   * the argmax with probability 1. Draws nothing.
   */
  distribution(logits: Float32Array, history: ArrayLike<number> = []): NextTokenDistribution {
    const scores = this.scores(logits, history);
    if (this.options.greedy) return { ids: Int32Array.of(argmax(scores)), probs: Float64Array.of(1) };
    const n = this.keep(scores);
    let total = 0;
    for (let i = 0; i < n; i++) total += this.weights[i];
    const kept: Array<[number, number]> = [];
    for (let i = 0; i < n; i++) if (this.weights[i] > 0) kept.push([this.ids[i], this.weights[i] / total]);
    kept.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
    return { ids: Int32Array.from(kept, (k) => k[0]), probs: Float64Array.from(kept, (k) => k[1]) };
  }

  /** The generator's position, [seed, draws so far], for a state snapshot. */
  saveState(): number[] {
    return [this.options.seed, this.draws];
  }

  /** Continues from a position given by saveState (of this or another sampler). */
  restoreState(state: readonly number[]): void {
    const [seed, draws] = state;
    if (
      state.length !== 2 ||
      !(Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff) ||
      !(Number.isSafeInteger(draws) && draws >= 0)
    )
      fail(`sampler state must be [seed, draws] (two integers >= 0), got ${JSON.stringify(state)}`);
    this.random = new Random(seed);
    for (let i = 0; i < draws; i++) this.random.uniform();
    this.draws = draws;
  }

  /** The logits after the repetition penalty (the input itself when there is none). */
  private scores(logits: Float32Array, history: ArrayLike<number>): Float32Array {
    if (logits.length === 0) throw new RangeError('Sampler: empty logits');
    const penalty = this.options.repetitionPenalty;
    if (penalty === 1 || history.length === 0) return logits;
    if (this.penalized.length !== logits.length) this.penalized = new Float32Array(logits.length);
    return applyRepetitionPenalty(logits, history, penalty, this.penalized);
  }

  /**
   * Applies temperature, top-k, top-p and min-p: fills this.ids / this.weights with the kept tokens
   * and their unnormalised probabilities exp((logit − max) / T) (zero for tokens that min-p drops
   * where they were not sorted), and returns how many entries there are.
   */
  private keep(scores: Float32Array): number {
    const vocab = scores.length;
    const { temperature: t, topK, topP, minP } = this.options;
    if (this.ids.length < vocab) {
      this.ids = new Int32Array(vocab);
      this.weights = new Float64Array(vocab);
    }
    const ids = this.ids;
    const weights = this.weights;
    const best = argmax(scores);
    const max = scores[best];
    if (!Number.isFinite(max)) {
      // +Infinity dominates; all -Infinity leaves nothing to weigh: take the argmax.
      ids[0] = best;
      weights[0] = 1;
      return 1;
    }
    let n: number;
    let sorted = true;
    if (topK > 0 && topK < vocab) {
      n = this.selectTopK(scores, topK);
      let mass = 0; // top-p measures against the mass that top-k kept, as after transformers' -inf mask
      for (let i = 0; i < n; i++) mass += weights[i] = Math.exp((scores[ids[i]] - max) / t);
      if (topP < 1) {
        const threshold = (topP - TOP_P_TOLERANCE) * mass;
        let acc = 0;
        let m = 0;
        while (m < n) {
          acc += weights[m++];
          if (acc >= threshold) break;
        }
        n = m;
      }
    } else if (topP < 1) {
      n = this.topP(scores, max, t, topP);
      sorted = false;
    } else {
      n = vocab;
      sorted = false;
      for (let i = 0; i < vocab; i++) {
        ids[i] = i;
        weights[i] = Math.exp((scores[i] - max) / t);
      }
    }
    if (minP > 0) {
      // The largest weight is exp(0) = 1, so p >= min_p × p_max is weight >= min_p.
      if (sorted) {
        let m = 1;
        while (m < n && weights[m] >= minP) m++;
        n = m;
      } else {
        for (let i = 0; i < n; i++) if (weights[i] < minP) weights[i] = 0;
      }
    }
    return n;
  }

  /** Puts the k largest logits' ids into this.ids[0..k), sorted (largest first, lower id on ties): a size-k heap. */
  private selectTopK(scores: Float32Array, k: number): number {
    const heap = this.ids; // min-heap on (logit, then higher id counts as smaller)
    const worse = (a: number, b: number) => scores[a] < scores[b] || (scores[a] === scores[b] && a > b);
    for (let i = 0; i < k; i++) {
      let j = i;
      heap[j] = i;
      while (j > 0) {
        const parent = (j - 1) >> 1;
        if (!worse(heap[j], heap[parent])) break;
        [heap[j], heap[parent]] = [heap[parent], heap[j]];
        j = parent;
      }
    }
    let floor = scores[heap[0]];
    for (let i = k; i < scores.length; i++) {
      // A later id with an equal logit loses to every kept one (they have lower ids).
      if (!(scores[i] > floor)) continue;
      heap[0] = i;
      let j = 0;
      for (;;) {
        const left = 2 * j + 1;
        if (left >= k) break;
        const right = left + 1;
        const child = right < k && worse(heap[right], heap[left]) ? right : left;
        if (!worse(heap[child], heap[j])) break;
        [heap[j], heap[child]] = [heap[child], heap[j]];
        j = child;
      }
      floor = scores[heap[0]];
    }
    this.sortDescending(scores, heap.subarray(0, k));
    return k;
  }

  /**
   * Top-p without top-k, without sorting the whole vocabulary: tokens are bucketed by
   * (max − logit) / T in steps of 1/16; whole buckets are kept while their mass stays below top_p,
   * and only the bucket where it is reached is sorted to find the exact cut. Fills this.ids /
   * this.weights (ids ascending, then the sorted part of the last bucket) and returns the count.
   */
  private topP(scores: Float32Array, max: number, t: number, topP: number): number {
    const vocab = scores.length;
    if (this.buckets.length < vocab) {
      this.buckets = new Uint16Array(vocab);
      this.tokenWeights = new Float64Array(vocab);
    }
    const buckets = this.buckets;
    const tokenWeights = this.tokenWeights;
    const bucketMass = this.bucketMass.fill(0);
    let mass = 0;
    for (let i = 0; i < vocab; i++) {
      const d = ((max - scores[i]) / t) * BUCKETS_PER_NAT;
      const b = d < BUCKETS - 1 ? Math.floor(d) : BUCKETS - 1;
      const w = Math.exp((scores[i] - max) / t);
      buckets[i] = b;
      tokenWeights[i] = w;
      bucketMass[b] += w;
      mass += w;
    }
    const threshold = (topP - TOP_P_TOLERANCE) * mass;
    let acc = 0;
    let cut = BUCKETS; // the bucket where the threshold is reached; BUCKETS (keep all) if rounding never gets there
    for (let b = 0; b < BUCKETS; b++) {
      if (acc + bucketMass[b] >= threshold) {
        cut = b;
        break;
      }
      acc += bucketMass[b];
    }
    const ids = this.ids;
    const weights = this.weights;
    let n = 0;
    let boundary = 0; // tokens of bucket `cut`, gathered at the end of this.ids
    for (let i = 0; i < vocab; i++) {
      const b = buckets[i];
      if (b < cut) {
        ids[n] = i;
        weights[n++] = tokenWeights[i];
      } else if (b === cut) ids[vocab - 1 - boundary++] = i;
    }
    if (boundary === 0) return n;
    const last = ids.subarray(vocab - boundary, vocab);
    this.sortDescending(scores, last);
    // Moving the sorted prefix down to ids[n..] only overwrites entries already read.
    for (let j = 0; j < boundary; ) {
      const id = last[j++];
      ids[n] = id;
      weights[n++] = tokenWeights[id];
      acc += tokenWeights[id];
      if (acc >= threshold) break;
    }
    return n;
  }

  /**
   * Sorts `ids` (in place) by logit, largest first, lower id first on ties. Each entry becomes one
   * exact float64 key, (order of the logit's float32 bits from the top) × 2^21 + id, so that the
   * native numeric sort does the work (a comparator sort is several times slower).
   */
  private sortDescending(scores: Float32Array, ids: Int32Array): void {
    const n = ids.length;
    if (scores.length > ID_SPAN) {
      ids.sort((a, b) => scores[b] - scores[a] || a - b);
      return;
    }
    if (this.keys.length < n) this.keys = new Float64Array(Math.max(n, 2 * this.keys.length));
    const keys = this.keys.subarray(0, n);
    const value = new Float32Array(1);
    const bits = new Uint32Array(value.buffer);
    for (let i = 0; i < n; i++) {
      value[0] = scores[ids[i]] + 0; // + 0 turns -0 into 0
      const b = bits[0];
      // Larger floats get smaller ranks: negative floats' bits grow as the value falls.
      const rank = b >>> 31 ? b : 0x7fffffff - b;
      keys[i] = rank * ID_SPAN + ids[i];
    }
    keys.sort();
    for (let i = 0; i < n; i++) ids[i] = keys[i] % ID_SPAN;
  }
}
