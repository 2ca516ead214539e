// The chunked backward of Mamba-2's SSD on the webgpu backend: the forward's chunked form
// (ssdChunked.ts) run backwards, in the manner of mamba_ssm's _chunk_scan_bwd, _chunk_state_bwd,
// _state_passing_bwd and _chunk_cumsum_bwd; most of the work is matmul-shaped in workgroup memory.
// Per (batch, head) and chunk c of q positions (t, s within it; cs the running sum of a = Δ A,
// fixed point; u_s = Δ_s x_s; h_{c−1} the state entering the chunk, dS_c the gradient of the one
// leaving it; P[t][s] the gradient of C_t·B_s):
//   forward again: ssdCumsum (Δ, cs), ssdChunkState and ssdCarry (h_{c−1}), ssdCb (C_t·B_s);
//   1. ssdBackwardStateGrad: G_c = Σ_t exp(cs_t) dy_tᵀ C_t                       (p × n)
//   2. ssdBackwardCarry: dS_c, chunks from the last: dS_{c−1} = exp(cs_last) dS_c + G_c, and
//      E_c = exp(cs_last) Σ dS_c ⊙ h_{c−1} (summed by scanBackwardReduce.ts)
//   3. ssdBackwardDots: P[t][s] = (dy_t·x_s) exp(cs_t − cs_s) Δ_s, s ≤ t          (q × q)
//   4. ssdBackwardDx: du_s = exp(cs_last − cs_s) B_s dS_cᵀ + Σ_{t≥s} (C_t·B_s) exp(cs_t − cs_s) dy_t
//   5. ssdBackwardDc: dC_t (per head) = exp(cs_t) dy_t h_{c−1} (= dCs_t) + Σ_{s≤t} P[t][s] B_s
//   6. ssdBackwardDb: dB_s (per head) = exp(cs_last − cs_s) Δ_s x_s dS_c (= dBs_s) + Σ_{t≥s} P[t][s] C_t
//   7. ssdBackwardFinish: dx, dΔ (direct + A·da, da = ∂L/∂(Δ A) from dCs, dBs, E and P ∘ C·Bᵀ in
//      mamba_ssm's stable form), ddt, per-chunk dA and dD;
// then deterministic sums (scanBackwardReduce.ts): dB, dC over a group's heads, dtBias over
// positions, ALog (dA · A) and D over batches and chunks. Every exponent is ≤ 0.
// Limits: q ≤ 256 (pass 7 holds a chunk in one workgroup). Scratch per batch row: P (l·h·q),
// the per-head dB, dC and their state parts (l·h·n each), states and their gradients (K·h·p·n).
// Reference: src/backends/cpu/ssdBackward.ts (the recurrence; same gradients, other order).

import type { SsdGrads } from '../../training.ts';
import type { GpuTensor } from '../gpuTensor.ts';
import type { WebGpuBackend } from '../webgpuBackend.ts';
import { grid1d } from './grid.ts';
import { reduce } from './scanBackwardReduce.ts';
import { copyView } from './split.ts';
import { backwardCarryWgsl } from './ssdBackwardCarry.ts';
import { dbWgsl } from './ssdBackwardDb.ts';
import { dcWgsl } from './ssdBackwardDc.ts';
import { dotsWgsl } from './ssdBackwardDots.ts';
import { dxWgsl } from './ssdBackwardDx.ts';
import { finishWgsl } from './ssdBackwardFinish.ts';
import { stateGradWgsl } from './ssdBackwardStateGrad.ts';
import { carryWgsl, cbWgsl, chunkStateWgsl, cumsumWgsl } from './ssdChunked.ts';

export interface SsdShape {
  b: number;
  l: number;
  h: number;
  p: number;
  g: number;
  n: number;
  q: number; // chunk length
}

export interface ChunkedInputs {
  x: GpuTensor; // (b, l, h·p)
  dt: GpuTensor; // (b, l, h) before bias, softplus and clamp
  dtBias: GpuTensor; // (h)
  A: GpuTensor; // (h)
  B: GpuTensor; // (b, l, g·n)
  C: GpuTensor; // (b, l, g·n)
  D: GpuTensor; // (h)
  dy: GpuTensor; // (b, l, h·p)
  state: GpuTensor; // (b, h, p, n) initial state, read only
  dtLimit: readonly [number, number];
}

/**
 * Whether the chunked form handles chunks of q (pass 7 holds one chunk in a workgroup and binds
 * 16 storage buffers).
 */
export const chunkedApplies = (be: WebGpuBackend, q: number) =>
  q >= 1 && q <= 256 && be.limits.maxStorageBuffersPerShaderStage >= 16;

/** Bytes per batch row of the largest scratch buffer, for scanBackwardSlices.ts. */
export function chunkedBytesPerRow(s: SsdShape): number {
  const chunks = Math.ceil(s.l / s.q);
  return 4 * Math.max(chunks * s.h * s.q * s.q, chunks * s.h * s.p * s.n, s.l * s.h * Math.max(s.n, s.p));
}

/** Tiles [rm, rn] of a pass with m output rows: 128 rows where m ≥ 128 and memory allows. */
function tiles(be: WebGpuBackend, m: number): [number, number] {
  const rm = m >= 128 && 3 * 64 * 16 * 4 <= be.limits.maxComputeWorkgroupStorageSize ? 2 : 1;
  return [rm, 1];
}

/** Workgroups covering an m × n output in tiles [rm, rn]. */
const tileCount = (m: number, n: number, [rm, rn]: [number, number]) =>
  Math.ceil(m / (64 * rm)) * Math.ceil(n / (64 * rn));

