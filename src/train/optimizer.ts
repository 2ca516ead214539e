// AdamW for the model's parameters, as mamba_ssm and transformers train it: two parameter groups
// (no weight decay on A_log, D, the dt bias (Mamba's dt_proj.bias, Mamba-2's dt_bias), other
// biases and the norm weights (norm.weight, norm_f.weight, Mamba-2's mixer.norm.weight); decay on
// everything else, embeddings included), gradient clipping by the global norm (torch's
// clip_grad_norm_: scale min(1, clip / (norm + 1e-6))), linear warmup then cosine decay to minLr,
// and gradient accumulation (gradients of `accum` micro-batches are summed, then scaled by
// 1/accum). The clip and accumulation scales reach the update through AdamW's gradScale, so the
// gradients are read once (their sum of squares) per step and never rescaled in memory.

import type { Backend } from '../backends/backend.ts';
import { fail } from '../core/errors.ts';
import type { Tensor } from '../core/tensor.ts';

export interface OptimizerConfig {
  lr: number;
  minLr: number;
  warmup: number;
  /** Total steps: the end of the cosine. */
  steps: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Largest global gradient norm; 0 turns clipping off. */
  clip: number;
}

/** Whether parameter `name` is in the group without weight decay. */
export function noWeightDecay(name: string): boolean {
  return /(?:^|\.)(?:A_log|D|dt_bias|bias|norm\.weight|norm_f\.weight)$/.test(name);
}

/** The learning rate of 1-based `step`: linear warmup to lr, then cosine down to minLr at `steps`. */
export function learningRate(c: OptimizerConfig, step: number): number {
  if (step < c.warmup) return (c.lr * step) / c.warmup;
  const progress = Math.min(1, (step - c.warmup) / Math.max(1, c.steps - c.warmup));
  return c.minLr + 0.5 * (c.lr - c.minLr) * (1 + Math.cos(Math.PI * progress));
}

export class AdamW {
  /** First and second moments, by parameter name. */
  readonly m = new Map<string, Tensor>();
  readonly v = new Map<string, Tensor>();
  /** Updates done so far (AdamW's t). */
  step = 0;

  private readonly sumOfSquares: Tensor; // (1)

  /** Moments start at zero, or from a checkpoint: `restored.read(key)` gives a stored array. */
  constructor(
    private readonly backend: Backend,
    private readonly params: ReadonlyMap<string, Tensor>,
    readonly config: OptimizerConfig,
    restored?: { step: number; read: (key: string) => Float32Array },
  ) {
    for (const [name, p] of params) {
      const moment = (key: string) =>
        restored ? backend.upload(restored.read(`${name}.${key}`), p.shape) : backend.zeros(p.shape);
      this.m.set(name, moment('exp_avg'));
      this.v.set(name, moment('exp_avg_sq'));
    }
    this.step = restored?.step ?? 0;
    this.sumOfSquares = backend.zeros([1]);
  }

  /**
   * One update from `grads`, the sum of `accum` micro-batch gradients; returns the global norm of
   * their mean (before clipping) and the learning rate used. The caller refreshes derived tensors.
   */
  async update(grads: ReadonlyMap<string, Tensor>, accum: number): Promise<{ gradNorm: number; lr: number }> {
    const ops = this.backend.training;
    ops.zero(this.sumOfSquares);
    this.backend.tidy(() => ops.accumulate(this.sumOfSquares, ops.sumOfSquares([...grads.values()])));
    const sum = await this.backend.read(this.sumOfSquares); // (1)
    const gradNorm = Math.sqrt(sum[0]) / accum;
    if (!Number.isFinite(gradNorm))
      fail(`training diverged at step ${this.step + 1}: the gradient norm is ${gradNorm}`);
    const clipScale = this.config.clip > 0 ? Math.min(1, this.config.clip / (gradNorm + 1e-6)) : 1;
    this.step++;
    const lr = learningRate(this.config, this.step);
    const { beta1, beta2, eps, weightDecay } = this.config;
    for (const [name, param] of this.params) {
      ops.adamw(param, grads.get(name)!, this.m.get(name)!, this.v.get(name)!, {
        lr,
        beta1,
        beta2,
        eps,
        weightDecay: noWeightDecay(name) ? 0 : weightDecay,
        step: this.step,
        gradScale: clipScale / accum,
      });
    }
    return { gradNorm, lr };
  }

  /** The moments as host arrays, named as a checkpoint stores them (`<name>.exp_avg[_sq]`). */
  async moments(): Promise<Array<{ name: string; shape: number[]; data: Float32Array }>> {
    const out: Array<{ name: string; shape: number[]; data: Float32Array }> = [];
    for (const [name, m] of this.m) {
      const shape = [...m.shape];
      out.push({ name: `${name}.exp_avg`, shape, data: (await this.backend.read(m)) as Float32Array });
      out.push({
        name: `${name}.exp_avg_sq`,
        shape,
        data: (await this.backend.read(this.v.get(name)!)) as Float32Array,
      });
    }
    return out;
  }
}
