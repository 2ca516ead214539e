// SKELETON (being written): backward of the selective scan on the webgpu backend.

import { fail } from '../../../core/errors.ts';
import type { Tensor } from '../../../core/tensor.ts';
import type { SelectiveScanArgs } from '../../backend.ts';
import type { ScanGrads } from '../../training.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';

export function selectiveScanBackward(
  _be: WebGpuBackend,
  _args: SelectiveScanArgs,
  _dy: Tensor,
  _grads: ScanGrads,
): { du: Tensor; dDelta: Tensor; dB: Tensor; dC: Tensor; dz: Tensor } {
  return fail('not yet written');
}
