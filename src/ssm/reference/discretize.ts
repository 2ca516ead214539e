// Zero-order-hold discretization of one diagonal entry of a continuous SSM
//   h'(t) = A h(t) + B x(t)      (A, B scalars: one (channel, state) lane of a diagonal A)
// with x held constant over a step of length Δ:
//   Ā = exp(ΔA)
//   B̄ = (ΔA)⁻¹ (exp(ΔA) − 1) · ΔB = ∫₀^Δ exp(sA) ds · B         (exact ZOH, zohDiagonal)
//   B̄ ≈ ΔB                                                       (Mamba's simplification, zohSimplified)
// The two B̄ differ by ΔB·(ΔA/2 + O((ΔA)²)), i.e. O(Δ²).
// Leaves out: non-diagonal A (matrix exponentials) and the bilinear rule of S4.

export interface Discretized {
  Abar: number;
  Bbar: number;
}

/** A discretization rule for one lane: Δ > 0, A (usually < 0), B → (Ā, B̄). */
export type Discretize = (delta: number, A: number, B: number) => Discretized;

/** Exact ZOH. expm1(x)/x is accurate for small |x|; at x = ΔA = 0 its limit 1 gives B̄ = ΔB. */
export function zohDiagonal(delta: number, A: number, B: number): Discretized {
  const x = delta * A;
  const phi = x === 0 ? 1 : Math.expm1(x) / x; // (exp(ΔA) − 1) / (ΔA)
  return { Abar: Math.exp(x), Bbar: phi * delta * B };
}

/** Mamba's rule: exact Ā, first-order B̄ = ΔB (what selective_scan_ref and the CUDA kernels use). */
export function zohSimplified(delta: number, A: number, B: number): Discretized {
  return { Abar: Math.exp(delta * A), Bbar: delta * B };
}
