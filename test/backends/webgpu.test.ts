// Every WebGPU kernel against its CPU twin (itself checked against the float64 references) on
// fresh random inputs, through the Backend interface: outputs and final states. Shapes are small
// (lavapipe runs at ~1 GFLOP/s) but deliberately ragged: sizes that are not multiples of the tile
// and workgroup sizes, single tokens, several groups.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Backend } from '../../src/backends/backend.ts';
import { CpuBackend } from '../../src/backends/cpu/cpuBackend.ts';
import { argmaxTuning } from '../../src/backends/webgpu/kernels/argmax.ts';
import { convTuning } from '../../src/backends/webgpu/kernels/conv1d.ts';
import { linearTuning } from '../../src/backends/webgpu/kernels/linear.ts';
import { mambaStepTuning } from '../../src/backends/webgpu/kernels/mambaStep.ts';
import { matvecTuning } from '../../src/backends/webgpu/kernels/matvec.ts';
import { skinnyTiles, skinnyTuning } from '../../src/backends/webgpu/kernels/skinnyLinear.ts';
import { ssdTuning } from '../../src/backends/webgpu/kernels/ssd.ts';
import type { WebGpuBackend } from '../../src/backends/webgpu/webgpuBackend.ts';
import { numel, type Shape, type Tensor } from '../../src/core/tensor.ts';
import { webgpuBackend } from '../helpers/backends.ts';
import { normal, type Rand, relDiff, rngFor, uniform } from '../helpers/random.ts';

const TOL = 1e-5;
const gpu = await webgpuBackend();
const cpu = new CpuBackend();
const skip = typeof gpu === 'string' ? gpu : false;
/** More rows than one dimension of a dispatch grid holds (one workgroup per row kernels fold them). */
const pastGridLimit = skip ? 0 : (gpu as WebGpuBackend).limits.maxComputeWorkgroupsPerDimension + 3;

/** The same random data on both backends. */
function both(rand: Rand, shape: Shape, draw = () => normal(rand)): [Tensor, Tensor] {
  const data = Float32Array.from({ length: numel(shape) }, draw);
  return [cpu.upload(data, shape), (gpu as Backend).upload(data, shape)];
}

async function same(t: { diagnostic(m: string): void }, what: string, a: Tensor, b: Tensor): Promise<void> {
  const diff = relDiff(await (gpu as Backend).read(b), await cpu.read(a));
  t.diagnostic(`${what}: max rel diff ${diff.toExponential(2)}`);
  assert.ok(diff < TOL, `${what} differs by ${diff}`);
}

// m ≤ 64 takes the matvec kernel here (matvecMaxM raised from its default of 8: vec4 loads when
// k % 4 == 0, scalar otherwise; rows in blocks of up to 8, the last one ragged), larger m the
// tiled kernel (64-tiles; 128-tiles where tile128 forces them on these small shapes), split
// along k when its tiles are few and k is long (here 300 and 1000, the last slice ragged). The
// matvec cases run again with narrow teams and short runs of loads (several runs per row, the last
// one ragged; more columns per workgroup than the last one has).
const matvecAlt = { teams: 16, lanes: 8, maxLoads: 2 };
for (const [m, n, k, bias, tile128] of [
  [1, 70, 33, true, false],
  [1, 1000, 132, false, false],
  [2, 9, 256, true, false],
  [3, 200, 1, false, false],
  [4, 17, 64, true, false],
  [5, 33, 12, false, false],
  [6, 8, 7, true, false],
  [7, 300, 68, true, false],
  [8, 41, 100, false, false],
  [9, 5, 7, true, false],
  [130, 70, 300, false, false],
  [64, 64, 16, true, false],
  [200, 150, 36, true, true],
  [129, 131, 21, false, true],
  [37, 300, 68, true, false],
  [100, 33, 1000, true, false],
  [64, 100, 1001, true, false],
] as const) {
  for (const alt of m <= 64 ? [false, true] : [false]) {
    test(`linear m=${m} n=${n} k=${k} bias=${bias} tile128=${tile128}${alt ? ' matvec teams 16 x 8' : ''}`, {
      skip,
    }, async (t) => {
      const rand = rngFor(t);
      const matvecDefaults = { ...matvecTuning };
      linearTuning.minTiles128 = tile128 ? 0 : 256;
      linearTuning.matvecMaxM = 64;
      if (alt) Object.assign(matvecTuning, matvecAlt);
      t.after(() => {
        linearTuning.minTiles128 = 256;
        linearTuning.matvecMaxM = 8;
        Object.assign(matvecTuning, matvecDefaults);
      });
      const [xc, xg] = both(rand, [m, k]);
      const [wc, wg] = both(rand, [n, k]);
      const [bc, bg] = both(rand, [n]);
      await same(
        t,
        'out',
        cpu.linear(xc, wc, bias ? bc : null),
        (gpu as Backend).linear(xg, wg, bias ? bg : null),
      );
    });
  }
}

