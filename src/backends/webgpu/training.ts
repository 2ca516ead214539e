// SKELETON (being written): the TrainingOps of the webgpu backend.

import { fail } from '../../core/errors.ts';
import type { Tensor } from '../../core/tensor.ts';
import type { SelectiveScanArgs, SsdArgs } from '../backend.ts';
import type { AdamWHyper, ConvGrads, LinearGrads, ScanGrads, SsdGrads, TrainingOps } from '../training.ts';
import { selectiveScanBackward } from './kernels/selectiveScanBackward.ts';
import { ssdBackward } from './kernels/ssdBackward.ts';
import type { WebGpuBackend } from './webgpuBackend.ts';

const todo = (): never => fail('not yet written');

export class WebGpuTraining implements TrainingOps {
  constructor(readonly backend: WebGpuBackend) {}
  zero(_t: Tensor): void {
    todo();
  }
  accumulate(_dst: Tensor, _src: Tensor): void {
    todo();
  }
  concat(_parts: readonly Tensor[]): Tensor {
    return todo();
  }
  crossEntropy(_logits: Tensor, _targets: Tensor, _scale: number): { loss: Tensor; dLogits: Tensor } {
    return todo();
  }
  linearBackward(
    _dy: Tensor,
    _x: Tensor,
    _weight: Tensor,
    _grads: LinearGrads,
    _needDx = true,
  ): Tensor | null {
    return todo();
  }
  embeddingBackward(_ids: Tensor, _dy: Tensor, _dWeight: Tensor): void {
    todo();
  }
  addRmsNormBackward(
    _dNormed: Tensor,
    _dSum: Tensor | null,
    _sum: Tensor,
    _weight: Tensor,
    _eps: number,
    _dWeight: Tensor,
  ): Tensor {
    return todo();
  }
  causalConv1dBackward(
    _dy: Tensor,
    _x: Tensor,
    _weight: Tensor,
    _bias: Tensor | null,
    _silu: boolean,
    _grads: ConvGrads,
  ): Tensor {
    return todo();
  }
  selectiveScanBackward(
    args: SelectiveScanArgs,
    dy: Tensor,
    grads: ScanGrads,
  ): { du: Tensor; dDelta: Tensor; dB: Tensor; dC: Tensor; dz: Tensor } {
    return selectiveScanBackward(this.backend, args, dy, grads);
  }
  ssdBackward(
    args: SsdArgs,
    dy: Tensor,
    grads: SsdGrads,
  ): { dx: Tensor; ddt: Tensor; dB: Tensor; dC: Tensor } {
    return ssdBackward(this.backend, args, dy, grads);
  }
  gatedRmsNormBackward(
    _dOut: Tensor,
    _y: Tensor,
    _z: Tensor,
    _weight: Tensor,
    _eps: number,
    _groupSize: number,
    _normBeforeGate: boolean,
    _dWeight: Tensor,
  ): { dy: Tensor; dz: Tensor } {
    return todo();
  }
  sumOfSquares(_tensors: readonly Tensor[]): Tensor {
    return todo();
  }
  adamw(_param: Tensor, _grad: Tensor, _m: Tensor, _v: Tensor, _hyper: AdamWHyper): void {
    todo();
  }
  negExp(_src: Tensor, _dst: Tensor): void {
    todo();
  }
}
