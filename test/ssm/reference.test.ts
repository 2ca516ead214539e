// Oracles that check each other: the float64 references of src/ssm/reference against brute force
// (matrix exponential, numeric integral), against each other (sequential = parallel scan,
// sequential = quadratic = chunked SSD, SSD = selective scan where it is one), and against
// themselves split in two (initial and final states). Each comparison also has a deliberately
// wrong variant that must miss by far more than the tolerance, so that the checks have teeth.
// Inputs are fresh random numbers each run; set SEED=<n> to replay a run (every test prints it).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { blellochScan, combine } from '../../src/ssm/reference/associativeScan.ts';
import { zohDiagonal, zohSimplified } from '../../src/ssm/reference/discretize.ts';
import {
  type SelectiveScanInputs,
  selectiveScanParallel,
  selectiveScanSequential,
} from '../../src/ssm/reference/selectiveScan.ts';
import { type SsdInputs, ssdChunked, ssdQuadratic, ssdSequential } from '../../src/ssm/reference/ssd.ts';
import { array, normal, type Rand, rngFor, SEED, sliceL, tracker, uniform } from '../helpers/random.ts';

// ---------------------------------------------------------------- discretization

/** exp(M) of a 2×2 matrix [m00, m01, m10, m11]: Taylor series after scaling, then squaring. */
function expm2(m: number[]): number[] {
  const mul = (x: number[], y: number[]) => [
    x[0] * y[0] + x[1] * y[2],
    x[0] * y[1] + x[1] * y[3],
    x[2] * y[0] + x[3] * y[2],
    x[2] * y[1] + x[3] * y[3],
  ];
  const norm = Math.max(...m.map(Math.abs));
  const squarings = Math.max(0, Math.ceil(Math.log2(norm / 0.25)));
  const scaled = m.map((v) => v / 2 ** squarings);
  let term = [1, 0, 0, 1];
  let sum = [1, 0, 0, 1];
  for (let k = 1; k <= 30; k++) {
    term = mul(term, scaled).map((v) => v / k);
    sum = sum.map((v, i) => v + term[i]);
  }
  for (let i = 0; i < squarings; i++) sum = mul(sum, sum);
  return sum;
}

test('zohDiagonal matches the matrix exponential (Van Loan) and the integral ∫₀^Δ exp(sA) ds · B', (t) => {
  const rand = rngFor(t);
  const worst = { expm: 0, integral: 0 };
  for (let trial = 0; trial < 200; trial++) {
    const delta = uniform(rand, 1e-3, 2);
    const A = uniform(rand, -5, 1);
    const B = normal(rand);
    const { Abar, Bbar } = zohDiagonal(delta, A, B);
    // Van Loan: exp(Δ [[A, B], [0, 0]]) = [[exp(ΔA), ∫₀^Δ exp(sA) ds B], [0, 1]].
    const e = expm2([delta * A, delta * B, 0, 0]);
    // Composite Simpson rule with 4000 intervals.
    const steps = 4000;
    let integral = 0;
    for (let k = 0; k <= steps; k++) {
      const w = k === 0 || k === steps ? 1 : k % 2 === 1 ? 4 : 2;
      integral += w * Math.exp(((k * delta) / steps) * A);
    }
    integral *= (delta / steps / 3) * B;
    const expmErr = Math.max(Math.abs(Abar - e[0]) / Math.abs(e[0]), Math.abs(Bbar - e[1]) / Math.abs(e[1]));
    const integralErr = Math.abs(Bbar - integral) / Math.abs(integral);
    worst.expm = Math.max(worst.expm, expmErr);
    worst.integral = Math.max(worst.integral, integralErr);
    assert.ok(expmErr < 1e-11 && integralErr < 1e-11, `Δ=${delta} A=${A} B=${B} (SEED=${SEED})`);
  }
  t.diagnostic(
    `largest relative difference: expm ${worst.expm.toExponential(2)}, integral ${worst.integral.toExponential(2)}`,
  );
});

