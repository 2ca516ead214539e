// S4D (src/ssm/s4d.ts behind Backend.s4d and TrainingOps.s4dBackward) against its float64
// reference (src/ssm/reference/s4d.ts): the reference's recurrence = its convolution; the CPU
// op's convolution (FFT) form and recurrent form = the reference, outputs and final states, from
// a random initial state; a sequence read in pieces with the state = read at once; the backward
// (every input and parameter) against finite differences of the reference convolution.

import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import type { S4dArgs } from '../../src/backends/backend.ts';
import { CpuBackend } from '../../src/backends/cpu/cpuBackend.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import {
  type S4dInputs,
  s4dConvolutionRef,
  s4dKernelRef,
  s4dRecurrentRef,
} from '../../src/ssm/reference/s4d.ts';
import { CONV_MIN_LENGTH } from '../../src/ssm/s4d.ts';
import { checkGrad } from '../helpers/finiteDiff.ts';
import { normal, type Rand, relDiff, rngFor, sliceL, uniform } from '../helpers/random.ts';

const TOL = 1e-12; // float64 against float64
const EXACT = 1e-6; // the float32 kernel (float64 inside) against the float64 reference
const GRAD = 1e-4; // float32 gradients against float64 finite differences

const be = new CpuBackend();
const f32 = (a: Float64Array) => Float32Array.from(a);
const read = async (t: Tensor) => Float64Array.from(await be.read(t));
/** float32-representable draws, so that the kernel and the reference see the same values. */
const draw = (len: number, f: () => number) => Float64Array.from({ length: len }, () => Math.fround(f()));

/** Random S4D inputs near the initialisation: Δ in [0.01, 0.5], A_log = log(n + 1) + noise. */
function inputs(rand: Rand, b: number, l: number, d: number, n: number, withState: boolean) {
  const ALog = Float64Array.from({ length: d * n }, (_, i) =>
    Math.fround(Math.log((i % n) + 1) + 0.1 * normal(rand)),
  ); // (d, n)
  const x: S4dInputs = {
    b,
    l,
    d,
    n,
    u: draw(b * l * d, () => normal(rand)),
    logDt: draw(d, () => uniform(rand, Math.log(0.01), Math.log(0.5))),
    A: ALog.map((v) => -Math.exp(Math.fround(v))),
    B: draw(d * n, () => normal(rand)),
    C: draw(d * n, () => normal(rand)),
    D: draw(d, () => normal(rand)),
    z: draw(b * l * d, () => normal(rand)),
    h0: withState ? draw(b * d * n, () => normal(rand)) : undefined,
  };
  return { x, ALog };
}

/** The op's arguments for reference inputs (A rounded to float32 as the model computes it). */
function args(x: S4dInputs): S4dArgs {
  const { b, l, d, n } = x;
  return {
    u: be.upload(f32(x.u), [b, l, d]),
    logDt: be.upload(f32(x.logDt), [d]),
    A: be.upload(f32(x.A), [d, n]),
    B: be.upload(f32(x.B), [d, n]),
    C: be.upload(f32(x.C), [d, n]),
    D: be.upload(f32(x.D!), [d]),
    z: be.upload(f32(x.z!), [b, l, d]),
    state: x.h0 ? be.upload(f32(x.h0), [b, d, n]) : be.zeros([b, d, n]),
  };
}

function close(t: TestContext, label: string, got: Float64Array, want: Float64Array, tol: number) {
  const diff = relDiff(got, want);
  t.diagnostic(`${label}: largest relative difference ${diff.toExponential(2)}`);
  assert.ok(diff <= tol, `${label}: relative difference ${diff} > ${tol}`);
}

test('s4d reference: recurrence = convolution with K̄, and K̄ = the impulse response', (t) => {
  const rand = rngFor(t);
  const { x } = inputs(rand, 2, 9, 3, 4, false);
  const recurrent = s4dRecurrentRef(x).y;
  close(t, 'recurrent vs convolution', recurrent, s4dConvolutionRef(x), TOL);
  const impulse: S4dInputs = { ...x, b: 1, u: new Float64Array(x.l * x.d), D: undefined, z: undefined };
  impulse.u.fill(1, 0, x.d); // u_0 = 1 in every channel
  const response = s4dRecurrentRef(impulse).y; // (1, l, d)
  const K = s4dKernelRef(x); // (d, l)
  const transposed = Float64Array.from(
    { length: x.l * x.d },
    (_, i) => K[(i % x.d) * x.l + Math.floor(i / x.d)],
  );
  close(t, 'impulse response vs K̄', response, transposed, TOL);
});