export function chunkedBackward(
  be: WebGpuBackend,
  a: ChunkedInputs,
  s: SsdShape,
  grads: SsdGrads,
): { dx: GpuTensor; ddt: GpuTensor; dB: GpuTensor; dC: GpuTensor } {
  const { b, l, h, p, g, n, q } = s;
  const chunks = Math.ceil(l / q);
  const limits = [{ f32: a.dtLimit[0] }, { f32: Math.min(a.dtLimit[1], 3.4e38) }];
  const base = [l, h, p, g, n, q, chunks, ...limits, 0, 0];
  const bk = b * chunks;
  // The forward again, up to the states entering the chunks and C·Bᵀ.
  const dl = be.alloc([b, h, l]); // Δ
  const cs = be.alloc([b, h, l, 2]); // running sums of Δ·A, fixed point
  const S = be.alloc([b, chunks, h, p, n]);
  const cbT = be.alloc([b, chunks, g, q, q]);
  const last = copyView(be, a.state); // (b, h, p, n) the carry pass writes the final state here
  be.dispatch({ name: 'ssdCumsum', wgsl: cumsumWgsl }, [a.dt, a.dtBias, a.A, dl, cs], base, [h, chunks, b]);
  const transposed = n >= 128 && p < 128;
  const st = tiles(be, transposed ? n : p);
  be.dispatch(
    { name: 'ssdChunkState', wgsl: chunkStateWgsl(st[0], st[1], transposed) },
    [a.x, a.B, dl, cs, S],
    base,
    [transposed ? tileCount(n, p, st) : tileCount(p, n, st), h, bk],
  );
  const total = b * h * p * n;
  const g1 = grid1d(be, total, 256);
  const base1 = [...base.slice(0, -2), g1.stride, total];
  be.dispatch({ name: 'ssdCarry', wgsl: carryWgsl }, [cs, S, last], base1, g1.workgroups);
  const qq = tiles(be, q);
  be.dispatch({ name: 'ssdCb', wgsl: cbWgsl(...qq) }, [a.B, a.C, cbT], base, [tileCount(q, q, qq), g, bk]);
  // 1-2. The gradients of the chunk states, and of cs at each chunk's last position.
  const dS = be.alloc([b, chunks, h, p, n]);
  const pt = tiles(be, p);
  be.dispatch({ name: 'ssdBackwardStateGrad', wgsl: stateGradWgsl(...pt) }, [a.dy, a.C, cs, dS], base, [
    tileCount(p, n, pt),
    h,
    bk,
  ]);
  const prod = be.alloc([bk * h, p * n]);
  be.dispatch({ name: 'ssdBackwardCarry', wgsl: backwardCarryWgsl }, [cs, S, dS, prod], base1, g1.workgroups);
  const E = be.alloc([bk, h]);
  reduce(be, prod, E, { rows: bk * h, M: p * n, C: 1 });
  be.release(prod);
  // 3-6. The matmul-shaped passes.
  const P = be.alloc([b, chunks, h, q, q]);
  be.dispatch({ name: 'ssdBackwardDots', wgsl: dotsWgsl(...qq) }, [a.dy, a.x, dl, cs, P], base, [
    tileCount(q, q, qq),
    h,
    bk,
  ]);
  const dx = be.alloc([b, l, h * p]); // du until pass 7
  be.dispatch({ name: 'ssdBackwardDx', wgsl: dxWgsl(...qq) }, [a.B, dS, cbT, cs, a.dy, dx], base, [
    tileCount(q, p, qq),
    h,
    bk,
  ]);
  const [dCh, dCs] = [be.alloc([b, l, h, n]), be.alloc([b, l, h, n])];
  be.dispatch({ name: 'ssdBackwardDc', wgsl: dcWgsl(...qq) }, [a.dy, S, P, a.B, cs, dCh, dCs], base, [
    tileCount(q, n, qq),
    h,
    bk,
  ]);
  const [dBh, dBs] = [be.alloc([b, l, h, n]), be.alloc([b, l, h, n])];
  be.dispatch({ name: 'ssdBackwardDb', wgsl: dbWgsl(...qq) }, [a.x, dS, P, a.C, dl, cs, dBh, dBs], base, [
    tileCount(q, n, qq),
    h,
    bk,
  ]);
  // 7. dx, ddt, and per-chunk dA, dD.
  const ddt = be.alloc([b, l, h]);
  const dAD = be.alloc([bk, 2, h]);
  be.dispatch(
    { name: 'ssdBackwardFinish', wgsl: finishWgsl },
    [a.x, a.dy, a.dt, a.dtBias, a.A, a.D, a.B, a.C, dBs, dCs, E, cbT, P, dx, ddt, dAD],
    base,
    [chunks, h, b],
  );
  // Deterministic sums: over a group's heads, positions, batches and chunks.
  const dB = be.alloc([b, l, g * n]);
  const dC = be.alloc([b, l, g * n]);
  const heads = { rows: b * l * g, M: h / g, C: n };
  reduce(be, dBh, dB, heads);
  reduce(be, dCh, dC, heads);
  reduce(be, ddt, grads.dtBias as GpuTensor, { rows: 1, M: b * l, C: h, accumulate: true });
  const overChunks = { rows: 1, M: bk, C: h, mStride: 2 * h, rowStride: 0, accumulate: true };
  reduce(be, dAD, grads.ALog as GpuTensor, { ...overChunks, scale: a.A });
  reduce(be, dAD, grads.D as GpuTensor, { ...overChunks, offset: h });
  for (const t of [dl, cs, S, cbT, last, dS, E, P, dCh, dBh, dCs, dBs, dAD]) be.release(t);
  return { dx, ddt, dB, dC };
}
