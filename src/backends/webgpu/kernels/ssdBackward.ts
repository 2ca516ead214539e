// SKELETON (being written): backward of chunked SSD on the webgpu backend.

import { fail } from '../../../core/errors.ts';
import type { Tensor } from '../../../core/tensor.ts';
import type { SsdArgs } from '../../backend.ts';
import type { SsdGrads } from '../../training.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';

export function ssdBackward(
  _be: WebGpuBackend,
  _args: SsdArgs,
  _dy: Tensor,
  _grads: SsdGrads,
): { dx: Tensor; ddt: Tensor; dB: Tensor; dC: Tensor } {
  return fail('not yet written');
}
