// Argument checks shared by the reference functions. A Float64Array read past its end gives
// undefined, which turns into NaN without an error; these checks make a wrong shape fail loudly.

/** Throws unless `arr` (when given) has exactly the product of `dims` elements. */
export function expectLength(
  where: string,
  name: string,
  arr: Float64Array | undefined,
  dims: number[],
): void {
  if (arr === undefined) return;
  const want = dims.reduce((acc, v) => acc * v, 1);
  if (arr.length !== want) {
    throw new Error(`${where}: ${name} has ${arr.length} elements, expected (${dims.join(', ')}) = ${want}`);
  }
}
