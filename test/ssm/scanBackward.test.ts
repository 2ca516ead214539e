// The CPU backward of the selective scan and of SSD against finite differences of the float64
// reference forwards (selectiveScanSequential, ssdSequential), wrapped here in the parametrisation
// the kernels take (A = −exp(A_log); SSD's Δ = clamp(softplus(dt + dtBias), dtLimit)). Inputs are
// float32 values, so both sides see the same numbers; parameter gradients are pre-filled with
// random values to prove they are added into. Shapes are tiny but span several checkpoint chunks
// (l = 13: chunks of 4), odd sizes, g < h, a nonzero initial state and an active dtLimit clamp.
// Long sequences (l = 4096) check the memory bound by counting typed-array allocations, and the
// checkpoint walk by running the second half alone from the midpoint state.

import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { CpuBackend } from '../../src/backends/cpu/cpuBackend.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import { softplus } from '../../src/nn/activations.ts';
import { selectiveScanSequential } from '../../src/ssm/reference/selectiveScan.ts';
import { ssdSequential } from '../../src/ssm/reference/ssd.ts';
import { checkGrad, type Inputs } from '../helpers/finiteDiff.ts';
import { array, normal, type Rand, relDiff, rngFor, sliceL, uniform } from '../helpers/random.ts';

const TOL = 1e-4; // float32 kernel against float64 finite differences
const SPLIT_TOL = 1e-5; // the midpoint state passes through float32 once

const be = new CpuBackend();

/** Random float32-representable values, as float64. */
function f32Values(rand: Rand, len: number, draw: () => number = () => normal(rand)): Float64Array {
  return array(len, () => Math.fround(draw()));
}

const upload = (values: Float64Array, shape: number[]): Tensor => be.upload(Float32Array.from(values), shape);
const read = async (t: Tensor): Promise<Float64Array> => Float64Array.from(await be.read(t));
const negExp = (aLog: Float64Array): Float64Array => aLog.map((v) => -Math.exp(v));

/**
 * Pre-filled parameter gradients: small (1e-3) so that the f32 sum onto them keeps a small
 * gradient's low bits (onto O(1) values it would not), nonzero so that `=` instead of `+=` fails.
 */
const prefill = (rand: Rand, len: number) => f32Values(rand, len, () => 1e-3 * normal(rand));

/** What a parameter gradient tensor gained over its pre-filled value. */
async function added(t: Tensor, before: Float64Array): Promise<Float64Array> {
  return (await read(t)).map((v, i) => v - before[i]);
}

// ---------------------------------------------------------------- selective scan

interface ScanShape {
  b: number;
  l: number;
  d: number;
  n: number;
}

function scanInputs(rand: Rand, { b, l, d, n }: ScanShape): Inputs {
  return {
    u: f32Values(rand, b * l * d), // (b, l, d)
    delta: f32Values(rand, b * l * d, () => normal(rand) - 0.5), // (b, l, d)
    deltaBias: f32Values(rand, d, () => uniform(rand, -1, 0.5)), // (d)
    ALog: f32Values(rand, d * n, () => uniform(rand, -1, 1)), // (d, n)
    B: f32Values(rand, b * l * n), // (b, l, n)
    C: f32Values(rand, b * l * n), // (b, l, n)
    D: f32Values(rand, d), // (d)
    z: f32Values(rand, b * l * d), // (b, l, d)
    state: f32Values(rand, b * d * n), // (b, d, n)
  };
}

function scanForward({ b, l, d, n }: ScanShape, x: Inputs): Float64Array {
  return selectiveScanSequential({
    b,
    l,
    d,
    n,
    u: x.u,
    delta: x.delta,
    A: negExp(x.ALog),
    B: x.B,
    C: x.C,
    D: x.D,
    z: x.z,
    deltaBias: x.deltaBias,
    deltaSoftplus: true,
    h0: x.state,
  }).y; // (b, l, d)
}

function scanArgs({ b, l, d, n }: ScanShape, x: Inputs) {
  return {
    u: upload(x.u, [b, l, d]),
    delta: upload(x.delta, [b, l, d]),
    deltaBias: upload(x.deltaBias, [d]),
    A: upload(negExp(x.ALog), [d, n]),
    B: upload(x.B, [b, l, n]),
    C: upload(x.C, [b, l, n]),
    D: upload(x.D, [d]),
    z: upload(x.z, [b, l, d]),
    state: upload(x.state, [b, d, n]),
  };
}

