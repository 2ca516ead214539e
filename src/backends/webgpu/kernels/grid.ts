// Dispatch geometry shared by the kernels: `total` threads in workgroups of `size` (grid1d), or
// one workgroup per row (rowGrid), folded into a 2-D grid when one dimension would exceed the
// adapter's limit (65,535 workgroups on most). A kernel then computes its flat index as
// id.x + id.y · stride (its row as wg.x + wg.y · stride) and skips the tail past the end.

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

/** One workgroup per row: grid (x, y) and the row stride, row = wg.x + wg.y · stride. */
export function rowGrid(be: WebGpuBackend, rows: number): { workgroups: number[]; stride: number } {
  return grid1d(be, rows, 1);
}
