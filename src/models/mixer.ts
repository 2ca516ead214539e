// What a layer's mixer needs: the Mixer interface (Mamba or Mamba-2) and Parameters, a view of
// one layer's weights by their checkpoint names that uploads each tensor to the backend once and
// records it in the model's ParameterTable (what training updates, saves and takes gradients of).

import type { Backend } from '../backends/backend.ts';
import type { Shape, Tensor } from '../core/tensor.ts';
import type { LayerState } from './state.ts';

/** Gradients by full checkpoint name, shaped as the parameters; backward passes add into them. */
export type Grads = ReadonlyMap<string, Tensor>;

export interface Mixer {
  /** (b, l, d) → (b, l, d), reading and advancing the layer's recurrent state. */
  forward(hidden: Tensor, state: LayerState): Tensor;
  /** in_proj's weight and bias: decoding steps fuse the block's norm into this projection. */
  readonly inProjection?: { weight: Tensor; bias: Tensor | null };
  /** forward from in_proj's output (b, l, ·) on: forward = fromProjection(in_proj(hidden)). */
  fromProjection?(projected: Tensor, state: LayerState): Tensor;
  /**
   * Whether blockStep advances the state into `next` without copying it at this batch size (absent:
   * always). Where not, CausalLM.step copies the whole state once and steps in place, instead of
   * each block copying its two tensors.
   */
  stepsInto?(batch: number): boolean;
  /**
   * One decoding step of the whole pre-norm block (Backend.mambaBlockStep, mamba2BlockStep): the
   * block's input as P partial sums (P, b, 1, d), with the squares that scale them where the
   * previous block left some (Mamba-2), and the residual (b, 1, d) or null → the residual after the
   * block's add and its output as P' partial sums (P', b, 1, d), maybe with squares; `whole` asks
   * for P' = 1 and no squares. The state advances in place or, given `next`, into it (`state` is
   * then only read).
   */
  blockStep?(
    hidden: Tensor,
    residual: Tensor | null,
    norm: Tensor,
    eps: number,
    state: LayerState,
    whole: boolean,
    next?: LayerState,
    squares?: Tensor | null,
  ): { residual: Tensor; hidden: Tensor; squares?: Tensor | null };
  /**
   * forward keeping what `backward` needs, from a zero state or, where given, from `ssm`: an SSM
   * state carried in (b, ·) that is read as the initial state and left holding the final one (its
   * gradient is not taken). Only the Mamba (S6) mixer takes one; the conv state starts at zero.
   */
  forwardSaving(hidden: Tensor, ssm?: Tensor): { out: Tensor; saved: unknown };
  /** Gradient of the input (b, l, d) from that of the output; adds parameter gradients to `grads`. */
  backward(dOut: Tensor, saved: unknown, grads: Grads): Tensor;
}

/** Host data of a parameter by its full checkpoint name, already checked against its shape. */
export type ParameterSource = (name: string) => Float32Array | undefined;

/** The model's parameters on the backend, and the tensors derived from them (A from A_log). */
export class ParameterTable {
  readonly tensors = new Map<string, Tensor>();
  readonly derived: Array<{ source: Tensor; A: Tensor }> = [];
}

export class Parameters {
  constructor(
    private readonly backend: Backend,
    private readonly prefix: string,
    private readonly source: ParameterSource,
    private readonly shapes: ReadonlyMap<string, Shape>,
    private readonly table: ParameterTable,
  ) {}

  /** The full checkpoint name of one of this view's parameters (the key of its gradient). */
  name(key: string): string {
    return this.prefix + key;
  }

  get(key: string): Tensor {
    return this.required(key).tensor;
  }

  optional(key: string): Tensor | null {
    return this.load(key)?.tensor ?? null;
  }

  /** conv1d.weight (c, 1, w) as the kernels take it: (c, w). */
  convWeight(): Tensor {
    return flatConv(this.backend, this.get('conv1d.weight'));
  }

  /** A = -exp(A_log), computed at load (on the host) and again whenever training changes A_log. */
  negExp(key: string): Tensor {
    const { tensor: ALog, data } = this.required(key);
    const A = this.backend.upload(
      data.map((v) => -Math.exp(v)),
      ALog.shape,
    );
    this.table.derived.push({ source: ALog, A });
    return A;
  }

  private required(key: string): { tensor: Tensor; data: Float32Array } {
    const found = this.load(key);
    if (found === null) throw new Error(`parameter ${this.name(key)} is not in the model's table`);
    return found;
  }

  private load(key: string): { tensor: Tensor; data: Float32Array } | null {
    const name = this.name(key);
    const shape = this.shapes.get(name);
    const data = shape && this.source(name);
    if (!shape || !data) return null;
    const tensor = this.backend.upload(data, shape);
    this.table.tensors.set(name, tensor);
    return { tensor, data };
  }
}

/** conv1d.weight or its gradient (c, 1, w) as (c, w). */
export function flatConv(backend: Backend, weight: Tensor): Tensor {
  return backend.reshape(weight, [weight.shape[0], weight.shape[2]]);
}