async function checkScan(t: TestContext, shape: ScanShape): Promise<void> {
  const rand = rngFor(t);
  const { b, l, d, n } = shape;
  const inputs = scanInputs(rand, shape);
  const dy = f32Values(rand, b * l * d); // (b, l, d)
  const args = scanArgs(shape, inputs);
  const y = await read(be.selectiveScan({ ...args, state: upload(inputs.state, [b, d, n]) }));
  const forwardDiff = relDiff(y, scanForward(shape, inputs));
  t.diagnostic(`forward against the reference: ${forwardDiff.toExponential(2)}`);
  assert.ok(forwardDiff < 1e-5, `forward differs from the reference by ${forwardDiff}`);
  const before = { deltaBias: prefill(rand, d), ALog: prefill(rand, d * n), D: prefill(rand, d) };
  const grads = {
    deltaBias: upload(before.deltaBias, [d]),
    ALog: upload(before.ALog, [d, n]),
    D: upload(before.D, [d]),
  };
  const out = be.training.selectiveScanBackward(args, upload(dy, [b, l, d]), grads);
  checkGrad(t, {
    name: `selectiveScanBackward ${JSON.stringify(shape)}`,
    inputs,
    forward: (x) => scanForward(shape, x),
    analytic: {
      u: await read(out.du),
      delta: await read(out.dDelta),
      B: await read(out.dB),
      C: await read(out.dC),
      z: await read(out.dz),
      deltaBias: await added(grads.deltaBias, before.deltaBias),
      ALog: await added(grads.ALog, before.ALog),
      D: await added(grads.D, before.D),
    },
    dy,
    tol: TOL,
  });
}

test('selectiveScanBackward = finite differences, l = 13 over 4 checkpoint chunks', (t) =>
  checkScan(t, { b: 2, l: 13, d: 3, n: 5 }));

test('selectiveScanBackward = finite differences, l = 1 and l = 7', async (t) => {
  await checkScan(t, { b: 2, l: 1, d: 2, n: 3 });
  await checkScan(t, { b: 1, l: 7, d: 5, n: 1 });
});

// ---------------------------------------------------------------- SSD

interface SsdShape {
  b: number;
  l: number;
  h: number;
  p: number;
  g: number;
  n: number;
  dtLimit: readonly [number, number];
}

/** Δ as the kernel computes it: clamp(softplus(dt + dtBias), dtLimit). */
function ssdDelta({ b, l, h, dtLimit }: SsdShape, dt: Float64Array, dtBias: Float64Array): Float64Array {
  const delta = new Float64Array(b * l * h); // (b, l, h)
  for (let i = 0; i < delta.length; i++)
    delta[i] = Math.min(Math.max(softplus(dt[i] + dtBias[i % h]), dtLimit[0]), dtLimit[1]);
  return delta;
}

function ssdInputs(rand: Rand, shape: SsdShape): Inputs {
  const { b, l, h, p, g, n, dtLimit } = shape;
  const dtBias = f32Values(rand, h, () => uniform(rand, -1, 0.5)); // (h)
  // dt away from the clamp's corners, where finite differences would straddle a kink.
  const dt = new Float64Array(b * l * h); // (b, l, h)
  for (let i = 0; i < dt.length; i++) {
    let sp: number;
    do {
      dt[i] = Math.fround(1.2 * normal(rand) - 0.3);
      sp = softplus(dt[i] + dtBias[i % h]);
    } while (Math.min(Math.abs(sp - dtLimit[0]), Math.abs(sp - dtLimit[1])) < 1e-3);
  }
  return {
    x: f32Values(rand, b * l * h * p), // (b, l, h·p)
    dt,
    dtBias,
    ALog: f32Values(rand, h, () => uniform(rand, -1, 1)), // (h)
    B: f32Values(rand, b * l * g * n), // (b, l, g·n)
    C: f32Values(rand, b * l * g * n), // (b, l, g·n)
    D: f32Values(rand, h), // (h)
    state: f32Values(rand, b * h * p * n), // (b, h, p, n)
  };
}

function ssdForward(shape: SsdShape, x: Inputs): Float64Array {
  const { b, l, h, p, g, n } = shape;
  return ssdSequential({
    b,
    l,
    h,
    p,
    g,
    n,
    x: x.x,
    dt: ssdDelta(shape, x.dt, x.dtBias),
    A: negExp(x.ALog),
    B: x.B,
    C: x.C,
    D: x.D,
    h0: x.state,
  }).y; // (b, l, h, p)
}

