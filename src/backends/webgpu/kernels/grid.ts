// Dispatch geometry shared by the element-wise kernels: `total` threads in workgroups of `size`,
// folded into a 2-D grid when one dimension would exceed the adapter's limit. A kernel then
// computes its flat index as id.x + id.y · stride.

import type { WebGpuBackend } from '../webgpuBackend.ts';

export function grid1d(
  be: WebGpuBackend,
  total: number,
  size: number,
): { workgroups: number[]; stride: number } {
  const groups = Math.ceil(total / size);
  const max = be.limits.maxComputeWorkgroupsPerDimension;
  const x = Math.min(groups, max);
  return { workgroups: [x, Math.ceil(groups / x)], stride: x * size };
}
