// Text generation: a batch of prompts read with the parallel forward (in chunks, so memory stays
// bounded for long prompts), then one recurrent `step` per new token. Each sequence has its own
// sampler, stop conditions and streaming decoder, and stops on its own; the batch then shrinks,
// so a sequence's result (and its final state) equals running it alone. Sequences of different
// lengths are prefilled one by one (an SSM has no padding mask to hide pad tokens behind) and then
// decoded together.
//
// A generation can start from a snapshot (a saved state: a conversation, a shared prompt prefix)
// and ends with one, so it can be continued later, in another process, or forked.
// Left out: beam search, speculative decoding, constrained decoding.

import type { Backend } from '../backends/backend.ts';
import { fail } from '../core/errors.ts';
import type { Tensor } from '../core/tensor.ts';
import type { CausalLM } from '../models/causalLM.ts';
import {
  downloadState,
  type HostState,
  type ModelState,
  releaseState,
  selectRows,
  uploadState,
} from '../models/state.ts';
import { Sampler, type SamplingOptions } from './sampling.ts';
import type { Snapshot } from './snapshot.ts';
import { StreamDecoder } from './streamDecoder.ts';

export interface TextCodec {
  encode(text: string): number[];
  decode(ids: readonly number[]): string;
}

/**
 * Greedy decoding's schedule by batch size: the ids of `group` steps read back at once, with
 * `lookahead` more steps in flight behind them (GenerateOptions.lookahead). At batch ≤ 4 the host's
 * work per step bounds decoding, and a read costs a submit and a map (~0.1 ms on the H100's host):
 * 4 and 4 (0.69–0.96 ms per Mamba-130m step there, against 0.74–1.58 reading every step with 2
 * ahead, five interleaved rounds). Above, 1 and 2: the GPU bounds it, and each step in flight holds
 * a state (179 MB at batch 64 for Mamba 130m).
 */
export function decodeSchedule(batch: number): { lookahead: number; group: number } {
  return batch <= 4 ? { lookahead: 4, group: 4 } : { lookahead: 2, group: 1 };
}

/** The ids (i32 tensors) read back together where the backend can. */
export function readIds(be: Backend, ids: readonly Tensor[]): Promise<Int32Array[]> {
  return (be.readAll ? be.readAll(ids) : Promise.all(ids.map((t) => be.read(t)))) as Promise<Int32Array[]>;
}

export interface GenerateOptions extends SamplingOptions {
  /** New tokens per sequence at most (default 64). */
  maxNewTokens?: number;
  /** Stop a sequence when its new text contains one of these (the stop string is not emitted). */
  stop?: readonly string[];
  /** Ids that end a sequence (default: the model's eos_token_id); [] never stops early. */
  eosTokenIds?: readonly number[];
  /** Prompt tokens read per forward call (default 512). */
  prefillChunk?: number;
  /** Also yield the prompt's tokens (with `prompt: true`) before the new ones. */
  echo?: boolean;
  /** Continue from this snapshot: one row shared by every prompt (a fork), or one row per prompt. */
  from?: Snapshot;
  /**
   * Greedy decoding on the backend: steps recorded from ids the host has not read yet, beyond
   * those being read (default: decodeSchedule's, 4 at batch ≤ 4, else 2). The GPU then runs them
   * while the host reads, emits and records; a sequence's result is the same whatever the depth.
   */
  lookahead?: number;
}

/** One new token of sequence `sequence`, with the text it completes (may be ''). */
export interface Piece {
  sequence: number;
  id: number;
  text: string;
  prompt?: true;
}

export interface GenerationResult {
  /** Per sequence: every id (snapshot history, prompt and new tokens). */
  ids: number[][];
  /** Per sequence: the text of the new tokens, cut before a stop string. */
  texts: string[];
  /** Per sequence: why it stopped. */
  reasons: Array<'eos' | 'stop' | 'length'>;
  /** Where to continue from. */
  snapshot: Snapshot;
  stats: {
    promptTokens: number;
    prefillSeconds: number;
    newTokens: number;
    decodeSeconds: number;
    stateBytes: number;
  };
}