test('zohDiagonal has the limit B̄ → ΔB as ΔA → 0', (t) => {
  const rand = rngFor(t);
  const delta = uniform(rand, 0.1, 2);
  const B = normal(rand);
  assert.deepEqual(zohDiagonal(delta, 0, B), { Abar: 1, Bbar: delta * B });
  assert.deepEqual(zohDiagonal(delta, -0, B), { Abar: 1, Bbar: delta * B });
  for (const A of [1e-8, -1e-8, 1e-13, -1e-13, -5e-324]) {
    const { Abar, Bbar } = zohDiagonal(delta, A, B);
    // B̄/(ΔB) = 1 + ΔA/2 + …: the relative deviation must be ΔA/2 to first order, not noise.
    assert.ok(Math.abs(Bbar / (delta * B) - 1 - (delta * A) / 2) <= 2e-15, `A=${A}: ${Bbar} (SEED=${SEED})`);
    assert.ok(Math.abs(Abar - 1) <= 2 * Math.abs(delta * A) + 1e-16);
  }
});

test('zohSimplified differs from zohDiagonal by O(Δ²) in B̄ only', (t) => {
  const rand = rngFor(t);
  const A = -uniform(rand, 0.5, 3);
  const B = normal(rand);
  const ratios: string[] = [];
  for (const delta of [1e-1, 1e-2, 1e-3, 1e-4]) {
    const exact = zohDiagonal(delta, A, B);
    const simple = zohSimplified(delta, A, B);
    assert.equal(simple.Abar, exact.Abar);
    // B̄_exact − ΔB = ΔB (ΔA/2 + (ΔA)²/6 + …), so the ratio to Δ²AB/2 is 1 + ΔA/3 + …
    const ratio = (exact.Bbar - simple.Bbar) / ((delta * delta * A * B) / 2);
    ratios.push(ratio.toFixed(6));
    assert.ok(Math.abs(ratio - 1) <= 0.5 * delta * Math.abs(A) + 1e-6, `Δ=${delta}: ratio ${ratio}`);
  }
  t.diagnostic(`(B̄_exact − ΔB) / (Δ²AB/2) for Δ = 1e-1 … 1e-4: ${ratios.join(', ')}`);
});

// ---------------------------------------------------------------- associative scan

test('combine is associative, not commutative; blellochScan equals a left fold', (t) => {
  const rand = rngFor(t);
  const check = tracker(t);
  const e = () => [uniform(rand, 0.1, 1), normal(rand)];
  const [p1, p2, p3] = [e(), e(), e()];
  const l12 = combine(p1[0], p1[1], p2[0], p2[1]);
  const left = combine(l12.a, l12.b, p3[0], p3[1]);
  const r23 = combine(p2[0], p2[1], p3[0], p3[1]);
  const right = combine(p1[0], p1[1], r23.a, r23.b);
  check.close('associativity', Float64Array.of(left.a, left.b), Float64Array.of(right.a, right.b));
  const swapped = combine(p2[0], p2[1], p1[0], p1[1]);
  check.far('commuted', Float64Array.of(swapped.a, swapped.b), Float64Array.of(l12.a, l12.b));
  for (const l of [1, 2, 3, 5, 8, 13, 16, 17, 33]) {
    const a = array(l, () => uniform(rand, 0.1, 1)); // (l)
    const b = array(l, () => normal(rand)); // (l)
    const foldA = new Float64Array(l); // (l)
    const foldB = new Float64Array(l); // (l)
    let acc = { a: 1, b: 0 };
    for (let i = 0; i < l; i++) {
      acc = combine(acc.a, acc.b, a[i], b[i]);
      foldA[i] = acc.a;
      foldB[i] = acc.b;
    }
    const got = blellochScan(a, b);
    check.close(`l=${l} a`, got.a, foldA);
    check.close(`l=${l} b`, got.b, foldB);
    if (l > 1)
      check.far(
        `l=${l} reversed`,
        blellochScan(Float64Array.from(a).reverse(), Float64Array.from(b).reverse()).b.reverse(),
        foldB,
      );
  }
});

// ---------------------------------------------------------------- selective scan

interface ScanOptions {
  D?: boolean;
  z?: boolean;
  softplus?: boolean;
  h0?: boolean;
}

