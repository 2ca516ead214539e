// WGSL softplus(v) = log(1 + eᵛ), v itself above 20 (as torch.nn.functional.softplus and
// src/nn/activations.ts), shared by every kernel that discretizes Δ. The plain log(1.0 + exp(v))
// loses the low bits of e = eᵛ in the sum 1 + e: at the Δ of real checkpoints (v ≈ −7 … −2,
// e ≈ 0.001 … 0.1) a relative error of ~1e-5 in Δ, and in everything Δ scales; and WGSL's log
// may err by 2⁻²¹ absolute near 1. Below e = 1/8 it is the series of log1p(e) to e⁸ (the next
// term is < 7e-9 of the sum); above, log(1 + e) less the sum's rounding error ((1 + e) − 1 − e).
// Branch-free (selects): it sits in the scans' inner loops. Cost on the H100 (three interleaved
// processes): the selective scan alone 0.765–0.773 → 0.799–0.841 ms (an Estrin-ordered series to
// e⁶ was slower, a division-based 2·atanh form slower still).

export const softplusWgsl = /* wgsl */ `
fn softplus(v: f32) -> f32 {
  let e = exp(min(v, 20.0));
  let u = 1.0 + e;
  let large = log(u) - ((u - 1.0) - e);
  let small = e * (1.0 + e * (-0.5 + e * (1.0 / 3.0 + e * (-0.25 + e * (0.2 + e * (-1.0 / 6.0 + e * (1.0 / 7.0 - e * 0.125)))))));
  return select(select(large, small, e < 0.125), v, v > 20.0);
}`;
