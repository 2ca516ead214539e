// The parameters of a model: Hugging Face key names and the shape each must have under a config.
// Loading validates a checkpoint against this table, `init` fills it, training will walk it.

import type { Shape } from '../core/tensor.ts';
import type { ModelConfig } from './config.ts';

/** Width of the conv1d input: Mamba convolves x; Mamba-2 convolves [x, B, C]. */
export function convDim(c: ModelConfig): number {
  return c.family === 'mamba' ? c.intermediateSize : c.intermediateSize + 2 * c.nGroups * c.stateSize;
}

/** Rows of in_proj: Mamba [x, z]; Mamba-2 [z, x, B, C, dt]. */
export function inProjDim(c: ModelConfig): number {
  return c.family === 'mamba' ? 2 * c.intermediateSize : c.intermediateSize + convDim(c) + c.numHeads;
}

function mixerShapes(c: ModelConfig): Array<[string, Shape]> {
  const d = c.hiddenSize;
  const dInner = c.intermediateSize;
  const n = c.stateSize;
  const shapes: Array<[string, Shape]> = [['in_proj.weight', [inProjDim(c), d]]];
  if (c.useBias) shapes.push(['in_proj.bias', [inProjDim(c)]]);
  shapes.push(['conv1d.weight', [convDim(c), 1, c.convKernel]]);
  if (c.useConvBias) shapes.push(['conv1d.bias', [convDim(c)]]);
  if (c.family === 'mamba' && c.ssmLayer === 's4d') {
    shapes.push(
      ['log_dt', [dInner]],
      ['A_log', [dInner, n]],
      ['B', [dInner, n]],
      ['C', [dInner, n]],
      ['D', [dInner]],
    );
  } else if (c.family === 'mamba') {
    const r = c.timeStepRank;
    shapes.push(
      ['x_proj.weight', [r + 2 * n, dInner]],
      ['dt_proj.weight', [dInner, r]],
      ['dt_proj.bias', [dInner]],
      ['A_log', [dInner, n]],
      ['D', [dInner]],
    );
  } else {
    const h = c.numHeads;
    shapes.push(['dt_bias', [h]], ['A_log', [h]], ['D', [h]], ['norm.weight', [dInner]]);
  }
  shapes.push(['out_proj.weight', [d, dInner]]);
  if (c.useBias) shapes.push(['out_proj.bias', [d]]);
  return shapes;
}

/** Every parameter of the model, in checkpoint order, with its shape. */
export function parameterShapes(c: ModelConfig): Map<string, Shape> {
  const shapes = new Map<string, Shape>([['backbone.embeddings.weight', [c.vocabSize, c.hiddenSize]]]);
  const mixer = mixerShapes(c);
  for (let i = 0; i < c.numLayers; i++) {
    shapes.set(`backbone.layers.${i}.norm.weight`, [c.hiddenSize]);
    for (const [name, shape] of mixer) shapes.set(`backbone.layers.${i}.mixer.${name}`, shape);
  }
  shapes.set('backbone.norm_f.weight', [c.hiddenSize]);
  if (!c.tieWordEmbeddings) shapes.set('lm_head.weight', [c.vocabSize, c.hiddenSize]);
  return shapes;
}