function scanInputs(
  rand: Rand,
  b: number,
  l: number,
  d: number,
  n: number,
  o: ScanOptions,
): SelectiveScanInputs {
  return {
    b,
    l,
    d,
    n,
    u: array(b * l * d, () => normal(rand)),
    // Raw Δ: any sign before bias + softplus, positive when used as it is.
    delta: array(b * l * d, () => (o.softplus ? normal(rand) : uniform(rand, 0.05, 1))),
    A: array(d * n, () => -Math.exp(0.5 * normal(rand))),
    B: array(b * l * n, () => normal(rand)),
    C: array(b * l * n, () => normal(rand)),
    D: o.D ? array(d, () => normal(rand)) : undefined,
    z: o.z ? array(b * l * d, () => normal(rand)) : undefined,
    deltaBias: o.softplus ? array(d, () => normal(rand) - 1) : undefined,
    deltaSoftplus: o.softplus,
    h0: o.h0 ? array(b * d * n, () => normal(rand)) : undefined,
  };
}

const SCAN_OPTIONS: [string, ScanOptions][] = [
  ['plain', {}],
  ['D', { D: true }],
  ['z', { z: true }],
  ['bias+softplus', { softplus: true }],
  ['h0', { h0: true }],
  ['all', { D: true, z: true, softplus: true, h0: true }],
];

test('selectiveScanSequential = selectiveScanParallel (y and hLast)', (t) => {
  const rand = rngFor(t);
  const check = tracker(t);
  for (const l of [1, 7, 33]) {
    for (const [name, o] of SCAN_OPTIONS) {
      for (const [rule, discretize] of [
        ['simplified', zohSimplified],
        ['zohDiagonal', zohDiagonal],
      ] as const) {
        const inp = { ...scanInputs(rand, 2, l, 3, 4, o), discretize };
        const seq = selectiveScanSequential(inp);
        const par = selectiveScanParallel(inp);
        check.close(`l=${l} ${name} ${rule} y`, par.y, seq.y);
        check.close(`l=${l} ${name} ${rule} hLast`, par.hLast, seq.hLast);
      }
    }
  }
});

test('selective scan: mixing up the discretization rules is caught', (t) => {
  const rand = rngFor(t);
  const check = tracker(t);
  const inp = scanInputs(rand, 2, 33, 3, 4, { D: true, z: true, softplus: true, h0: true });
  const exact = selectiveScanSequential({ ...inp, discretize: zohDiagonal });
  const simple = selectiveScanParallel(inp);
  check.far('y', simple.y, exact.y);
  check.far('hLast', simple.hLast, exact.hLast);
});

test('selective scan split at k with h0 = hLast of the first part equals one scan', (t) => {
  const rand = rngFor(t);
  const check = tracker(t);
  const [b, l] = [2, 33];
  const inp = scanInputs(rand, b, l, 3, 4, { D: true, z: true, softplus: true, h0: true });
  const part = (t0: number, t1: number, h0: Float64Array | undefined): SelectiveScanInputs => ({
    ...inp,
    l: t1 - t0,
    u: sliceL(inp.u, b, l, t0, t1),
    delta: sliceL(inp.delta, b, l, t0, t1),
    B: sliceL(inp.B, b, l, t0, t1),
    C: sliceL(inp.C, b, l, t0, t1),
    z: sliceL(inp.z!, b, l, t0, t1),
    h0,
  });
  for (const [name, scan] of [
    ['sequential', selectiveScanSequential],
    ['parallel', selectiveScanParallel],
  ] as const) {
    const whole = scan(inp);
    for (const k of [1, 16, 20]) {
      const first = scan(part(0, k, inp.h0));
      const second = scan(part(k, l, first.hLast));
      check.close(`${name} k=${k} y[0, k)`, first.y, sliceL(whole.y, b, l, 0, k));
      check.close(`${name} k=${k} y[k, l)`, second.y, sliceL(whole.y, b, l, k, l));
      check.close(`${name} k=${k} hLast`, second.hLast, whole.hLast);
      check.far(`${name} k=${k} state dropped`, scan(part(k, l, undefined)).y, sliceL(whole.y, b, l, k, l));
    }
  }
});

// ---------------------------------------------------------------- SSD

interface SsdDims {
  b: number;
  l: number;
  h: number;
  p: number;
  g: number;
  n: number;
}

