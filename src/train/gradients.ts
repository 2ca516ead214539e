// The gradient of the next-token loss for every parameter of a model: what `mamba-ts grads`
// writes and what the gradient tests compare with the PyTorch fixtures.

import type { Tensor } from '../core/tensor.ts';
import type { CausalLM } from '../models/causalLM.ts';

/** A zero gradient on the model's backend for each parameter, by checkpoint name. */
export function zeroGrads(model: CausalLM): Map<string, Tensor> {
  const grads = new Map<string, Tensor>();
  for (const [name, param] of model.parameters()) grads.set(name, model.backend.zeros(param.shape));
  return grads;
}

export interface Gradients {
  loss: number;
  /** In checkpoint order, shaped as the parameters. */
  grads: Array<{ name: string; shape: number[]; data: Float32Array }>;
}

/** The loss of ids (b, l) and its gradient for every parameter, read back to the host. */
export async function gradients(model: CausalLM, ids: Int32Array, batch: number): Promise<Gradients> {
  const grads = zeroGrads(model);
  const loss = model.lossAndGrads(ids, batch, grads); // (1)
  const out: Gradients = { loss: (await model.backend.read(loss))[0], grads: [] };
  for (const [name, grad] of grads) {
    out.grads.push({ name, shape: [...grad.shape], data: (await model.backend.read(grad)) as Float32Array });
  }
  return out;
}
