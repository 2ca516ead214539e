// TrainingOps.s4dBackward on WebGPU: four passes (the kernels' files say what each computes).
//   s4dBackwardGate: recompute y from a zero state, dy and dz through the gate   (b, l, d) each
//   s4dKernel + s4dBackwardInput: K̄ (d, l), then du as the correlation of dy with K̄
//   s4dBackwardKernelGrad: dK̄ (d, l), the correlation of dy with u over the batch
//   s4dBackwardParams: log_dt, A_log, B, C and D gradients from dK̄, added in
// The correlations are direct O(l²) sums, fine on a GPU at the synthetic tasks' sizes.
// Reference: s4dBackward in src/ssm/s4d.ts.

import type { S4dArgs } from '../../backend.ts';
import type { S4dGrads } from '../../training.ts';
import type { GpuTensor } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';
import { s4dBackwardGateSource } from './s4dBackwardGate.ts';
import { s4dBackwardInputSource } from './s4dBackwardInput.ts';
import { s4dBackwardKernelGradSource } from './s4dBackwardKernelGrad.ts';
import { s4dBackwardParamsSource } from './s4dBackwardParams.ts';
import { s4dKernelSource } from './s4dKernel.ts';

const sources = new Map<string, string>();
function cached(key: string, make: () => string): string {
  if (!sources.has(key)) sources.set(key, make());
  return sources.get(key)!;
}

/** u, z and dOut dense (b, l, d). */
export function s4dBackward(
  be: WebGpuBackend,
  args: S4dArgs,
  dOut: GpuTensor,
  grads: S4dGrads,
): { du: GpuTensor; dz: GpuTensor } {
  const [b, l, d] = args.u.shape;
  const n = args.A.shape[1];
  const { u, logDt, A, B, C, D, z } = args as { [K in keyof S4dArgs]: GpuTensor };
  const groups = Math.ceil(d / 64);
  const dy = be.alloc(args.u.shape); // (b, l, d)
  const dz = be.alloc(args.u.shape); // (b, l, d)
  const gate = { name: 's4dBackwardGate', wgsl: cached(`gate${n}`, () => s4dBackwardGateSource(n)) };
  be.dispatch(gate, [u, logDt, A, B, C, D, z, dOut, dy, dz], [b, l, d], [groups, b]);
  const K = be.alloc([d, l]); // (d, l)
  const kernel = { name: 's4dKernel', wgsl: cached(`kernel${n}`, () => s4dKernelSource(n)) };
  be.dispatch(kernel, [logDt, A, B, C, K], [l, d], [Math.ceil(l / 64), d]);
  const du = be.alloc(args.u.shape); // (b, l, d)
  be.dispatch(
    { name: 's4dBackwardInput', wgsl: s4dBackwardInputSource },
    [dy, K, D, du],
    [b, l, d],
    [groups, l, b],
  );
  const dK = be.alloc([d, l]); // (d, l)
  be.dispatch(
    { name: 's4dBackwardKernelGrad', wgsl: s4dBackwardKernelGradSource },
    [dy, u, dK],
    [b, l, d],
    [groups, l],
  );
  const params = { name: 's4dBackwardParams', wgsl: cached(`params${n}`, () => s4dBackwardParamsSource(n)) };
  const { logDt: gLogDt, ALog, B: gB, C: gC, D: gD } = grads as { [K in keyof S4dGrads]: GpuTensor };
  be.dispatch(params, [dK, logDt, A, B, C, gLogDt, ALog, gB, gC, gD], [l, d], [groups]);
  return { du, dz };
}