// matvecMaxM < m ≤ skinnyMaxM takes skinnyLinear (k split inside the workgroup, one dispatch),
// with skinnyMaxM raised to 128 for m = 70 and 100 (several row tiles). `groups` steers the tile
// (printed): 8 × 64, 8 × 16, 32 × 64, 16 × 8, 16 × 32, 32 × 16, 64 × 64, 32 × 32 and 64 × 32
// below, from one k-group to 32; m, n and k ragged (k % 4 ≠ 0: scalar loads; k = 7 shorter than
// one stage; k = 1001: many stages); x dense and as column views (vec4 loads when the offset and
// row stride allow them).
for (const [m, n, k, bias, groups] of [
  [9, 5, 7, true, 256],
  [12, 70, 33, false, 4096],
  [17, 33, 100, false, 1],
  [33, 130, 260, true, 64],
  [40, 200, 1001, true, 16],
  [64, 130, 68, true, 16],
  [64, 300, 68, true, 1],
  [64, 300, 36, false, 16],
  [48, 768, 20, true, 16],
  [64, 64, 16, false, 256],
  [100, 33, 100, true, 256],
  [70, 9, 7, false, 64],
] as const) {
  test(`linear (skinny) m=${m} n=${n} k=${k} bias=${bias} groups=${groups}`, { skip }, async (t) => {
    const rand = rngFor(t);
    Object.assign(linearTuning, { skinnyMaxM: 128, skinnyGroups: groups });
    t.after(() => {
      Object.assign(linearTuning, { skinnyMaxM: 64, skinnyGroups: 256 });
    });
    const { tm, tn, rb, cb, ks, kt } = skinnyTiles(m, n, groups);
    t.diagnostic(`tile ${tm} x ${tn}, blocks ${rb} x ${cb}, ${ks} k-groups of kt ${kt}`);
    const [wc, wg] = both(rand, [n, k]);
    const [bc, bg] = both(rand, [n]);
    const g = gpu as Backend;
    for (const [before, after] of [
      [0, 0],
      [3, 2],
      [4, 4],
    ]) {
      const [xc, xg] = both(rand, [m, before + k + after]);
      const [x0, x1] = [cpu.split(xc, [before, k, after])[1], g.split(xg, [before, k, after])[1]];
      const was = (gpu as WebGpuBackend).dispatchCount;
      const got = g.linear(x1, wg, bias ? bg : null);
      assert.equal((gpu as WebGpuBackend).dispatchCount - was, 1, 'one dispatch');
      await same(t, `out (x view ${before}, ${after})`, cpu.linear(x0, wc, bias ? bc : null), got);
    }
  });
}

