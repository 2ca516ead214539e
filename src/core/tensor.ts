// Tensor handles: a shape, a dtype and the backend that owns the memory. No math lives here;
// every operation is a named kernel of a Backend (src/backends/backend.ts).

export type DType = 'f32' | 'i32';
export type Shape = readonly number[];
export type TypedArrayOf<D extends DType> = D extends 'f32' ? Float32Array : Int32Array;

export interface Tensor {
  readonly shape: Shape;
  readonly dtype: DType;
}

/** Number of elements of a shape. */
export function numel(shape: Shape): number {
  let size = 1;
  for (const extent of shape) size *= extent;
  return size;
}

/** "[2, 3, 4]": for error messages. */
export function showShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((extent, i) => extent === b[i]);
}