function ssdArgs({ b, l, h, p, g, n, dtLimit }: SsdShape, x: Inputs, chunkSize: number) {
  return {
    x: upload(x.x, [b, l, h * p]),
    dt: upload(x.dt, [b, l, h]),
    dtBias: upload(x.dtBias, [h]),
    dtLimit,
    A: upload(negExp(x.ALog), [h]),
    B: upload(x.B, [b, l, g * n]),
    C: upload(x.C, [b, l, g * n]),
    D: upload(x.D, [h]),
    state: upload(x.state, [b, h, p, n]),
    chunkSize,
  };
}

async function checkSsd(t: TestContext, shape: SsdShape): Promise<void> {
  const rand = rngFor(t);
  const { b, l, h, p, n } = shape;
  const inputs = ssdInputs(rand, shape);
  const dy = f32Values(rand, b * l * h * p); // (b, l, h·p)
  const args = ssdArgs(shape, inputs, 4);
  const y = await read(be.ssd({ ...args, state: upload(inputs.state, [b, h, p, n]) }));
  const forwardDiff = relDiff(y, ssdForward(shape, inputs));
  t.diagnostic(`forward against the reference: ${forwardDiff.toExponential(2)}`);
  assert.ok(forwardDiff < 1e-5, `forward differs from the reference by ${forwardDiff}`);
  const delta = ssdDelta(shape, inputs.dt, inputs.dtBias);
  const clamped = delta.filter((v, i) => v !== softplus(inputs.dt[i] + inputs.dtBias[i % h])).length;
  t.diagnostic(`${clamped} of ${delta.length} Δ clamped`);
  if (Number.isFinite(shape.dtLimit[1]))
    assert.ok(clamped > 0 && clamped < delta.length, `the clamp should be active on some Δ, not all`);
  const before = { dtBias: prefill(rand, h), ALog: prefill(rand, h), D: prefill(rand, h) };
  const grads = {
    dtBias: upload(before.dtBias, [h]),
    ALog: upload(before.ALog, [h]),
    D: upload(before.D, [h]),
  };
  const out = be.training.ssdBackward(args, upload(dy, [b, l, h * p]), grads);
  checkGrad(t, {
    name: `ssdBackward ${JSON.stringify(shape)}`,
    inputs,
    forward: (x) => ssdForward(shape, x),
    analytic: {
      x: await read(out.dx),
      dt: await read(out.ddt),
      B: await read(out.dB),
      C: await read(out.dC),
      dtBias: await added(grads.dtBias, before.dtBias),
      ALog: await added(grads.ALog, before.ALog),
      D: await added(grads.D, before.D),
    },
    dy,
    tol: TOL,
  });
}

test('ssdBackward = finite differences, l = 13, g < h', (t) =>
  checkSsd(t, { b: 2, l: 13, h: 4, p: 3, g: 2, n: 5, dtLimit: [0, Number.POSITIVE_INFINITY] }));

test('ssdBackward = finite differences with dtLimit clamping, one group', (t) =>
  checkSsd(t, { b: 2, l: 11, h: 3, p: 2, g: 1, n: 3, dtLimit: [0.4, 1.1] }));

test('ssdBackward = finite differences, l = 1 and g = h', (t) =>
  checkSsd(t, { b: 2, l: 1, h: 2, p: 3, g: 2, n: 2, dtLimit: [0, Number.POSITIVE_INFINITY] }));

// ---------------------------------------------------------------- long sequences

/** Runs fn and returns the elements of every typed array allocated meanwhile (f32 and f64). */
function allocatedDuring(fn: () => void): number {
  const originals = [globalThis.Float64Array, globalThis.Float32Array] as const;
  let elements = 0;
  const count = <T extends object>(ctor: T): T =>
    new Proxy(ctor, {
      construct(target, args, newTarget) {
        const made = Reflect.construct(target as never, args, newTarget) as Float64Array;
        elements += made.length;
        return made;
      },
    });
  globalThis.Float64Array = count(originals[0]);
  globalThis.Float32Array = count(originals[1]);
  try {
    fn();
  } finally {
    [globalThis.Float64Array, globalThis.Float32Array] = originals;
  }
  return elements;
}

/** The (b, l/2.., inner) second half of a (b, l, inner) array. */
const secondHalf = (arr: Float64Array, b: number, l: number) => sliceL(arr, b, l, l / 2, l);

