// MambaForCausalLM and Mamba2ForCausalLM: embeddings, a stack of pre-norm residual blocks
// (RMSNorm → mixer, residual kept in float32), the final norm and the LM head (tied to the
// embeddings when the config says so). One class serves both families; only the mixer differs.
//
// `forward` reads a batch of whole sequences (or the next piece of them, given a state); `step`
// is forward with one token per sequence. Both advance the same recurrent state.
// `lossAndGrads` is the training pass: forward keeping each block's activations, the next-token
// cross-entropy, then every block's backward in reverse, adding into one gradient per parameter.

import type { Backend } from '../backends/backend.ts';
import { fail } from '../core/errors.ts';
import { Fnv64 } from '../core/hash.ts';
import { numel, showShape, type Tensor } from '../core/tensor.ts';
import type { ModelConfig } from './config.ts';
import { MambaMixer } from './mamba.ts';
import { Mamba2Mixer } from './mamba2.ts';
import { type Grads, type Mixer, type ParameterSource, Parameters, ParameterTable } from './mixer.ts';
import { parameterShapes } from './parameters.ts';
import { S4dMixer } from './s4dMixer.ts';
import { copyState, createState, type ModelState } from './state.ts';

/** Logits computed at once by the training head: pieces of rows keep (rows, vocab) under this. */
const HEAD_VALUES = 1 << 26;

interface Block {
  norm: Tensor; // (d)
  mixer: Mixer;
}

export interface ForwardResult {
  logits: Tensor; // (b, l, vocab), or (b, 1, vocab) with lastOnly
  hidden: Tensor; // (b, l, d) after the final norm
}

export class CausalLM {
  private readonly embeddings: Tensor; // (vocab, d)
  private readonly blocks: Block[];
  private readonly normF: Tensor; // (d)
  private readonly lmHead: Tensor; // (vocab, d)
  private readonly table = new ParameterTable();
  /** Names these weights: a digest of the config and of every parameter's first and last values. */
  readonly fingerprint: string;

  constructor(
    readonly config: ModelConfig,
    readonly backend: Backend,
    weights: ParameterSource,
  ) {
    const shapes = parameterShapes(config);
    const digest = new Fnv64().updateText(JSON.stringify(config));
    const source = (name: string) => {
      const data = weights(name);
      if (data) {
        const ends = [data.subarray(0, 64), data.subarray(Math.max(0, data.length - 64))];
        for (const part of ends) digest.update(new Uint8Array(part.buffer, part.byteOffset, part.byteLength));
      }
      return data;
    };
    const top = new Parameters(backend, '', source, shapes, this.table);
    this.embeddings = top.get('backbone.embeddings.weight');
    this.blocks = Array.from({ length: config.numLayers }, (_, i) => {
      const prefix = `backbone.layers.${i}.`;
      const mixerParams = new Parameters(backend, `${prefix}mixer.`, source, shapes, this.table);
      return {
        norm: new Parameters(backend, prefix, source, shapes, this.table).get('norm.weight'),
        mixer:
          config.family === 'mamba2'
            ? new Mamba2Mixer(backend, config, mixerParams)
            : config.ssmLayer === 's4d'
              ? new S4dMixer(backend, config, mixerParams)
              : new MambaMixer(backend, config, mixerParams),
      };
    });
    this.normF = top.get('backbone.norm_f.weight');
    this.lmHead = config.tieWordEmbeddings ? this.embeddings : top.get('lm_head.weight');
    this.fingerprint = digest.hex();
  }

  /**
   * Every parameter by its checkpoint name and in its checkpoint shape (A_log as stored, conv1d
   * weights (c, 1, w)); lm_head is absent when tied to the embeddings.
   */
  parameters(): ReadonlyMap<string, Tensor> {
    return this.table.tensors;
  }

  /** Recomputes what is derived from parameters (A = -exp(A_log)) after they changed in place. */
  refreshDerived(): void {
    for (const { source, A } of this.table.derived) this.backend.training.negExp(source, A);
  }

  /** A fresh recurrent state for `batch` sequences. */
  newState(batch: number): ModelState {
    return createState(this.backend, this.config, batch);
  }

  /** Checks ids for `batch` sequences (host ids against the vocabulary) and returns their length. */
  private idsLength(ids: Int32Array | Tensor, batch: number): number {
    return ids instanceof Int32Array ? this.checkIds(ids, batch) : this.backendIdsLength(ids, batch);
  }

  /** The ids as a (b·l) tensor: host ids uploaded, backend ids as they are. */
  private idsTensor(ids: Int32Array | Tensor, count: number): Tensor {
    return ids instanceof Int32Array ? this.backend.upload(ids, [count]) : this.backend.reshape(ids, [count]);
  }

