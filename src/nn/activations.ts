// Scalar activations shared by the CPU kernels, with PyTorch's conventions.

/** softplus(x) = log(1 + eᕽ), returning x above 20 as torch.nn.functional.softplus does. */
export function softplus(x: number): number {
  return x > 20 ? x : Math.log1p(Math.exp(x));
}

/** SiLU(x) = x · σ(x). */
export function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}
