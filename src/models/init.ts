// Random initialisation as mamba_ssm does it (Mamba.__init__, Mamba2.__init__, _init_weights):
// linear and conv weights from PyTorch's default kaiming-uniform (bound 1/√fan_in; conv biases
// likewise), linear biases zero, out_proj divided by √n_layer (rescale_prenorm_residual),
// embeddings N(0, initializer_range), norms 1, D 1. Mamba: A_log = log(1..n) per channel,
// dt_proj weight U(±R^-½·dt_scale). Mamba-2: A_log = log(U(1, 16)) per head. Both: the Δ bias is
// softplus⁻¹ of Δ drawn log-uniformly in [time_step_min, time_step_max] (floored at time_step_floor).
// The S4D layer (ssm_layer "s4d"): log_dt = log of such a Δ, A_log as Mamba's (S4D-Real), B = 1,
// C ~ N(0, 1).

import { Random } from '../core/random.ts';
import { numel, type Shape } from '../core/tensor.ts';
import type { ModelConfig } from './config.ts';
import { parameterShapes } from './parameters.ts';

/** Δ drawn log-uniformly in [time_step_min, time_step_max], floored at time_step_floor. */
function drawDt(c: ModelConfig, rng: Random): number {
  const lo = Math.log(c.timeStepMin);
  const hi = Math.log(c.timeStepMax);
  return Math.max(Math.exp(lo + (hi - lo) * rng.uniform()), c.timeStepFloor);
}

function dtBias(c: ModelConfig, rng: Random, length: number): Float32Array {
  return Float32Array.from({ length }, () => {
    const dt = drawDt(c, rng);
    return dt + Math.log(-Math.expm1(-dt)); // softplus⁻¹(dt)
  });
}

function initOne(c: ModelConfig, rng: Random, name: string, shape: Shape): Float32Array {
  const size = numel(shape);
  const field = name.replace(/^backbone\.layers\.\d+\.(mixer\.)?/, '');
  const kaiming = (fanIn: number) => rng.uniformArray(size, -1 / Math.sqrt(fanIn), 1 / Math.sqrt(fanIn));
  switch (field) {
    case 'backbone.embeddings.weight':
    case 'lm_head.weight':
      return Float32Array.from({ length: size }, () => c.initializerRange * rng.normal());
    case 'norm.weight':
    case 'backbone.norm_f.weight':
    case 'D':
      return new Float32Array(size).fill(1);
    case 'in_proj.bias':
    case 'out_proj.bias':
      return new Float32Array(size);
    case 'conv1d.weight':
    case 'conv1d.bias':
      return kaiming(c.convKernel);
    case 'out_proj.weight':
      return kaiming(shape[1]).map((v) => v / Math.sqrt(c.numLayers));
    case 'dt_proj.bias':
    case 'dt_bias':
      return dtBias(c, rng, size);
    case 'log_dt': // S4D (ssm_layer "s4d"): log Δ, B = 1 and C ~ N(0, 1) as the S4D paper starts
      return Float32Array.from({ length: size }, () => Math.log(drawDt(c, rng)));
    case 'B':
      return new Float32Array(size).fill(1);
    case 'C':
      return Float32Array.from({ length: size }, () => rng.normal());
    case 'A_log':
      return c.family === 'mamba'
        ? Float32Array.from({ length: size }, (_, i) => Math.log((i % c.stateSize) + 1))
        : Float32Array.from({ length: size }, () => Math.log(1 + 15 * rng.uniform()));
    case 'dt_proj.weight': {
      if (c.family !== 'mamba') break;
      const std = c.timeStepRank ** -0.5 * c.timeStepScale;
      return c.timeStepInitScheme === 'constant'
        ? new Float32Array(size).fill(std)
        : rng.uniformArray(size, -std, std);
    }
    default:
      return kaiming(shape[1]); // in_proj.weight, x_proj.weight
  }
  throw new Error(`no initialisation for ${name}`);
}

/** Freshly initialised parameters of `c`, by checkpoint name, the same for the same seed. */
export function initParameters(c: ModelConfig, seed: number): Map<string, Float32Array> {
  const rng = new Random(seed);
  const params = new Map<string, Float32Array>();
  for (const [name, shape] of parameterShapes(c)) params.set(name, initOne(c, rng, name, shape));
  return params;
}