  /**
   * The length of ids already on the backend (b·l i32 in any shape, e.g. a step's (b, 1) argmax:
   * inside the vocabulary by construction, so not read back to be checked).
   */
  private backendIdsLength(ids: Tensor, batch: number): number {
    const count = numel(ids.shape);
    if (ids.dtype !== 'i32' || batch < 1 || count === 0 || count % batch !== 0)
      fail(
        `token ids on the backend must be b·l i32 for ${batch} sequences, got ${ids.dtype} ${showShape(ids.shape)}`,
      );
    return count / batch;
  }

  /** Checks ids (b·l, row-major) against the vocabulary; one clear error for the first bad one. */
  private checkIds(ids: Int32Array, batch: number): number {
    if (batch < 1 || ids.length === 0) fail('empty input: no token ids');
    if (ids.length % batch !== 0) fail(`${ids.length} token ids do not split into ${batch} sequences`);
    const length = ids.length / batch;
    const vocab = this.config.vocabSize;
    for (let i = 0; i < ids.length; i++) {
      if (!(ids[i] >= 0 && ids[i] < vocab)) {
        fail(
          `token id ${ids[i]} (sequence ${Math.floor(i / length)}, position ${i % length}) is outside the vocabulary [0, ${vocab})`,
        );
      }
    }
    return length;
  }

  /**
   * Reads ids (b, l) and returns logits and the last hidden state. With a state, continues from
   * it and leaves it after the last token; without, starts from zeros. `lastOnly` computes the
   * LM head for the last position only (what a prompt needs before decoding).
   */
  forward(
    ids: Int32Array | Tensor,
    batch: number,
    options: { state?: ModelState; lastOnly?: boolean } = {},
  ): ForwardResult {
    const length = this.idsLength(ids, batch);
    const state = options.state ?? this.newState(batch);
    if (state.batch !== batch) fail(`state holds ${state.batch} sequences, the input ${batch}`);
    const be = this.backend;
    return be.tidy(() => {
      const final = this.hiddenStates(ids, batch, length, state); // (b, l, d)
      const headInput = options.lastOnly ? this.lastPositions(final, batch, length) : final; // (b, l|1, d)
      return { logits: be.linear(headInput, this.lmHead, null), hidden: final };
    });
  }

  /** Embeddings, the blocks (each in its own tidy) and the final norm: ids (b·l) → (b, l, d). */
  private hiddenStates(ids: Int32Array | Tensor, batch: number, length: number, state: ModelState): Tensor {
    const be = this.backend;
    const eps = this.config.layerNormEpsilon;
    const idsTensor = this.idsTensor(ids, batch * length); // (b·l)
    let hidden = be.reshape(be.embedding(idsTensor, this.embeddings), [
      batch,
      length,
      this.config.hiddenSize,
    ]); // (b, l, d)
    let residual: Tensor | null = null; // (b, l, d)
    for (let i = 0; i < this.blocks.length; i++) {
      const block = this.blocks[i];
      [residual, hidden] = be.tidy(() => {
        const added = be.addRmsNorm(hidden, residual, block.norm, eps); // (b, l, d) each
        return [added.residual, block.mixer.forward(added.normed, state.layers[i])]; // (b, l, d) each
      });
    }
    return be.addRmsNorm(hidden, residual, this.normF, eps).normed; // (b, l, d)
  }