/** Random SSD inputs; `extras` adds D and h0. */
function ssdInputs(rand: Rand, dims: SsdDims, extras: boolean): SsdInputs {
  const { b, l, h, p, g, n } = dims;
  return {
    ...dims,
    x: array(b * l * h * p, () => normal(rand)),
    dt: array(b * l * h, () => uniform(rand, 0.05, 1)),
    A: array(h, () => -uniform(rand, 0.2, 2)),
    B: array(b * l * g * n, () => normal(rand)),
    C: array(b * l * g * n, () => normal(rand)),
    D: extras ? array(h, () => normal(rand)) : undefined,
    h0: extras ? array(b * h * p * n, () => normal(rand)) : undefined,
  };
}

test('ssdSequential = ssdQuadratic = ssdChunked for groups 1 and 2, several q', (t) => {
  const rand = rngFor(t);
  const check = tracker(t);
  for (const g of [1, 2]) {
    for (const l of [1, 7, 33]) {
      for (const withExtras of [false, true]) {
        const inp = ssdInputs(rand, { b: 2, l, h: 4, p: 3, g, n: 5 }, withExtras);
        const label = `g=${g} l=${l} ${withExtras ? 'D+h0' : 'plain'}`;
        const seq = ssdSequential(inp);
        const quad = ssdQuadratic(inp);
        check.close(`${label} quadratic y`, quad.y, seq.y);
        check.close(`${label} quadratic hLast`, quad.hLast, seq.hLast);
        for (const q of [1, 2, 4, 5, 8, l, l + 3]) {
          const chunked = ssdChunked(inp, q);
          check.close(`${label} q=${q} y`, chunked.y, seq.y);
          check.close(`${label} q=${q} hLast`, chunked.hLast, seq.hLast);
        }
      }
    }
  }
});

test('ssdChunked with an off-by-one in the decay is caught', (t) => {
  const rand = rngFor(t);
  const check = tracker(t);
  const inp = { ...ssdInputs(rand, { b: 2, l: 33, h: 4, p: 3, g: 2, n: 5 }, true), D: undefined };
  const want = ssdSequential(inp);
  // (D is left out: the perturbed x below must not reach the D x skip.)
  // Decaying from s to t by exp(Σ_{r=s..t} dt_r A) instead of exp(Σ_{r=s+1..t} dt_r A) multiplies
  // each input term dt_s x_s by exp(dt_s A); so the buggy chunked scan is ssdChunked on that x.
  const x = inp.x.map(
    (v, i) => v * Math.exp(inp.dt[Math.floor(i / inp.p)] * inp.A[Math.floor(i / inp.p) % inp.h]),
  );
  // Shifting dt by one position (decay and input weight of the neighbour) is caught as well.
  const dt = inp.dt.map((_, i) => inp.dt[Math.min(i + inp.h, inp.dt.length - 1)]);
  for (const q of [4, 8]) {
    check.far(`q=${q} decay includes source step y`, ssdChunked({ ...inp, x }, q).y, want.y);
    check.far(`q=${q} decay includes source step hLast`, ssdChunked({ ...inp, x }, q).hLast, want.hLast);
    check.far(`q=${q} dt shifted by one y`, ssdChunked({ ...inp, dt }, q).y, want.y);
  }
});

test('SSD exponentiates only non-positive numbers', (t) => {
  const rand = rngFor(t);
  const inp = ssdInputs(rand, { b: 1, l: 33, h: 2, p: 2, g: 1, n: 3 }, true);
  const exp = Math.exp;
  let largest = Number.NEGATIVE_INFINITY;
  Math.exp = (v: number) => {
    largest = Math.max(largest, v);
    return exp(v);
  };
  try {
    ssdSequential(inp);
    ssdQuadratic(inp);
    ssdChunked(inp, 5);
  } finally {
    Math.exp = exp;
  }
  t.diagnostic(`largest exponent ${largest}`);
  assert.ok(largest <= 0, `exp(${largest})`);
});

