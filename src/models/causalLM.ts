// MambaForCausalLM and Mamba2ForCausalLM: embeddings, a stack of pre-norm residual blocks
// (RMSNorm → mixer, residual kept in float32), the final norm and the LM head (tied to the
// embeddings when the config says so). One class serves both families; only the mixer differs.
//
// `forward` reads a batch of whole sequences (or the next piece of them, given a state); `step`
// is forward with one token per sequence. Both advance the same recurrent state.

import type { Backend } from '../backends/backend.ts';
import { fail } from '../core/errors.ts';
import { Fnv64 } from '../core/hash.ts';
import type { Tensor } from '../core/tensor.ts';
import type { ModelConfig } from './config.ts';
import { MambaMixer } from './mamba.ts';
import { Mamba2Mixer } from './mamba2.ts';
import { type Mixer, type ParameterSource, Parameters } from './mixer.ts';
import { parameterShapes } from './parameters.ts';
import { createState, type ModelState } from './state.ts';

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
    const top = new Parameters(backend, '', source, shapes);
    this.embeddings = top.get('backbone.embeddings.weight');
    this.blocks = Array.from({ length: config.numLayers }, (_, i) => {
      const prefix = `backbone.layers.${i}.`;
      const mixerParams = new Parameters(backend, `${prefix}mixer.`, source, shapes);
      return {
        norm: new Parameters(backend, prefix, source, shapes).get('norm.weight'),
        mixer:
          config.family === 'mamba'
            ? new MambaMixer(backend, config, mixerParams)
            : new Mamba2Mixer(backend, config, mixerParams),
      };
    });
    this.normF = top.get('backbone.norm_f.weight');
    this.lmHead = config.tieWordEmbeddings ? this.embeddings : top.get('lm_head.weight');
    this.fingerprint = digest.hex();
  }

  /** A fresh recurrent state for `batch` sequences. */
  newState(batch: number): ModelState {
    return createState(this.backend, this.config, batch);
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
    ids: Int32Array,
    batch: number,
    options: { state?: ModelState; lastOnly?: boolean } = {},
  ): ForwardResult {
    const length = this.checkIds(ids, batch);
    const state = options.state ?? this.newState(batch);
    if (state.batch !== batch) fail(`state holds ${state.batch} sequences, the input ${batch}`);
    const be = this.backend;
    const eps = this.config.layerNormEpsilon;
    const d = this.config.hiddenSize;
    return be.tidy(() => {
      const idsTensor = be.upload(ids, [ids.length]); // (b·l)
      let hidden = be.reshape(be.embedding(idsTensor, this.embeddings), [batch, length, d]); // (b, l, d)
      let residual: Tensor | null = null; // (b, l, d)
      for (let i = 0; i < this.blocks.length; i++) {
        const block = this.blocks[i];
        [residual, hidden] = be.tidy(() => {
          const added = be.addRmsNorm(hidden, residual, block.norm, eps); // (b, l, d) each
          return [added.residual, block.mixer.forward(added.normed, state.layers[i])]; // (b, l, d) each
        });
      }
      const final = be.addRmsNorm(hidden, residual, this.normF, eps).normed; // (b, l, d)
      const headInput = options.lastOnly ? this.lastPositions(final, batch, length) : final; // (b, l|1, d)
      return { logits: be.linear(headInput, this.lmHead, null), hidden: final };
    });
  }

  /** One token per sequence: tokens (b) → logits (b, 1, vocab), advancing `state`. */
  step(tokens: Int32Array, state: ModelState): Tensor {
    // The tidy releases the step's hidden states (only the logits leave it) on backends that pool.
    return this.backend.tidy(() => this.forward(tokens, state.batch, { state }).logits);
  }

  private lastPositions(x: Tensor, batch: number, length: number): Tensor {
    if (length === 1) return x;
    const d = this.config.hiddenSize;
    const rows = this.backend.reshape(x, [batch, length * d]); // (b, l·d)
    return this.backend.reshape(this.backend.split(rows, [(length - 1) * d, d])[1], [batch, 1, d]); // (b, 1, d)
  }
}