  /**
   * The next-token loss over ids (b, l): mean cross-entropy of logits[:, :-1] against ids[:, 1:]
   * (as transformers' MambaForCausalLM computes it), as a (1) tensor; adds its gradient into
   * `grads` (zeros, or gradients to accumulate on; the same names as parameters()). `targets`
   * (b·l) replaces the next tokens: the id each position must predict, -1 where none (the
   * synthetic tasks count only their answers); the loss is the mean over the counted positions.
   * `ssmStates` (one (b, ·) per layer, Mamba only): SSM states carried in, the initial states of the
   * pass, left holding its final ones (training from states of earlier sequences).
   */
  lossAndGrads(
    ids: Int32Array,
    batch: number,
    grads: Grads,
    targets?: Int32Array,
    ssmStates?: readonly Tensor[],
  ): Tensor {
    const length = this.checkIds(ids, batch);
    if (ssmStates && ssmStates.length !== this.blocks.length)
      fail(`lossAndGrads: ${ssmStates.length} carried SSM states for ${this.blocks.length} layers`);
    const counted = this.targets(ids, batch, length, targets);
    const be = this.backend;
    const ops = be.training;
    const eps = this.config.layerNormEpsilon;
    const d = this.config.hiddenSize;
    return be.tidy(() => {
      const idsTensor = be.upload(ids, [ids.length]); // (b·l)
      const embedded = be.reshape(be.embedding(idsTensor, this.embeddings), [batch, length, d]); // (b, l, d)
      // sums[i]: the residual stream entering block i's norm; sums[L] enters the final norm.
      const sums: Tensor[] = []; // (b, l, d) each
      const saved: unknown[] = [];
      let added = be.addRmsNorm(embedded, null, this.blocks[0]?.norm ?? this.normF, eps);
      for (const [i, block] of this.blocks.entries()) {
        sums.push(added.residual);
        // Each block in its own tidy: only its output and what its backward needs stay.
        const normed = added.normed;
        const { out, saved: kept } = be.tidy(() => block.mixer.forwardSaving(normed, ssmStates?.[i])); // (b, l, d)
        saved.push(kept);
        // out becomes the next sum in place; the saved sum of this block stays as it is.
        added = be.addRmsNorm(added.residual, out, this.blocks[i + 1]?.norm ?? this.normF, eps);
      }
      sums.push(added.residual);
      const { loss, dFinal } = this.headLoss(added.normed, counted, batch, length, grads); // (1), (b, l, d)
      let dSum = ops.addRmsNormBackward(
        dFinal!,
        null,
        sums[this.blocks.length],
        this.normF,
        eps,
        grads.get('backbone.norm_f.weight')!,
      ); // (b, l, d)
      for (let i = this.blocks.length - 1; i >= 0; i--) {
        const dIn: Tensor = dSum; // the backward's temporaries go when its tidy ends
        dSum = be.tidy(() => {
          const dNormed = this.blocks[i].mixer.backward(dIn, saved[i], grads); // (b, l, d)
          return ops.addRmsNormBackward(
            dNormed,
            dIn,
            sums[i],
            this.blocks[i].norm,
            eps,
            grads.get(`backbone.layers.${i}.norm.weight`)!,
          ); // (b, l, d)
        });
      }
      ops.embeddingBackward(idsTensor, dSum, grads.get('backbone.embeddings.weight')!);
      return loss;
    });
  }

  /** The same loss as lossAndGrads, without gradients (validation). */
  loss(ids: Int32Array, batch: number): Tensor {
    const length = this.checkIds(ids, batch);
    const targets = this.targets(ids, batch, length);
    return this.backend.tidy(
      () =>
        this.headLoss(
          this.hiddenStates(ids, batch, length, this.newState(batch)),
          targets,
          batch,
          length,
          null,
        ).loss,
    );
  }

  /** What each position (b·l) predicts, -1 where nothing: `explicit` checked, or the next ids. */
  private targets(ids: Int32Array, batch: number, length: number, explicit?: Int32Array): Int32Array {
    if (explicit) {
      if (explicit.length !== ids.length) fail(`${explicit.length} targets for ${ids.length} token ids`);
      if (!explicit.some((v) => v !== -1)) fail('every target is -1: nothing to train on');
      const bad = explicit.findIndex((v) => !(v === -1 || (v >= 0 && v < this.config.vocabSize)));
      if (bad >= 0) fail(`target ${explicit[bad]} at ${bad} is neither -1 nor in the vocabulary`);
      return explicit;
    }
    if (length < 2) fail('the next-token loss needs sequences of at least 2 tokens');
    const t = batch * length;
    const next = new Int32Array(t); // (t): the next id, -1 at each sequence's end
    for (let i = 0; i < t; i++) next[i] = i % length === length - 1 ? -1 : ids[i + 1];
    return next;
  }

  /**
   * The LM head and the cross-entropy over final hidden states (b, l, d), by pieces of at most
   * HEAD_ROWS rows so that the logits of a long batch never exist whole; with grads, also the
   * gradient of the hidden states (the head's weight gradient is added to grads).
   */
  private headLoss(final: Tensor, targets: Int32Array, batch: number, length: number, grads: Grads | null) {
    const be = this.backend;
    const ops = be.training;
    const d = this.config.hiddenSize;
    const t = batch * length;
    const scale = 1 / targets.reduce((n, v) => n + (v === -1 ? 0 : 1), 0); // the mean over counted targets
    const perPiece = Math.max(1, Math.floor(HEAD_VALUES / this.config.vocabSize));
    const pieces = Array.from({ length: Math.ceil(t / perPiece) }, (_, i) =>
      Math.min(perPiece, t - i * perPiece),
    );
    const flat = be.reshape(final, [1, t * d]); // (1, t·d)
    const parts =
      pieces.length === 1
        ? [flat]
        : be.split(
            flat,
            pieces.map((r) => r * d),
          );
    const headGrad = grads && (grads.get('lm_head.weight') ?? grads.get('backbone.embeddings.weight')!);
    const loss = be.zeros([1]);
    const dParts: Tensor[] = [];
    let at = 0;
    for (const [i, part] of parts.entries()) {
      const rows = pieces[i];
      const pieceTargets = targets.subarray(at, at + rows); // (r)
      // One tidy per piece: its logits and their gradient (r, vocab) go before the next piece.
      const dPart = be.tidy(() => {
        const x = be.reshape(part, [rows, d]); // (r, d)
        const logits = be.linear(x, this.lmHead, null); // (r, vocab)
        const ce = ops.crossEntropy(logits, be.upload(pieceTargets, [rows]), scale); // (1), (r, vocab)
        ops.accumulate(loss, ce.loss);
        if (!headGrad) return null;
        const dx = ops.linearBackward(ce.dLogits, x, this.lmHead, { weight: headGrad, bias: null })!; // (r, d)
        return be.reshape(dx, [1, rows * d]); // (1, r·d)
      });
      if (dPart) dParts.push(dPart);
      at += pieces[i];
    }
    const dFinal =
      dParts.length === 0
        ? null
        : be.reshape(dParts.length === 1 ? dParts[0] : ops.concat(dParts), [batch, length, d]); // (b, l, d)
    return { loss, dFinal };
  }