test('SSD split at k with h0 = hLast of the first part equals one pass', (t) => {
  const rand = rngFor(t);
  const check = tracker(t);
  const [b, l] = [2, 33];
  const inp = ssdInputs(rand, { b, l, h: 4, p: 3, g: 2, n: 5 }, true);
  const part = (t0: number, t1: number, h0: Float64Array | undefined): SsdInputs => ({
    ...inp,
    l: t1 - t0,
    x: sliceL(inp.x, b, l, t0, t1),
    dt: sliceL(inp.dt, b, l, t0, t1),
    B: sliceL(inp.B, b, l, t0, t1),
    C: sliceL(inp.C, b, l, t0, t1),
    h0,
  });
  for (const [name, ssd] of [
    ['sequential', ssdSequential],
    ['quadratic', ssdQuadratic],
    ['chunked q=4', (i: SsdInputs) => ssdChunked(i, 4)],
  ] as const) {
    const whole = ssd(inp);
    for (const k of [1, 13, 20]) {
      const first = ssd(part(0, k, inp.h0));
      const second = ssd(part(k, l, first.hLast));
      check.close(`${name} k=${k} y[0, k)`, first.y, sliceL(whole.y, b, l, 0, k));
      check.close(`${name} k=${k} y[k, l)`, second.y, sliceL(whole.y, b, l, k, l));
      check.close(`${name} k=${k} hLast`, second.hLast, whole.hLast);
      check.far(`${name} k=${k} state dropped`, ssd(part(k, l, undefined)).y, sliceL(whole.y, b, l, k, l));
    }
  }
});

test('SSD equals the selective scan with each head as p channels (A broadcast along n)', (t) => {
  const rand = rngFor(t);
  const check = tracker(t);
  const [b, l, h, p, g, n] = [2, 33, 4, 3, 2, 5];
  const inp = ssdInputs(rand, { b, l, h, p, g, n }, true);
  const ssd = ssdChunked(inp, 8);
  // Head hh as a selective scan over d = p channels, B and C from group `group`.
  const asScan = (hh: number, group: number): SelectiveScanInputs => {
    const bt = (i: number) => Math.floor(i / p); // flat (b, l, p) index → flat (b, l) index
    const groupRows = (M: Float64Array) =>
      Float64Array.from({ length: b * l * n }, (_, i) => M[(Math.floor(i / n) * g + group) * n + (i % n)]);
    return {
      b,
      l,
      d: p,
      n,
      u: Float64Array.from({ length: b * l * p }, (_, i) => inp.x[(bt(i) * h + hh) * p + (i % p)]),
      delta: Float64Array.from({ length: b * l * p }, (_, i) => inp.dt[bt(i) * h + hh]),
      A: new Float64Array(p * n).fill(inp.A[hh]),
      B: groupRows(inp.B),
      C: groupRows(inp.C),
      D: new Float64Array(p).fill(inp.D![hh]),
      h0: Float64Array.from(
        { length: b * p * n },
        (_, i) => inp.h0![(Math.floor(i / (p * n)) * h + hh) * p * n + (i % (p * n))],
      ),
    };
  };
  const headOf = (arr: Float64Array, hh: number, inner: number) =>
    Float64Array.from(
      { length: (arr.length / h / inner) * inner },
      (_, i) => arr[(Math.floor(i / inner) * h + hh) * inner + (i % inner)],
    );
  for (let hh = 0; hh < h; hh++) {
    const group = Math.floor(hh / (h / g));
    for (const [name, scan] of [
      ['sequential', selectiveScanSequential],
      ['parallel', selectiveScanParallel],
    ] as const) {
      const res = scan(asScan(hh, group));
      check.close(`head ${hh} ${name} y`, res.y, headOf(ssd.y, hh, p));
      check.close(`head ${hh} ${name} hLast`, res.hLast, headOf(ssd.hLast, hh, p * n));
    }
    check.far(
      `head ${hh} other group`,
      selectiveScanSequential(asScan(hh, g - 1 - group)).y,
      headOf(ssd.y, hh, p),
    );
  }
});

test('wrong shapes are rejected instead of read as NaN', (t) => {
  const rand = rngFor(t);
  const scan = scanInputs(rand, 2, 7, 3, 4, { D: true });
  assert.throws(() => selectiveScanSequential({ ...scan, B: scan.B.subarray(1) }), /B has 55 elements/);
  assert.throws(() => selectiveScanParallel({ ...scan, D: new Float64Array(4) }), /D has 4 elements/);
  const ssd = ssdInputs(rand, { b: 1, l: 7, h: 4, p: 2, g: 2, n: 3 }, true);
  assert.throws(() => ssdQuadratic({ ...ssd, g: 3 }), /not a multiple/);
  assert.throws(() => ssdChunked(ssd, 0), /positive integer/);
  assert.throws(() => ssdSequential({ ...ssd, h0: new Float64Array(3) }), /h0 has 3 elements/);
});