// skinnyTuning's variants (what the H100 sweeps), plain and with the norm prologue: more threads,
// 8-wide register blocks, 32 KiB of workgroup memory, KT 4 (many stages); 1024 threads at 64 × 64
// tiles (4 k-groups of 4096 floats: the pairwise sums take rounds of one); k ragged and scalar.
for (const tuning of [
  { threads: 1024 },
  { threads: 512, rowBlock: 8, colBlock: 8, memory: 32768 },
  { rowBlock: 8, colBlock: 4, maxKt: 4 },
  { threads: 1024, rowBlock: 8, colBlock: 8, maxKt: 8 },
]) {
  for (const [m, n, k, groups] of [
    [64, 130, 100, 1],
    [64, 300, 68, 16],
    [40, 33, 1001, 256],
  ] as const) {
    test(`skinnyLinear m=${m} n=${n} k=${k} groups=${groups} ${JSON.stringify(tuning)}`, {
      skip,
    }, async (t) => {
      const rand = rngFor(t);
      const g = gpu as Backend;
      const defaults = { ...skinnyTuning };
      Object.assign(skinnyTuning, tuning);
      Object.assign(linearTuning, { skinnyGroups: groups });
      t.after(() => {
        Object.assign(skinnyTuning, defaults);
        Object.assign(linearTuning, { skinnyGroups: 256 });
      });
      const { limits } = gpu as WebGpuBackend;
      const [threads, bytes] = [
        limits.maxComputeInvocationsPerWorkgroup,
        limits.maxComputeWorkgroupStorageSize,
      ];
      const tiles = skinnyTiles(m, n, groups, false, threads, bytes);
      t.diagnostic(`${JSON.stringify(tiles)}`);
      const [wc, wg] = both(rand, [n, k]);
      const [bc, bg] = both(rand, [n]);
      const [xc, xg] = both(rand, [m, k]);
      await same(t, 'linear', cpu.linear(xc, wc, bc), g.linear(xg, wg, bg));
      const [rc, rg] = both(rand, [m, k]);
      const [nc, ng] = both(rand, [k]);
      const want = cpu.addRmsNormLinear(xc, rc, nc, 1e-5, wc, bc);
      const got = g.addRmsNormLinear(xg, rg, ng, 1e-5, wg, bg);
      await same(t, 'addRmsNormLinear out', want.out, got.out);
      await same(t, 'addRmsNormLinear residual', want.residual, got.residual);
    });
  }
}

test('embedding and split', { skip }, async (t) => {
  const rand = rngFor(t);
  const [wc, wg] = both(rand, [11, 7]);
  const ids = Int32Array.from({ length: 9 }, () => Math.floor(rand() * 11));
  const ec = cpu.embedding(cpu.upload(ids, [9]), wc);
  const eg = (gpu as Backend).embedding((gpu as Backend).upload(ids, [9]), wg);
  await same(t, 'embedding', ec, eg);
  const pc = cpu.split(ec, [2, 4, 1]);
  const pg = (gpu as Backend).split(eg, [2, 4, 1]);
  for (let i = 0; i < 3; i++) await same(t, `split part ${i}`, pc[i], pg[i]);
});

test('copy: whole tensors and from a view, enqueued in order; sizes that differ are refused', {
  skip,
}, async (t) => {
  const rand = rngFor(t);
  const g = gpu as Backend;
  const [, src] = both(rand, [5, 7]);
  const [, rows] = both(rand, [3, 10]);
  const part = g.split(rows, [3, 7])[1]; // (3, 7) a view at an unaligned offset
  for (const [what, from, shape] of [
    ['whole', src, [5, 7]],
    ['view', part, [3, 7]],
  ] as const) {
    const dst = g.zeros([...shape]);
    g.copy(dst, from);
    assert.deepEqual(await g.read(dst), await g.read(from), what);
  }
  const twice = g.zeros([5, 7]);
  g.copy(twice, src);
  g.copy(src, g.zeros([5, 7])); // after the copy above: twice keeps the old values
  assert.ok((await g.read(twice)).some((v) => v !== 0));
  for (const backend of [g, cpu])
    assert.throws(() => backend.copy(backend.zeros([4]), backend.zeros([5])), /cannot copy \[5\] into \[4\]/);
});

test('zerosTogether: aligned views of one buffer that kernels update in place, copied at once', {
  skip,
}, async (t) => {
  const rand = rngFor(t);
  const g = gpu as WebGpuBackend;
  const shapes: Shape[] = [[2, 3, 5], [7], [2, 4, 3]];
  const { parts, whole } = g.zerosTogether(shapes);
  assert.ok(whole !== null);
  const [, values] = both(rand, [7]);
  g.copy(parts[1], values);
  assert.deepEqual(await g.read(parts[1]), await g.read(values));
  for (const i of [0, 2])
    assert.ok(
      (await g.read(parts[i])).every((v) => v === 0),
      `part ${i} untouched`,
    );
  g.training.accumulate(parts[2], g.upload(new Float32Array(24).fill(1), [2, 4, 3])); // a kernel, in place
  const copy = g.zerosTogether(shapes);
  g.copy(copy.whole!, whole!);
  assert.deepEqual(await g.read(copy.parts[2]), new Float32Array(24).fill(1));
  assert.deepEqual(await g.read(copy.parts[1]), await g.read(values));
  const withBoth = g.allocatedBytes();
  for (const p of [...parts, ...copy.parts]) g.release(p); // each buffer destroyed once
  assert.equal(withBoth - g.allocatedBytes(), 2 * 4 * numel(whole!.shape));
});

