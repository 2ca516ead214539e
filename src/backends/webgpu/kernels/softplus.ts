// WGSL softplus(v) = log(1 + eᵛ), v itself above 20 (as torch.nn.functional.softplus and
// src/nn/activations.ts), shared by every kernel that discretizes Δ. The plain log(1.0 + exp(v))
// loses the low bits of eᵛ in the sum 1 + eᵛ: at the Δ of real checkpoints (v ≈ −7 … −2,
// eᵛ ≈ 0.001 … 0.1) that is a relative error of ~1e-5 in Δ, and in everything Δ scales. Below
// eᵛ = 1 it is log1p(e) = 2·atanh(w), w = e / (2 + e) ≤ 1/3, from its series to w¹⁵ (the next
// term is < 5e-9 of the sum); above, 1 + e ≥ 2 loses nothing that matters.

export const softplusWgsl = /* wgsl */ `
fn softplus(v: f32) -> f32 {
  if (v > 20.0) { return v; }
  let e = exp(v);
  if (e >= 1.0) { return log(1.0 + e); }
  let w = e / (2.0 + e);
  let w2 = w * w;
  let series = 1.0 + w2 * (1.0 / 3.0 + w2 * (0.2 + w2 * (1.0 / 7.0 + w2 * (1.0 / 9.0 + w2 * (1.0 / 11.0 + w2 * (1.0 / 13.0 + w2 / 15.0))))));
  return 2.0 * w * series;
}`;