test('s4d cpu op: convolution (FFT) and recurrent forms = the reference, outputs and states', async (t) => {
  const rand = rngFor(t);
  for (const l of [3, CONV_MIN_LENGTH - 1, CONV_MIN_LENGTH, 45, 128]) {
    const { x } = inputs(rand, 3, l, 4, 5, true);
    const want = s4dRecurrentRef(x);
    const a = args(x);
    const y = await read(be.s4d(a));
    const form = l >= CONV_MIN_LENGTH ? 'convolution' : 'recurrent';
    close(t, `l=${l} (${form}) y`, y, want.y, EXACT);
    close(t, `l=${l} (${form}) state`, await read(a.state), want.hLast, EXACT);
  }
});

test('s4d cpu op: a sequence in pieces with the state (convolution, then steps) = at once', async (t) => {
  const rand = rngFor(t);
  const [b, l, d, n, first] = [2, 50, 3, 4, 40];
  const { x } = inputs(rand, b, l, d, n, false);
  const whole = await read(be.s4d(args(x)));
  const state = be.zeros([b, d, n]);
  const pieces: Float64Array[] = [];
  for (const [t0, t1] of [
    [0, first],
    ...Array.from({ length: l - first }, (_, i) => [first + i, first + i + 1]),
  ]) {
    const piece: S4dInputs = {
      ...x,
      l: t1 - t0,
      u: sliceL(x.u, b, l, t0, t1),
      z: sliceL(x.z!, b, l, t0, t1),
    };
    pieces.push(await read(be.s4d({ ...args(piece), state })));
  }
  const joined = new Float64Array(b * l * d); // (b, l, d)
  for (let bi = 0; bi < b; bi++) {
    let at = 0;
    for (const p of pieces) {
      const rows = p.length / (b * d);
      joined.set(p.subarray(bi * rows * d, (bi + 1) * rows * d), (bi * l + at) * d);
      at += rows;
    }
  }
  close(t, 'pieces vs whole', joined, whole, EXACT);
});

test('s4dBackward: every input and parameter against finite differences, added onto existing gradients', async (t) => {
  const rand = rngFor(t);
  for (const [b, l, d, n] of [
    [3, 6, 2, 3],
    [2, 37, 1, 2],
  ]) {
    const { x, ALog } = inputs(rand, b, l, d, n, false);
    const a = args(x);
    const dOut = draw(b * l * d, () => normal(rand));
    // Onto zeros for the finite-difference check (an f32 sum onto O(1) values would round away a
    // small gradient's low bits), then again onto random values, which must gain exactly as much.
    const shapes = { logDt: [d], ALog: [d, n], B: [d, n], C: [d, n], D: [d] } as const;
    type Key = keyof typeof shapes;
    const keys = Object.keys(shapes) as Key[];
    const run = (init: (key: Key) => Float32Array) => {
      const grads = Object.fromEntries(keys.map((k) => [k, be.upload(init(k), shapes[k])])) as Record<
        Key,
        Tensor
      >;
      return { grads, ...be.training.s4dBackward!(a, be.upload(f32(dOut), [b, l, d]), grads) };
    };
    const zeros = run((k) => new Float32Array(shapes[k].reduce((x, y) => x * y, 1)));
    const start = Object.fromEntries(
      keys.map((k) => [
        k,
        f32(
          draw(
            shapes[k].reduce((x, y) => x * y, 1),
            () => normal(rand),
          ),
        ),
      ]),
    ) as Record<Key, Float32Array>;
    const onto = run((k) => start[k]);
    for (const k of keys) {
      const once = await read(zeros.grads[k]);
      const want = start[k].map((v, i) => v + once[i]); // rounded to f32 as the kernel's sum is
      const diff = relDiff(await read(onto.grads[k]), want);
      assert.ok(diff < 1e-6, `${k}: adding onto existing gradients differs by ${diff}`);
    }
    const { du, dz } = zeros;
    checkGrad(t, {
      name: `s4d (b=${b}, l=${l}, d=${d}, n=${n})`,
      inputs: { u: x.u, z: x.z!, logDt: x.logDt, ALog, B: x.B, C: x.C, D: x.D! },
      forward: (v) =>
        s4dConvolutionRef({ b, l, d, n, ...v, A: v.ALog.map((al) => -Math.exp(al)) } as S4dInputs),
      analytic: {
        u: await read(du),
        z: await read(dz),
        logDt: await read(zeros.grads.logDt),
        ALog: await read(zeros.grads.ALog),
        B: await read(zeros.grads.B),
        C: await read(zeros.grads.C),
        D: await read(zeros.grads.D),
      },
      dy: dOut,
      tol: GRAD,
    });
  }
});