interface Sequence {
  index: number;
  ids: number[];
  pending: number[];
  sampler: Sampler;
  decoder: StreamDecoder | null;
  text: string; // new text decoded so far (not all of it emitted yet while a stop string may be forming)
  emitted: number; // characters of `text` already emitted
  newTokens: number;
  reason: 'eos' | 'stop' | 'length' | null;
  final: HostState | null; // its state after stopping
}

/** Length of the longest suffix of `text` that is a proper prefix of one of `stops`. */
function stopPrefixLength(text: string, stops: readonly string[]): number {
  let best = 0;
  for (const stop of stops) {
    for (let k = Math.min(stop.length - 1, text.length); k > best; k--) {
      if (text.endsWith(stop.slice(0, k))) best = k;
    }
  }
  return best;
}

/** Decodes `id` into the sequence's text and returns what may be shown now (stop strings held back). */
function emitText(seq: Sequence, id: number, isEos: boolean, stops: readonly string[]): string {
  const decoder = seq.decoder!;
  seq.text += isEos ? '' : decoder.push(id);
  if (seq.reason) seq.text += decoder.flush();
  const cuts = stops.map((s) => seq.text.indexOf(s)).filter((i) => i >= 0);
  if (cuts.length > 0) {
    seq.text = seq.text.slice(0, Math.min(...cuts));
    seq.reason = 'stop';
  }
  const safe = seq.reason ? seq.text.length : seq.text.length - stopPrefixLength(seq.text, stops);
  const text = seq.text.slice(seq.emitted, Math.max(seq.emitted, safe));
  seq.emitted = Math.max(seq.emitted, safe);
  return text;
}

/**
 * Generates continuations of `prompts` (text needs `codec`; ids do not), yielding each new token
 * as it is sampled, and returning the full result (with a snapshot) at the end.
 */