test('addRmsNorm (with and without residual) and gatedRmsNorm (groups, both orders)', { skip }, async (t) => {
  const rand = rngFor(t);
  const [xc, xg] = both(rand, [5, 96]);
  const [rc, rg] = both(rand, [5, 96]);
  const [wc, wg] = both(rand, [96]);
  const first = [cpu.addRmsNorm(xc, null, wc, 1e-5), (gpu as Backend).addRmsNorm(xg, null, wg, 1e-5)];
  await same(t, 'normed (no residual)', first[0].normed, first[1].normed);
  const added = [cpu.addRmsNorm(xc, rc, wc, 1e-5), (gpu as Backend).addRmsNorm(xg, rg, wg, 1e-5)];
  await same(t, 'residual', added[0].residual, added[1].residual);
  await same(t, 'normed', added[0].normed, added[1].normed);
  const [zc, zg] = both(rand, [5, 96]);
  for (const group of [96, 24]) {
    for (const before of [false, true]) {
      await same(
        t,
        `gated group ${group} before ${before}`,
        cpu.gatedRmsNorm(xc, zc, wc, 1e-5, group, before),
        (gpu as Backend).gatedRmsNorm(xg, zg, wg, 1e-5, group, before),
      );
    }
  }
});

test('addRmsNorm and gatedRmsNorm past the grid limit of rows', { skip }, async (t) => {
  const rand = rngFor(t);
  const [xc, xg] = both(rand, [pastGridLimit, 8]);
  const [rc, rg] = both(rand, [pastGridLimit, 8]);
  const [wc, wg] = both(rand, [8]);
  const added = [cpu.addRmsNorm(xc, rc, wc, 1e-5), (gpu as Backend).addRmsNorm(xg, rg, wg, 1e-5)];
  await same(t, 'residual', added[0].residual, added[1].residual);
  await same(t, 'normed', added[0].normed, added[1].normed);
  const [zc, zg] = both(rand, [pastGridLimit, 8]);
  const gated = [
    cpu.gatedRmsNorm(xc, zc, wc, 1e-5, 4, false),
    (gpu as Backend).gatedRmsNorm(xg, zg, wg, 1e-5, 4, false),
  ];
  await same(t, 'gated', gated[0], gated[1]);
});

// walkMax 32: l ≤ 32 walks the length per channel; walkMax 0 forces the parallel form with its
// state shift (l = 2 < w − 1 shifts part of the old state).
for (const [l, walkMax] of [
  [1, 32],
  [9, 32],
  [2, 0],
  [45, 32],
] as const) {
  test(`causalConv1d l=${l} walkMax=${walkMax} with state`, { skip }, async (t) => {
    const rand = rngFor(t);
    convTuning.walkMaxLength = walkMax;
    t.after(() => {
      convTuning.walkMaxLength = 32;
    });
    const [b, c, w] = [2, 70, 4];
    const [xc, xg] = both(rand, [b, l, c]);
    const [wc, wg] = both(rand, [c, w]);
    const [bc, bg] = both(rand, [c]);
    const [sc, sg] = both(rand, [b, c, w - 1]);
    for (const silu of [false, true]) {
      await same(
        t,
        `y silu ${silu}`,
        cpu.causalConv1d(xc, wc, silu ? bc : null, sc, silu),
        (gpu as Backend).causalConv1d(xg, wg, silu ? bg : null, sg, silu),
      );
      await same(t, 'state', sc, sg);
    }
  });
}