test('selectiveScanBackward at l = 4096: scratch ≪ l·d·n, second half = backward from the midpoint', async (t) => {
  const rand = rngFor(t);
  const shape = { b: 1, l: 4096, d: 64, n: 8 };
  const { b, l, d, n } = shape;
  const inputs = scanInputs(rand, shape);
  const dy = upload(f32Values(rand, b * l * d), [b, l, d]); // (b, l, d)
  const args = scanArgs(shape, inputs);
  const grads = { deltaBias: be.zeros([d]), ALog: be.zeros([d, n]), D: be.zeros([d]) };
  let full: ReturnType<typeof be.training.selectiveScanBackward> | undefined;
  const elements = allocatedDuring(() => {
    full = be.training.selectiveScanBackward(args, dy, grads);
  });
  const outputs = b * l * (3 * d + 2 * n); // du, dDelta, dz; dB, dC
  t.diagnostic(`allocated ${elements - outputs} scratch values beside the outputs; l·d·n = ${l * d * n}`);
  assert.ok(elements - outputs <= (l * d * n) / 8, `scratch of ${elements - outputs} values`);
  // The second half alone, from the state the forward reaches at the midpoint.
  const half = { ...shape, l: l / 2 };
  const firstHalf = Object.fromEntries(
    ['u', 'delta', 'B', 'C', 'z'].map((k) => [k, sliceL(inputs[k], b, l, 0, l / 2)]),
  );
  const mid = scanArgs(half, { ...inputs, ...firstHalf });
  be.selectiveScan(mid); // leaves the midpoint state in mid.state
  const rest = scanArgs(half, {
    ...inputs,
    ...Object.fromEntries(['u', 'delta', 'B', 'C', 'z'].map((k) => [k, secondHalf(inputs[k], b, l)])),
  });
  const part = be.training.selectiveScanBackward(
    { ...rest, state: mid.state },
    upload(secondHalf(await read(dy), b, l), [b, l / 2, d]),
    { deltaBias: be.zeros([d]), ALog: be.zeros([d, n]), D: be.zeros([d]) },
  );
  assert.ok(full);
  for (const key of ['du', 'dDelta', 'dB', 'dC', 'dz'] as const) {
    const diff = relDiff(await read(part[key]), secondHalf(await read(full[key]), b, l));
    t.diagnostic(`${key}: second half against the split run ${diff.toExponential(2)}`);
    assert.ok(diff <= SPLIT_TOL, `${key}: second half differs by ${diff}`);
  }
});

test('ssdBackward at l = 4096: scratch ≪ l·h·p·n, second half = backward from the midpoint', async (t) => {
  const rand = rngFor(t);
  const shape: SsdShape = { b: 1, l: 4096, h: 8, p: 16, g: 2, n: 8, dtLimit: [0, Number.POSITIVE_INFINITY] };
  const { b, l, h, p, g, n } = shape;
  const inputs = ssdInputs(rand, shape);
  const dy = upload(f32Values(rand, b * l * h * p), [b, l, h * p]); // (b, l, h·p)
  const args = ssdArgs(shape, inputs, 64);
  const grads = { dtBias: be.zeros([h]), ALog: be.zeros([h]), D: be.zeros([h]) };
  let full: ReturnType<typeof be.training.ssdBackward> | undefined;
  const elements = allocatedDuring(() => {
    full = be.training.ssdBackward(args, dy, grads);
  });
  const outputs = b * l * (h * p + h + 2 * g * n);
  t.diagnostic(
    `allocated ${elements - outputs} scratch values beside the outputs; l·h·p·n = ${l * h * p * n}`,
  );
  assert.ok(elements - outputs <= (l * h * p * n) / 8, `scratch of ${elements - outputs} values`);
  const half = { ...shape, l: l / 2 };
  const keys = ['x', 'dt', 'B', 'C'];
  const mid = ssdArgs(
    half,
    { ...inputs, ...Object.fromEntries(keys.map((k) => [k, sliceL(inputs[k], b, l, 0, l / 2)])) },
    64,
  );
  be.ssd(mid); // leaves the midpoint state in mid.state
  const rest = ssdArgs(
    half,
    { ...inputs, ...Object.fromEntries(keys.map((k) => [k, secondHalf(inputs[k], b, l)])) },
    64,
  );
  const part = be.training.ssdBackward(
    { ...rest, state: mid.state },
    upload(secondHalf(await read(dy), b, l), [b, l / 2, h * p]),
    { dtBias: be.zeros([h]), ALog: be.zeros([h]), D: be.zeros([h]) },
  );
  assert.ok(full);
  for (const key of ['dx', 'ddt', 'dB', 'dC'] as const) {
    const diff = relDiff(await read(part[key]), secondHalf(await read(full[key]), b, l));
    t.diagnostic(`${key}: second half against the split run ${diff.toExponential(2)}`);
    assert.ok(diff <= SPLIT_TOL, `${key}: second half differs by ${diff}`);
  }
});