export async function* generate(
  model: CausalLM,
  codec: TextCodec | null,
  prompts: ReadonlyArray<string | readonly number[]>,
  options: GenerateOptions = {},
): AsyncGenerator<Piece, GenerationResult> {
  const maxNewTokens = options.maxNewTokens ?? 64;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) {
    fail(`--max-new-tokens must be an integer >= 0, got ${maxNewTokens}`);
  }
  const prefillChunk = options.prefillChunk ?? 512;
  if (!Number.isInteger(prefillChunk) || prefillChunk < 1)
    fail(`--prefill-chunk must be an integer >= 1, got ${prefillChunk}`);
  const lookahead = options.lookahead ?? decodeSchedule(prompts.length).lookahead;
  if (!Number.isInteger(lookahead) || lookahead < 0 || lookahead > 8)
    fail(`lookahead must be an integer from 0 to 8, got ${lookahead}`);
  const stops = (options.stop ?? []).filter((s) => s.length > 0);
  const eos = new Set(
    options.eosTokenIds ?? (model.config.eosTokenId === null ? [] : [model.config.eosTokenId]),
  );
  if (prompts.length === 0) fail('no prompts given');
  const from = options.from;
  if (from && from.model !== model.fingerprint) {
    fail(`the snapshot belongs to another model (${from.model}, not ${model.fingerprint})`);
  }
  if (from && from.rows.length !== 1 && from.rows.length !== prompts.length) {
    fail(`the snapshot holds ${from.rows.length} sequences, but ${prompts.length} prompts were given`);
  }
  // A snapshot of one sequence given several prompts is a fork: each branch gets its own seed.
  const fork = from !== undefined && from.rows.length === 1 && prompts.length > 1;
  const fromRow = (i: number) => (from!.rows.length === 1 ? 0 : i);

  const echoes: Piece[] = [];
  const sequences: Sequence[] = prompts.map((prompt, index) => {
    if (typeof prompt === 'string' && codec === null) {
      fail('a text prompt needs a tokenizer (tokenizer.json in the model folder)');
    }
    const promptIds = typeof prompt === 'string' ? codec!.encode(prompt) : [...prompt];
    const previous = from?.rows[fromRow(index)];
    const sampler = new Sampler({ ...options, seed: ((options.seed ?? 0) + index) >>> 0 });
    if (previous?.rng && !fork) sampler.restoreState(previous.rng);
    const ids = [...(previous?.ids ?? []), ...promptIds];
    const pending = [...(previous?.pending ?? []), ...promptIds];
    if (pending.length === 0) {
      fail(`prompt ${index}: nothing to read (an empty prompt needs a snapshot to continue from)`);
    }
    const decoder = codec && new StreamDecoder(codec);
    // The prompt is read as text whatever its ids; only an EOS that ended an earlier generation (in
    // the snapshot's history) is left out of the text, as it was then.
    const history = ids.length - promptIds.length;
    const echo = ids.map((id, at) => ({
      sequence: index,
      id,
      text: decoder && (at >= history || !eos.has(id)) ? decoder.push(id) : '',
    }));
    echoes.push(...echo.slice(history).map((p) => ({ ...p, prompt: true as const })));
    return {
      index,
      ids,
      pending,
      sampler,
      decoder,
      text: '',
      emitted: 0,
      newTokens: 0,
      reason: null,
      final: null,
    };
  });
  if (options.echo) yield* echoes;

  // Prefill: each sequence alone, in chunks; keep its state and the logits after its last token.
  const be = model.backend;
  const prefillStart = performance.now();
  const states: HostState[] = [];
  let logits: Float32Array[] = []; // per live sequence: (vocab)
  let promptTokens = 0;
  for (const seq of sequences) {
    const state = from
      ? uploadState(be, model.config, selectRows([from.state], [[0, fromRow(seq.index)]]))
      : model.newState(1);
    let last: Tensor | null = null; // (1, 1, vocab)
    for (let at = 0; at < seq.pending.length; at += prefillChunk) {
      const chunk = Int32Array.from(seq.pending.slice(at, at + prefillChunk)); // (1 · chunk)
      if (last) be.release(last);
      last = be.tidy(() => model.forward(chunk, 1, { state, lastOnly: true }).logits); // (1, 1, vocab)
    }
    promptTokens += seq.pending.length;
    seq.pending = [];
    logits.push((await be.read(last!)) as Float32Array);
    be.release(last!);
    states.push(await downloadState(be, state));
    releaseState(be, state);
  }
  const prefillSeconds = (performance.now() - prefillStart) / 1000;

  // Decode: all live sequences together, one token each per step.
  const decodeStart = performance.now();
  let live = sequences;
  if (maxNewTokens === 0) {
    for (const seq of sequences) [seq.reason, seq.final] = ['length', states[seq.index]];
    live = [];
  }
  let batchState = uploadState(
    be,
    model.config,
    selectRows(
      states,
      states.map((_, i) => [i, 0]),
    ),
  );
  let newTokens = 0;
  // Greedy without a repetition penalty needs no logits on the host: the argmax runs on the backend
  // and only the ids come back (the first token still comes from the prompt's logits), those of
  // up to `group` steps at once (decodeSchedule). The steps that read those ids are recorded from
  // them on the backend before the host has them (`inFlight`, up to `lookahead` beyond those being
  // read), so the GPU runs them while the host waits for, reads and emits the ids before them.
  // Each step writes the state after it into another state and keeps the one it read (`before`):
  // a sequence that stops at the ids feeding a step in flight ends with that step's `before` (its
  // last token pending), exactly as without the look-ahead; the other sequences go on from the
  // step after (its ids are theirs), and the steps after that are dropped.
  const onBackend = sequences.every(
    (s) => s.sampler.options.greedy && s.sampler.options.repetitionPenalty === 1,
  );
  let ids: Int32Array | null = null; // (b) the argmax of each live row, when onBackend
  // Oldest first: each step's ids (b) on the backend and, once read, on the host.
  let inFlight: Array<{ ids: Tensor; before: ModelState; host: Int32Array | null }> = [];
  const group = decodeSchedule(live.length).group;
  let spare: ModelState[] = []; // states free to take a step's output
  /** Records a step from `from` (ids on the host or the backend) after batchState. */
  const record = (from: Int32Array | Tensor) => {
    const into = spare.pop() ?? model.newState(live.length);
    const stepIds = be.tidy(() => be.argmax(model.step(from, batchState, into))); // (b)
    inFlight.push({ ids: stepIds, before: batchState, host: null });
    batchState = into;
  };
  /** Releases the steps in flight and the spare states (batchState stays). */
  const dropAhead = () => {
    for (const step of inFlight) {
      be.release(step.ids);
      releaseState(be, step.before);
    }
    for (const state of spare) releaseState(be, state);
    inFlight = [];
    spare = [];
  };
  try {
    while (live.length > 0) {
      for (let row = 0; row < live.length; row++) {
        const seq = live[row];
        const id = ids ? ids[row] : seq.sampler.next(logits[row], seq.ids);
        seq.ids.push(id);
        seq.pending = [id];
        seq.newTokens++;
        newTokens++;
        if (eos.has(id)) seq.reason = 'eos';
        else if (seq.newTokens >= maxNewTokens) seq.reason = 'length';
        yield { sequence: seq.index, id, text: seq.decoder ? emitText(seq, id, eos.has(id), stops) : '' };
      }
      if (live.some((s) => s.reason !== null)) {
        // Keep each finished sequence's state; go on with the others only, from the next step in
        // flight if there is one (it read the ids just emitted).
        const next = inFlight.shift();
        const host = await downloadState(be, next ? next.before : batchState);
        const nextIds = next ? (next.host ?? ((await be.read(next.ids)) as Int32Array)) : null; // (b)
        const after = next ? await downloadState(be, inFlight[0]?.before ?? batchState) : host;
        if (next) {
          be.release(next.ids);
          releaseState(be, next.before);
        }
        dropAhead();
        releaseState(be, batchState);
        const rows = live.map((seq, row) => ({ seq, row }));
        for (const { seq, row } of rows) if (seq.reason !== null) seq.final = selectRows([host], [[0, row]]);
        const keep = rows.filter(({ seq }) => seq.reason === null);
        live = keep.map(({ seq }) => seq);
        logits = ids ? [] : keep.map(({ row }) => logits[row]);
        if (ids) ids = Int32Array.from(keep, ({ row }) => (nextIds ?? ids!)[row]);
        if (nextIds) for (const seq of live) seq.pending = [];
        if (live.length === 0) break;
        batchState = uploadState(
          be,
          model.config,
          selectRows(
            [after],
            keep.map(({ row }) => [0, row]),
          ),
        );
        if (nextIds) continue;
      }
      const tokens = Int32Array.from(live, (s) => s.pending[0]); // (b)
      for (const seq of live) seq.pending = [];
      if (onBackend) {
        if (inFlight.length === 0) record(tokens);
        if (inFlight[0].host === null) {
          // The ids of up to `group` steps at once (their copies are enqueued before the steps
          // after them), then steps after them, each needed while a sequence can take its token.
          const reads = inFlight.slice(0, group);
          const reading = readIds(
            be,
            reads.map((r) => r.ids),
          );
          const room = Math.max(...live.map((s) => maxNewTokens - s.newTokens));
          while (inFlight.length < reads.length + lookahead && inFlight.length < room)
            record(inFlight.at(-1)!.ids);
          const got = await reading; // (b) each
          for (const [i, r] of reads.entries()) r.host = got[i];
        }
        const oldest = inFlight.shift()!;
        spare.push(oldest.before); // a stop at its ids ends with the next step's `before`
        be.release(oldest.ids);
        ids = oldest.host!; // (b)
        continue;
      }
      const stepLogits = model.step(tokens, batchState); // (b, 1, vocab)
      const out = (await be.read(stepLogits)) as Float32Array; // (b, 1, vocab)
      be.release(stepLogits);
      const vocab = model.config.vocabSize;
      logits = live.map((_, row) => out.subarray(row * vocab, (row + 1) * vocab));
    }
  } finally {
    releaseState(be, batchState); // also when the caller stops early
    dropAhead();
  }
  const decodeSeconds = (performance.now() - decodeStart) / 1000;

  const finals = sequences.map((s) => s.final!);
  const snapshotState = selectRows(
    finals,
    finals.map((_, i) => [i, 0]),
  );
  const stateBytes =
    snapshotState.layers.reduce((sum, l) => sum + 4 * (l.conv.length + l.ssm.length), 0) / sequences.length;
  return {
    ids: sequences.map((s) => s.ids),
    texts: sequences.map((s) => s.text),
    reasons: sequences.map((s) => s.reason ?? 'length'),
    snapshot: {
      model: model.fingerprint,
      rows: sequences.map((s) => ({ ids: s.ids, pending: s.pending, rng: s.sampler.saveState() })),
      state: snapshotState,
    },
    stats: { promptTokens, prefillSeconds, newTokens, decodeSeconds, stateBytes },
  };
}
