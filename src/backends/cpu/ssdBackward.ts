// SKELETON (being written): backward of chunked SSD on the cpu backend.

import { fail } from '../../core/errors.ts';
import type { Tensor } from '../../core/tensor.ts';
import type { SsdArgs } from '../backend.ts';
import type { SsdGrads } from '../training.ts';
import type { CpuBackend } from './cpuBackend.ts';

export function ssdBackward(
  _be: CpuBackend,
  _args: SsdArgs,
  _dy: Tensor,
  _grads: SsdGrads,
): { dx: Tensor; ddt: Tensor; dB: Tensor; dC: Tensor } {
  return fail('not yet written');
}