  /**
   * One token per sequence: tokens (b) → logits (b, 1, vocab), advancing `state`. The tokens may
   * already be on the backend (e.g. the previous step's argmax), so that a step can be recorded
   * before the host has read the ids it consumes. Given `next` (a state of the same batch), the
   * advanced state goes there and `state` is left as it was: decoding can keep the state before a
   * step without copying it (the fused block steps write into `next` directly; other paths copy first).
   */
  step(tokens: Int32Array | Tensor, state: ModelState, next?: ModelState): Tensor {
    const count = tokens instanceof Int32Array ? tokens.length : numel(tokens.shape);
    if (count !== state.batch) fail(`step: ${count} tokens for ${state.batch} sequences`);
    if (next && next.batch !== state.batch)
      fail(`step: a next state of ${next.batch} sequences for ${state.batch}`);
    const into = this.blocks.every(({ mixer }) => mixer.blockStep && (mixer.stepsInto?.(count) ?? true))
      ? next
      : undefined;
    if (next && !into) {
      copyState(this.backend, next, state);
      return this.step(tokens, next);
    }
    // The tidy releases the step's hidden states (only the logits leave it) on backends that pool.
    if (!this.blocks.every((block) => block.mixer.fromProjection && block.mixer.inProjection))
      return this.backend.tidy(() => this.forward(tokens, state.batch, { state }).logits);
    this.idsLength(tokens, state.batch);
    const be = this.backend;
    const eps = this.config.layerNormEpsilon;
    return be.tidy(() => {
      const ids = this.idsTensor(tokens, count); // (b)
      const d = this.config.hiddenSize;
      let hidden = be.reshape(be.embedding(ids, this.embeddings), [count, 1, d]); // (b, 1, d)
      let residual: Tensor | null = null; // (b, 1, d)
      let squares: Tensor | null = null; // (P, b) the scales of hidden's parts, from a Mamba-2 block
      const last = this.blocks.length - 1;
      for (const [i, { norm, mixer }] of this.blocks.entries()) {
        [residual, hidden, squares] = be.tidy(() => {
          if (mixer.blockStep) {
            // The whole block fused (Backend.mambaBlockStep): hidden goes between blocks as partial sums.
            const parts = i === 0 ? be.reshape(hidden, [1, ...hidden.shape]) : hidden; // (P, b, 1, d)
            const block = mixer.blockStep(
              parts,
              residual,
              norm,
              eps,
              state.layers[i],
              i === last,
              into?.layers[i],
              squares,
            );
            const out = i === last ? be.reshape(block.hidden, [count, 1, d]) : block.hidden; // (P', b, 1, d) or (b, 1, d)
            return [block.residual, out, block.squares ?? null];
          }
          // The block's norm is fused into its in_proj (Backend.addRmsNormLinear).
          const { weight, bias } = mixer.inProjection!;
          const added = be.addRmsNormLinear(hidden, residual, norm, eps, weight, bias); // (b, 1, ·)
          return [added.residual, mixer.fromProjection!(added.out, state.layers[i]), null]; // (b, 1, d) each
        });
      }
      return be.addRmsNormLinear(hidden, residual, this.normF, eps, this.lmHead, null).out; // (b, 1, vocab)
    });
  }

  private lastPositions(x: Tensor, batch: number, length: number): Tensor {
    if (length === 1) return x;
    const d = this.config.hiddenSize;
    const rows = this.backend.reshape(x, [batch, length * d]); // (b, l·d)
    return this.backend.reshape(this.backend.split(rows, [(length - 1) * d, d])[1], [batch, 1, d]); // (b, 1, d)
  }
}