// l ≥ 32 at these widths runs the chunked form (chunks of ≥ 16 positions, the last one ragged).
for (const [l, n] of [
  [1, 16],
  [37, 16],
  [13, 5],
  [100, 16],
  [61, 5],
] as const) {
  test(`selectiveScan l=${l} n=${n} with state`, { skip }, async (t) => {
    const rand = rngFor(t);
    const [b, d] = [2, 70];
    const [u, delta, z] = [both(rand, [b, l, d]), both(rand, [b, l, d]), both(rand, [b, l, d])];
    const deltaBias = both(rand, [d], () => uniform(rand, -4, -1));
    const A = both(rand, [d, n], () => -Math.exp(uniform(rand, -1, 2)));
    const [B, C] = [both(rand, [b, l, n]), both(rand, [b, l, n])];
    const D = both(rand, [d]);
    const state = both(rand, [b, d, n]);
    const on = (i: 0 | 1) => ({
      u: u[i],
      delta: delta[i],
      deltaBias: deltaBias[i],
      A: A[i],
      B: B[i],
      C: C[i],
      D: D[i],
      z: z[i],
      state: state[i],
    });
    await same(t, 'y', cpu.selectiveScan(on(0)), (gpu as Backend).selectiveScan(on(1)));
    await same(t, 'state', state[0], state[1]);
  });
}

// l ≤ scan (ssdTuning.scanMaxLength) runs the recurrence (n = 6: its scalar, non-vec4 state
// path), longer ones the chunked form: several chunks with the last one partial, q > l, groups 2,
// p and n ragged against the 64-tiles (and more than one tile), tiles of 128 (rm, rn = 2), tiles
// picked per pass (0, 0: 128 rows where there are ≥ 128, 64 columns) with a chunk of over 256 positions, and
// chunk states computed transposed (n ≥ 128 > p); the model's chunk is run as it is (maxChunk
// off) but in the last case, whose 200 is cut to the default maxChunk (128: the GPU runs other
// chunks than the CPU); 19 chunks carry their states in five runs of 4 (the last ragged). The
// initial state is random; the final state is compared.
for (const [l, q, g, dtMax, n, p, scan, rm, rn] of [
  [1, 8, 1, Number.POSITIVE_INFINITY, 8, 3, 32, 1, 1],
  [29, 8, 2, Number.POSITIVE_INFINITY, 8, 3, 32, 1, 1],
  [50, 8, 1, 0.05, 6, 3, 32, 1, 1],
  [20, 16, 2, 0.05, 8, 3, 0, 1, 1],
  [83, 16, 2, Number.POSITIVE_INFINITY, 8, 3, 0, 1, 1],
  [150, 8, 1, Number.POSITIVE_INFINITY, 8, 3, 0, 1, 1],
  [50, 8, 1, 0.05, 6, 5, 0, 1, 1],
  [70, 32, 2, Number.POSITIVE_INFINITY, 70, 67, 0, 1, 1],
  [45, 64, 1, Number.POSITIVE_INFINITY, 20, 5, 0, 2, 2],
  [100, 48, 2, Number.POSITIVE_INFINITY, 33, 9, 0, 2, 1],
  [300, 270, 1, Number.POSITIVE_INFINITY, 130, 4, 0, 0, 0],
  [90, 40, 2, 0.05, 128, 5, 0, 1, 1],
  [300, 200, 1, Number.POSITIVE_INFINITY, 128, 64, 0, 0, 0],
] as const) {
  const maxChunk = q === 200 ? 128 : Number.POSITIVE_INFINITY;
  const name = `ssd l=${l} chunk=${q} groups=${g} dtMax=${dtMax} n=${n} p=${p} scan≤${scan} tiles=${rm},${rn} maxChunk=${maxChunk}`;
  test(name, { skip }, async (t) => {
    const rand = rngFor(t);
    Object.assign(ssdTuning, { scanMaxLength: scan, maxChunk, tiles: rm === 0 ? null : [rm, rn] });
    t.after(() => {
      Object.assign(ssdTuning, { scanMaxLength: 32, maxChunk: 128, tiles: null });
    });
    const [b, h] = [2, 4];
    const x = both(rand, [b, l, h * p]);
    const dt = both(rand, [b, l, h]);
    const dtBias = both(rand, [h], () => uniform(rand, -3, 0));
    const A = both(rand, [h], () => -Math.exp(uniform(rand, -1, 2)));
    const [B, C] = [both(rand, [b, l, g * n]), both(rand, [b, l, g * n])];
    const D = both(rand, [h]);
    const state = both(rand, [b, h, p, n]);
    const on = (i: 0 | 1) => ({
      x: x[i],
      dt: dt[i],
      dtBias: dtBias[i],
      dtLimit: [0.001, dtMax] as const,
      A: A[i],
      B: B[i],
      C: C[i],
      D: D[i],
      state: state[i],
      chunkSize: q,
    });
    await same(t, 'y', cpu.ssd(on(0)), (gpu as Backend).ssd(on(1)));
    await same(t, 'state', state[0], state[1]);
  });
}

