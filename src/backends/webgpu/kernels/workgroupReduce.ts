// WGSL snippet (not a kernel): tree reductions over the `lanes` threads of a workgroup, for the
// training kernels that reduce rows (crossEntropy.ts, normBackward.ts, gatedNormBackward.ts).
// reduceAll(lane, value, isMax) returns the sum (or max) of every lane's value to every lane; it may
// be called several times in a row (it waits until the previous result has been read). Every
// thread of the workgroup must call it.

export function workgroupReduce(lanes: 64 | 256): string {
  return /* wgsl */ `
var<workgroup> partial: array<f32, ${lanes}>;
fn reduceAll(lane: u32, value: f32, isMax: bool) -> f32 {
  workgroupBarrier();
  partial[lane] = value;
  workgroupBarrier();
  for (var step = ${lanes / 2}u; step > 0u; step = step / 2u) {
    if (lane < step) {
      if (isMax) { partial[lane] = max(partial[lane], partial[lane + step]); }
      else { partial[lane] += partial[lane + step]; }
    }
    workgroupBarrier();
  }
  return partial[0];
}`;
}
