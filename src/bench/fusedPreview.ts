// Benchmarks only: a preview of the changes the models need to decode through the fused ops, so
// that `bench --backend webgpu` can time whole decoding steps with them before the models call
// them. Remove once src/models does this itself. Two levels:
// - 'mixer': MambaMixer.forward at l = 1 runs in_proj → Backend.mambaStep (conv, x_proj, dt_proj,
//   scan, gate in one op) → out_proj instead of its five ops (the change to mamba.ts);
// - 'norm': in addition, CausalLM.forward for one token per sequence (a Mamba step) hands each
//   block's addRmsNorm to the next projection (Backend.addRmsNormLinear: in_proj, and the LM head
//   after the final norm), 3 ops per layer (the change to causalLM.ts, and a mixer method that
//   takes the block's un-normalised input). Its `hidden` is then the residual stream, not normed.

import type { Backend } from '../backends/backend.ts';
import type { Tensor } from '../core/tensor.ts';
import { CausalLM, type ForwardResult } from '../models/causalLM.ts';
import type { ModelConfig } from '../models/config.ts';
import { MambaMixer } from '../models/mamba.ts';
import type { LayerState, ModelState } from '../models/state.ts';

/** The mixer's weights, as MambaMixer names its (private) fields. */
interface MixerFields {
  backend: Backend;
  inProj: Tensor; // (2·dInner, d)
  inProjBias: Tensor | null; // (2·dInner)
  convWeight: Tensor; // (dInner, w)
  convBias: Tensor | null; // (dInner)
  xProj: Tensor; // (R + 2n, dInner)
  dtProj: Tensor; // (dInner, R)
  dtBias: Tensor; // (dInner)
  A: Tensor; // (dInner, n)
  D: Tensor; // (dInner)
  outProj: Tensor; // (d, dInner)
  outProjBias: Tensor | null; // (d)
}

/** The model's fields, as CausalLM names its (private) ones. */
interface ModelFields {
  config: ModelConfig;
  backend: Backend;
  embeddings: Tensor; // (vocab, d)
  blocks: Array<{ norm: Tensor; mixer: MambaMixer }>;
  normF: Tensor; // (d)
  lmHead: Tensor; // (vocab, d)
}

const original = MambaMixer.prototype.forward;
const originalModel = CausalLM.prototype.forward;

/** The mixer from in_proj's output on: mambaStep, then out_proj. */
function fromXz(m: MixerFields, xz: Tensor, state: LayerState): Tensor {
  const be = m.backend;
  const y = be.mambaStep({
    xz,
    convWeight: m.convWeight,
    convBias: m.convBias,
    xProj: m.xProj,
    dtProj: m.dtProj,
    dtBias: m.dtBias,
    A: m.A,
    D: m.D,
    convState: state.conv,
    ssmState: state.ssm,
  }); // (b, 1, dInner)
  return be.linear(y, m.outProj, m.outProjBias); // (b, 1, d)
}

function fusedForward(this: MambaMixer, hidden: Tensor, state: LayerState): Tensor {
  if (hidden.shape[1] !== 1) return original.call(this, hidden, state);
  const m = this as unknown as MixerFields;
  return fromXz(m, m.backend.linear(hidden, m.inProj, m.inProjBias), state); // (b, 1, d)
}

function fusedModelForward(
  this: CausalLM,
  ids: Int32Array,
  batch: number,
  options: { state?: ModelState; lastOnly?: boolean } = {},
): ForwardResult {
  const state = options.state;
  if (ids.length !== batch || state === undefined) return originalModel.call(this, ids, batch, options);
  const m = this as unknown as ModelFields;
  const be = m.backend;
  const eps = m.config.layerNormEpsilon;
  return be.tidy(() => {
    const tokens = be.upload(ids, [batch]); // (b)
    let hidden = be.reshape(be.embedding(tokens, m.embeddings), [batch, 1, m.config.hiddenSize]); // (b, 1, d)
    let residual: Tensor | null = null; // (b, 1, d)
    m.blocks.forEach((block, i) => {
      const mixer = block.mixer as unknown as MixerFields;
      [residual, hidden] = be.tidy(() => {
        const { inProj, inProjBias } = mixer;
        const added = be.addRmsNormLinear(hidden, residual, block.norm, eps, inProj, inProjBias); // (b, 1, ·)
        return [added.residual, fromXz(mixer, added.out, state.layers[i])]; // (b, 1, d) each
      });
    });
    const head = be.addRmsNormLinear(hidden, residual, m.normF, eps, m.lmHead, null); // (b, 1, vocab)
    return { logits: head.out, hidden: head.residual };
  });
}

/** Routes Mamba decoding steps through the fused ops ('mixer', 'norm') or the models' code (null). */
export function fusedMambaPreview(level: 'mixer' | 'norm' | null): void {
  MambaMixer.prototype.forward = level === null ? original : fusedForward;
  CausalLM.prototype.forward = level === 'norm' ? fusedModelForward : originalModel;
}