// Mamba's dt_proj handed to the scan (deltaProj): the one-pass form (l = 1, 9) computes the
// projection itself from a view of the low-rank Δ; the chunked form (l = 100) runs linear first.
for (const l of [1, 9, 100] as const) {
  test(`selectiveScan with deltaProj l=${l} (low-rank Δ as a view)`, { skip }, async (t) => {
    const rand = rngFor(t);
    const g = gpu as Backend;
    const [b, d, r, n] = [2, 70, 6, 16];
    const [u, z] = [both(rand, [b, l, d]), both(rand, [b, l, d])];
    const dbc = both(rand, [b, l, r + 2 * n]);
    const proj = both(rand, [d, r], () => uniform(rand, -0.5, 0.5));
    const deltaBias = both(rand, [d], () => uniform(rand, -4, -1));
    const A = both(rand, [d, n], () => -Math.exp(uniform(rand, -1, 2)));
    const D = both(rand, [d]);
    const state = both(rand, [b, d, n]);
    const on = (i: 0 | 1) => {
      const [low, B, C] = (i === 0 ? cpu : g).split(dbc[i], [r, n, n]);
      const rest = { deltaBias: deltaBias[i], A: A[i], D: D[i], z: z[i], state: state[i] };
      return { u: u[i], delta: low, deltaProj: proj[i], B, C, ...rest };
    };
    await same(t, 'y', cpu.selectiveScan(on(0)), g.selectiveScan(on(1)));
    await same(t, 'state', state[0], state[1]);
  });
}

// Rows wider than the workgroup (vec4 loads: c % 4 == 0) and ragged ones (scalar loads), with
// planted ties: the first index of the largest value wins, as on the CPU. Also with 64 threads and
// runs of 3 loads (several runs per thread, the last one ragged).
for (const [t, c, tuning] of [
  [1, 1000, {}],
  [3, 37, {}],
  [5, 2, {}],
  [2, 4100, {}],
  [2, 50280, {}],
  [pastGridLimit, 4, {}],
  [3, 2001, { threads: 64, unroll: 3 }],
  [2, 4100, { threads: 64, unroll: 3 }],
] as const) {
  test(`argmax t=${t} c=${c} ${JSON.stringify(tuning)} (ties keep the first)`, { skip }, async (t_) => {
    const rand = rngFor(t_);
    const defaults = { ...argmaxTuning };
    Object.assign(argmaxTuning, tuning);
    t_.after(() => Object.assign(argmaxTuning, defaults));
    const data = Float32Array.from({ length: t * c }, () => normal(rand));
    for (let row = 0; row < t; row++) {
      const a = Math.floor(rand() * c);
      const b = Math.floor(rand() * c);
      data[row * c + a] = 10;
      data[row * c + b] = 10;
    }
    const want = await cpu.read(cpu.argmax(cpu.upload(data, [t, c])));
    const g = gpu as Backend;
    const got = await g.read(g.argmax(g.upload(data, [t, c])));
    t_.diagnostic(`first ids ${Array.from(got.subarray(0, 8)).join(',')}`);
    assert.deepEqual(Array.from(got), Array.from(want));
    assert.ok(got instanceof Int32Array);
  });
}

