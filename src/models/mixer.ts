// What a layer's mixer needs: the Mixer interface (Mamba or Mamba-2) and Parameters, a view of
// one layer's weights by their checkpoint names that uploads each tensor to the backend once.

import type { Backend } from '../backends/backend.ts';
import type { Shape, Tensor } from '../core/tensor.ts';
import type { LayerState } from './state.ts';

export interface Mixer {
  /** (b, l, d) → (b, l, d), reading and advancing the layer's recurrent state. */
  forward(hidden: Tensor, state: LayerState): Tensor;
}

/** Host data of a parameter by its full checkpoint name, already checked against its shape. */
export type ParameterSource = (name: string) => Float32Array | undefined;

export class Parameters {
  constructor(
    private readonly backend: Backend,
    private readonly prefix: string,
    private readonly source: ParameterSource,
    private readonly shapes: ReadonlyMap<string, Shape>,
  ) {}

  private host(name: string): { data: Float32Array; shape: Shape } | null {
    const key = this.prefix + name;
    const shape = this.shapes.get(key);
    const data = shape && this.source(key);
    return shape && data ? { data, shape } : null;
  }

  get(name: string): Tensor {
    const found = this.optional(name);
    if (found === null) throw new Error(`parameter ${this.prefix}${name} is not in the model's table`);
    return found;
  }

  optional(name: string): Tensor | null {
    const found = this.host(name);
    return found && this.backend.upload(found.data, found.shape);
  }

  /** conv1d.weight (c, 1, w) as the kernels take it: (c, w). */
  convWeight(): Tensor {
    const weight = this.get('conv1d.weight');
    return this.backend.reshape(weight, [weight.shape[0], weight.shape[2]]);
  }

  /** A = -exp(A_log), computed once at load. */
  negExp(name: string): Tensor {
    const found = this.host(name);
    if (found === null) throw new Error(`parameter ${this.prefix}${name} is not in the model's table`);
    const A = found.data.map((v) => -Math.exp(v));
    return this.backend.upload(A, found.shape);
  }
}
