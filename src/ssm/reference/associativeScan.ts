// The associative operator of a first-order linear recurrence and a Blelloch scan over it.
//
// An element (a, b) stands for the affine map h ↦ a·h + b. Applying (a₁, b₁) and then (a₂, b₂):
//   (a₁, b₁) ∘ (a₂, b₂) = (a₁·a₂, a₂·b₁ + b₂)
// which is associative (composition of maps) but not commutative; identity (1, 0). The inclusive
// scan of (a_t, b_t) with h₀ = 0 therefore holds h_t = a_t h_{t−1} + b_t in its b part.
//
// blellochScan is the work-efficient (O(l) operations, O(log l) depth) exclusive scan of
// Blelloch (1990): pad to a power of two with the identity, up-sweep (reduce partial sums up a
// balanced tree in place), set the root to the identity, down-sweep (push prefixes down), then
// combine each exclusive prefix with its own element to make the scan inclusive. The loops run
// one after another here; on a GPU every level's inner loop runs in parallel.
// Leaves out: parallel execution itself, and segmented (multi-sequence) scans.

export interface AffinePair {
  a: number;
  b: number;
}

/** (a1, b1) ∘ (a2, b2) = (a1·a2, a2·b1 + b2): first apply element 1, then element 2. */
export function combine(a1: number, b1: number, a2: number, b2: number): AffinePair {
  return { a: a1 * a2, b: a2 * b1 + b2 };
}

/** Inclusive scan: out_t = e_0 ∘ e_1 ∘ … ∘ e_t, elements e_t = (a[t], b[t]). */
export function blellochScan(
  a: Float64Array, // (l)
  b: Float64Array, // (l)
): { a: Float64Array; b: Float64Array } /* (l), (l) */ {
  const l = a.length;
  if (b.length !== l) throw new Error(`blellochScan: a has ${l} elements, b has ${b.length}`);
  let size = 1;
  while (size < l) size *= 2;
  const sa = new Float64Array(size).fill(1); // (size) identity padding (1, 0)
  const sb = new Float64Array(size); // (size)
  sa.set(a);
  sb.set(b);
  // Up-sweep: after the level with stride s, index k·2s + 2s − 1 holds the reduction of its block.
  for (let s = 1; s < size; s *= 2) {
    for (let k = 2 * s - 1; k < size; k += 2 * s) {
      const r = combine(sa[k - s], sb[k - s], sa[k], sb[k]);
      sa[k] = r.a;
      sb[k] = r.b;
    }
  }
  // Down-sweep: a node holds the prefix of everything before its subtree. The left child gets
  // that prefix; the right child gets prefix ∘ (left subtree's reduction), in this order.
  sa[size - 1] = 1;
  sb[size - 1] = 0;
  for (let s = size / 2; s >= 1; s /= 2) {
    for (let k = 2 * s - 1; k < size; k += 2 * s) {
      const leftA = sa[k - s];
      const leftB = sb[k - s];
      sa[k - s] = sa[k];
      sb[k - s] = sb[k];
      const r = combine(sa[k], sb[k], leftA, leftB);
      sa[k] = r.a;
      sb[k] = r.b;
    }
  }
  // Exclusive → inclusive: out_t = (prefix before t) ∘ e_t.
  const outA = new Float64Array(l); // (l)
  const outB = new Float64Array(l); // (l)
  for (let t = 0; t < l; t++) {
    const r = combine(sa[t], sb[t], a[t], b[t]);
    outA[t] = r.a;
    outB[t] = r.b;
  }
  return { a: outA, b: outB };
}