// The fused decoding mixer (two dispatches), two steps from random states, with and without the
// conv bias, at batch 3 and 1: conv blocks of 64 channels with the last one ragged, x_proj read as
// vec4 (dInner % 4 == 0) or scalars, dt_proj rows and states as vec4 (R, n % 4 == 0) or scalars;
// both states are compared after each step. w = 1 takes the unfused ops. The other tunings: more
// blocks than scan threads per output, conv blocks as wide as their workgroup, scan workgroups
// narrower than x_proj's outputs (each thread then adds several of them); several sequences per
// workgroup (the last workgroup's ragged, more than the batch, more convs than conv threads), and
// one sequence per workgroup of both at batch 3 (the defaults take 4 and 2).
for (const [d, n, r, w, convBias, b, tuning] of [
  [72, 16, 8, 4, true, 3, {}],
  [70, 16, 6, 4, false, 3, {}],
  [130, 6, 5, 3, true, 3, {}],
  [20, 4, 4, 1, true, 3, {}],
  [72, 16, 8, 4, true, 1, {}],
  [130, 6, 5, 3, true, 1, { convChannels: 16, convThreads: 64, scanChannels: 64 }],
  [72, 16, 8, 2, false, 2, { convChannels: 32, convThreads: 32, scanChannels: 32 }],
  [70, 16, 6, 4, true, 2, { convChannels: 8, convThreads: 128, scanChannels: 16 }],
  [72, 16, 8, 4, true, 3, { convSeqs: 2, scanSeqs: 2 }],
  [70, 16, 6, 4, false, 3, { convSeqs: 1, scanSeqs: 1 }],
  [70, 16, 6, 4, true, 3, { convSeqs: 4, scanSeqs: 4, convChannels: 32, convThreads: 32, scanChannels: 32 }],
  [130, 6, 5, 3, false, 5, { convSeqs: 2, scanSeqs: 4, convThreads: 64 }],
] as const) {
  const name = `mambaStep d=${d} n=${n} R=${r} w=${w} convBias=${convBias} b=${b} ${JSON.stringify(tuning)}`;
  test(`${name} (two steps)`, { skip }, async (t) => {
    const rand = rngFor(t);
    const g = gpu as Backend;
    const defaults = { ...mambaStepTuning };
    Object.assign(mambaStepTuning, tuning);
    t.after(() => Object.assign(mambaStepTuning, defaults));
    const weights = {
      convWeight: both(rand, [d, w], () => uniform(rand, -0.5, 0.5)),
      convBias: both(rand, [d]),
      xProj: both(rand, [r + 2 * n, d], () => uniform(rand, -0.2, 0.2)),
      dtProj: both(rand, [d, r], () => uniform(rand, -0.5, 0.5)),
      dtBias: both(rand, [d], () => uniform(rand, -4, -1)),
      A: both(rand, [d, n], () => -Math.exp(uniform(rand, -1, 2))),
      D: both(rand, [d]),
    };
    const convState = both(rand, [b, d, w - 1]);
    const ssmState = both(rand, [b, d, n]);
    for (let step = 0; step < 2; step++) {
      const xz = both(rand, [b, 1, 2 * d]);
      const on = (i: 0 | 1) => ({
        xz: xz[i],
        convWeight: weights.convWeight[i],
        convBias: convBias ? weights.convBias[i] : null,
        xProj: weights.xProj[i],
        dtProj: weights.dtProj[i],
        dtBias: weights.dtBias[i],
        A: weights.A[i],
        D: weights.D[i],
        convState: convState[i],
        ssmState: ssmState[i],
      });
      const before = (gpu as WebGpuBackend).dispatchCount;
      const y = g.mambaStep(on(1));
      assert.equal((gpu as WebGpuBackend).dispatchCount - before === 2, w > 1, 'fused iff w > 1');
      await same(t, `y step ${step}`, cpu.mambaStep(on(0)), y);
      await same(t, `conv state step ${step}`, convState[0], convState[1]);
      await same(t, `ssm state step ${step}`, ssmState[0], ssmState[1]);
    }
  });
}

// The recurrence reads x, dt, B and C as column views in place (Backend.split's parts, as Mamba-2
// passes them): row strides and offsets that are multiples of 4 (B, C read as vec4), and ones that
// are not (n = 8 with an odd offset: B and C are copied first; n = 6: scalar reads). So does the
// chunked form (l > 32: several chunks of 8, the last partial), with any offset.
for (const [l, n, pad] of [
  [1, 8, 0],
  [5, 8, 1],
  [3, 6, 1],
  [45, 8, 1],
  [40, 6, 0],
] as const) {
  test(`ssd ${l > 32 ? 'chunked' : 'recurrence'} on views l=${l} n=${n} pad=${pad}`, { skip }, async (t) => {
    const rand = rngFor(t);
    const g = gpu as Backend;
    const [b, h, p] = [2, 4, 3];
    const width = pad + h * p + 2 * n + h;
    const packed = both(rand, [b, l, width]);
    const dtBias = both(rand, [h], () => uniform(rand, -3, 0));
    const A = both(rand, [h], () => -Math.exp(uniform(rand, -1, 2)));
    const D = both(rand, [h]);
    const state = both(rand, [b, h, p, n]);
    const on = (i: 0 | 1) => {
      const [, x, B, C, dt] = (i === 0 ? cpu : g).split(packed[i], [pad, h * p, n, n, h]);
      const rest = { dtBias: dtBias[i], dtLimit: [0.001, 0.1] as const, A: A[i], D: D[i] };
      return { x, dt, B, C, ...rest, state: state[i], chunkSize: 8 };
    };
    await same(t, 'y', cpu.ssd(on(0)), g.ssd(on(1)));
    await same(t, 'state', state[0], state[1]);
  });
}

// addRmsNorm fused into the projection: matvec for m ≤ matvecMaxM (vec4 rows when k % 4 == 0,
// scalar otherwise; several blocks of rows at m = 8 with matvecMaxM 64), skinnyLinear for
// m ≤ skinnyMaxM (tiles 8 × 8 with 32 k-groups, 64 × 64 with one, 16 × 32, nine row tiles of 8 × 8
// at m = 70 with skinnyMaxM 128; vec4 and scalar loads), both one dispatch, and the two-op fallback
// above both (m = 9 with skinnyMaxM 0); with and without a residual and a bias; the matvec cases
// also with matvecAlt (above).
for (const [m, k, n, maxM, skinnyMaxM, groups] of [
  [1, 96, 70, 8, 0, 256],
  [3, 33, 17, 8, 0, 256],
  [8, 100, 40, 8, 0, 256],
  [19, 64, 33, 64, 0, 256],
  [9, 36, 20, 8, 0, 256],
  [9, 36, 20, 8, 64, 256],
  [24, 33, 70, 8, 64, 256],
  [64, 100, 130, 8, 64, 1],
  [64, 100, 130, 8, 64, 16],
  [70, 64, 9, 8, 128, 256],
] as const) {
  for (const alt of m <= maxM ? [false, true] : [false]) {
    const name = `addRmsNormLinear m=${m} k=${k} n=${n} matvecMaxM=${maxM} skinnyMaxM=${skinnyMaxM} groups=${groups}${alt ? ' matvec teams 16 x 8' : ''}`;
    test(name, { skip }, async (t) => {
      const rand = rngFor(t);
      const g = gpu as Backend;
      const matvecDefaults = { ...matvecTuning };
      Object.assign(linearTuning, { matvecMaxM: maxM, skinnyMaxM, skinnyGroups: groups });
      if (alt) Object.assign(matvecTuning, matvecAlt);
      t.after(() => {
        Object.assign(linearTuning, { matvecMaxM: 8, skinnyMaxM: 64, skinnyGroups: 256 });
        Object.assign(matvecTuning, matvecDefaults);
      });
      const [x, normWeight] = [both(rand, [m, 1, k]), both(rand, [k])];
      const [weight, bias] = [both(rand, [n, k]), both(rand, [n])];
      for (const withResidual of [false, true]) {
        const residual = both(rand, [m, 1, k]);
        const on = (i: 0 | 1) =>
          [
            x[i],
            withResidual ? residual[i] : null,
            normWeight[i],
            1e-5,
            weight[i],
            withResidual ? bias[i] : null,
          ] as const;
        const before = (gpu as WebGpuBackend).dispatchCount;
        const got = g.addRmsNormLinear(...on(1));
        const fused = (gpu as WebGpuBackend).dispatchCount - before === 1;
        assert.equal(fused, m <= Math.max(maxM, skinnyMaxM), 'one dispatch iff m ≤ matvecMaxM or skinnyMaxM');
        const want = cpu.addRmsNormLinear(...on(0));
        await same(t, `out (residual ${withResidual})`, want.out, got.out);
        await same(t, `residual (residual ${withResidual})`, want.residual, got.residual);
      }
    });
  }
}
