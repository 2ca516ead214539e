// Timing on the WebGPU backend, shared by `mamba-ts bench --backend webgpu` (src/cli/benchWebgpu.ts)
// and the kernel script src/bench/gpuKernels.ts: random inputs (never zeros), the median of
// several submits after a warm-up of half a second of the same work (pipelines compiled, pool
// filled, the GPU's clocks up), the SSD's GPU time per pass from timestamp queries, GPU work
// waited for with onSubmittedWorkDone, the inputs of the selective-scan and SSD kernels,
// whole-model prefill and decode, and the bytes models behind the bandwidth figures.

import type { SelectiveScanArgs, SsdArgs } from '../backends/backend.ts';
import { backendTuning, type WebGpuBackend } from '../backends/webgpu/webgpuBackend.ts';
import type { Tensor } from '../core/tensor.ts';
import { decodeSchedule, readIds } from '../generate/generate.ts';
import type { CausalLM } from '../models/causalLM.ts';
import { releaseState } from '../models/state.ts';
import { KernelProfile, type KernelTime } from './gpuProfile.ts';

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Bytes the fused selective scan must move at least, in f32: it reads u, Δ and z (b, l, d), B and C
 * (b, l, n) and writes y (b, l, d) once each; A, D, the Δ bias and the state (b, d, n) are small
 * next to them and not counted.
 */
export function selectiveScanBytes(b: number, l: number, d: number, n: number): number {
  return (4 * d + 2 * n) * b * l * 4;
}

/**
 * Bytes the chunked SSD must move at least, in f32: it reads x (b, l, h·p), Δ (b, l, h), B and C
 * (b, l, n) and writes y (b, l, h·p) once each; A, D, the Δ bias and the state are not counted.
 */
export function ssdBytes(b: number, l: number, h: number, p: number, n: number): number {
  return (2 * h * p + h + 2 * n) * b * l * 4;
}

/** A note of the GPU time per pass: "GPU 4.140 ms: ssdOut 2.100, ssdChunkState 1.200, …" (ms). */
export function passNote(passes: KernelTime[] | null): string {
  if (passes === null) return 'no timestamp queries';
  const ms = (k: KernelTime) => (k.us / 1000).toFixed(3);
  const total = passes.reduce((sum, k) => sum + k.us, 0) / 1000;
  return `GPU ${total.toFixed(3)} ms: ${passes.map((k) => `${k.name} ${ms(k)}`).join(', ')}`;
}

export interface DecodeTiming {
  /** Wall ms per step, the logits (or, with `greedy`, the argmax ids) read back each step. */
  ms: number;
  /** CPU ms to record one step (JS, Dawn, and the submits every flushEvery dispatches): median. */
  recordMs: number;
  /** Dispatches one step records. */
  dispatches: number;
}

/** Times work on one WebGPU backend; inputs come from a fixed-seed generator. */
export class GpuTimer {
  private seed: number;

  constructor(
    readonly be: WebGpuBackend,
    /** How long every timing warms the GPU first (see `warm`). */
    readonly warmMs = 500,
    seed = 12345,
  ) {
    this.seed = seed;
  }

  private rand(): number {
    this.seed = (this.seed * 1103515245 + 12345) >>> 0;
    return this.seed / 2 ** 32;
  }

  /** A tensor of `shape` uniform in [lo, hi). */
  random(shape: number[], lo = -1, hi = 1): Tensor {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = lo + (hi - lo) * this.rand();
    return this.be.upload(data, shape);
  }

  /** Submits what is recorded and waits until the GPU has done it. */
  async idle(): Promise<void> {
    this.be.flush();
    await this.be.device.queue.onSubmittedWorkDone();
  }

  /**
   * Runs `fn` and waits for the GPU once, then again and again for warmMs. The GPU's clocks follow
   * its load: on the H100 a layer's SSD measured right after seconds of idling (its inputs made on the
   * CPU) took ~20 ms of wall time against 4.1 ms of GPU timestamps for its passes measured in a
   * busy loop, and short prefills varied 3× between runs; every timing here starts warm.
   */
  private async warm(fn: () => unknown): Promise<void> {
    await fn(); // the first call compiles its pipelines: seconds, with the GPU mostly idle
    await this.idle();
    const w0 = performance.now();
    while (performance.now() - w0 < this.warmMs) {
      await fn();
      await this.idle();
    }
  }

  /**
   * Median ms of `fn` recorded `inner` times per submit, over `reps` submits (after a warm-up).
   * `run` returns nothing, so every tensor `fn` makes (its result included) goes back to the pool.
   */
  async time(fn: () => unknown, reps: number, inner = 1): Promise<number> {
    const be = this.be;
    const run = () => {
      fn();
    };
    await this.warm(() => be.tidy(run));
    const times: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      for (let i = 0; i < inner; i++) be.tidy(run);
      await this.idle();
      times.push((performance.now() - t0) / inner);
    }
    return median(times);
  }

  /**
   * The SSD alone (`be.ssd(args)`): ms per call, the median of `reps` submits of `inner` calls
   * each, as the selective scan's row is timed (warm: see `warm`); and, where the device has
   * timestamp queries, the GPU µs of each pass (one more call, each dispatch in its own pass:
   * `passes` sum to an upper bound of the GPU time).
   */
  async ssd(args: SsdArgs, reps: number, inner = 1): Promise<{ ms: number; passes: KernelTime[] | null }> {
    const be = this.be;
    const run = () => {
      be.ssd(args);
    };
    const ms = await this.time(run, reps, inner);
    if (!KernelProfile.available(be)) return { ms, passes: null };
    const profile = new KernelProfile(be);
    be.passTimer = profile;
    be.tidy(run);
    return { ms, passes: await profile.collect() };
  }

  /** Inputs of the selective scan alone: (b, l, d) activations, state n, Δ not projected. */
  selectiveScanArgs(b: number, l: number, d: number, n: number): SelectiveScanArgs {
    return {
      u: this.random([b, l, d]),
      delta: this.random([b, l, d]),
      deltaBias: this.random([d], -4, -1),
      A: this.random([d, n], -3, -0.3),
      B: this.random([b, l, n]),
      C: this.random([b, l, n]),
      D: this.random([d]),
      z: this.random([b, l, d]),
      state: this.random([b, d, n]),
    };
  }

  /** Inputs of the chunked SSD alone: h heads of p, state n (one group), chunk q. */
  ssdArgs(b: number, l: number, h: number, p: number, n: number, q: number): SsdArgs {
    return {
      x: this.random([b, l, h * p]),
      dt: this.random([b, l, h]),
      dtBias: this.random([h], -3, 0),
      dtLimit: [0, Number.POSITIVE_INFINITY] as const,
      A: this.random([h], -3, -0.3),
      B: this.random([b, l, n]),
      C: this.random([b, l, n]),
      D: this.random([h]),
      state: this.random([b, h, p, n]),
      chunkSize: q,
    };
  }

  /**
   * Median ms of a prefill of `batch` sequences of `length` tokens from a fresh state, LM head on
   * the last positions (as generation does), logits read back; `reps` runs after the warm-up.
   */
  async prefill(model: CausalLM, batch: number, length: number, reps = 3): Promise<number> {
    const be = this.be;
    const vocab = model.config.vocabSize;
    const prompt = Int32Array.from({ length: batch * length }, (_, i) => (i * 7919) % vocab);
    const once = async () => {
      const state = model.newState(batch);
      await this.idle();
      const t0 = performance.now();
      const result = model.forward(prompt, batch, { state, lastOnly: true });
      await be.read(result.logits);
      const ms = performance.now() - t0;
      for (const t of [result.logits, result.hidden]) be.release(t);
      releaseState(be, state);
      return ms;
    };
    await this.warm(once);
    const times: number[] = [];
    for (let r = 0; r < reps; r++) times.push(await once());
    return median(times);
  }

  /**
   * Decode of `batch` sequences: ms per step over `steps` steps after the warm-up. Each step
   * reads back its logits or, with `greedy`, only the ids of their argmax (computed on the GPU),
   * which are the next step's tokens; as greedy generation does, the steps that read those ids
   * are recorded from them on the GPU before the host reads them: the ids of `group` steps are
   * read at once (one submit and one map), with `depth` more steps recorded behind them, each
   * writing its state into another state (as generation keeps the state before each step in
   * flight in case a sequence stops there). `recordMs` is the median host time to record a step.
   */
  async decode(
    model: CausalLM,
    batch: number,
    steps: number,
    greedy = false,
    depth = decodeSchedule(batch).lookahead,
    group = decodeSchedule(batch).group,
  ): Promise<DecodeTiming> {
    const be = this.be;
    const vocab = model.config.vocabSize;
    const states = Array.from({ length: greedy ? depth + group + 2 : 1 }, () => model.newState(batch));
    let newest = 0; // the state after the last step recorded
    const tokens = Int32Array.from({ length: batch }, (_, i) => (i * 31) % vocab); // (b)
    const inFlight: Array<{ ids: Tensor; read: boolean }> = []; // (b, 1) each, oldest first
    const records: number[] = [];
    let dispatches = 0; // of one step
    const record = () => {
      const d0 = be.dispatchCount;
      const from = inFlight.at(-1)?.ids ?? tokens;
      const into = (newest + 1) % states.length;
      inFlight.push({
        ids: be.tidy(() => be.argmax(model.step(from, states[newest], states[into]))),
        read: false,
      }); // (b, 1)
      newest = into;
      dispatches = be.dispatchCount - d0;
    };
    const step = async () => {
      const r0 = performance.now();
      if (!greedy) {
        const d0 = be.dispatchCount;
        const logits = model.step(tokens, states[0]); // (b, 1, vocab)
        records.push(performance.now() - r0);
        dispatches = be.dispatchCount - d0;
        await be.read(logits);
        be.release(logits);
        return;
      }
      if (inFlight.length === 0) record();
      if (!inFlight[0].read) {
        const reads = inFlight.slice(0, group);
        const reading = readIds(
          be,
          reads.map((r) => r.ids),
        );
        const r1 = performance.now(); // the steps recorded, not the read's submit
        let recorded = 0;
        for (; inFlight.length < reads.length + depth; recorded++) record();
        if (recorded > 0) records.push((performance.now() - r1) / recorded);
        await reading;
        for (const r of reads) r.read = true;
      }
      be.release(inFlight.shift()!.ids);
    };
    await this.warm(step);
    const warm = records.splice(0); // the timing's own, unless it recorded none (a short one)
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) await step();
    const ms = (performance.now() - t0) / steps;
    for (const { ids } of inFlight) be.release(ids);
    for (const s of states) releaseState(be, s);
    return { ms, recordMs: median(records.length > 0 ? records : warm), dispatches };
  }

  /**
   * One decoding step of `batch` sequences recorded whole and then submitted at once: the ms from
   * its submit until the GPU is done (Dawn's submit work included), and, where the device has
   * timestamp queries, the GPU µs per kernel of `profiled` more steps (summed, per step).
   */
  async decodeGpu(
    model: CausalLM,
    batch: number,
    profiled = 4,
  ): Promise<{ submitMs: number; kernels: KernelTime[] | null }> {
    const be = this.be;
    const state = model.newState(batch);
    const next = model.newState(batch); // written, as greedy decoding's steps do
    const tokens = Int32Array.from({ length: batch }, (_, i) => (i * 31) % model.config.vocabSize); // (b)
    const saved = { ...backendTuning };
    Object.assign(backendTuning, { flushFirst: 1e9, flushEvery: 1e9 });
    const times: number[] = [];
    try {
      for (let r = 0; r < 6; r++) {
        await this.idle();
        const logits = model.step(tokens, state, next); // recorded, not submitted
        const t0 = performance.now();
        await this.idle();
        if (r > 0) times.push(performance.now() - t0);
        be.release(logits);
      }
    } finally {
      Object.assign(backendTuning, saved);
    }
    const submitMs = median(times);
    if (!KernelProfile.available(be)) {
      for (const s of [state, next]) releaseState(be, s);
      return { submitMs, kernels: null };
    }
    const profile = new KernelProfile(be);
    be.passTimer = profile;
    for (let r = 0; r < profiled; r++) be.release(be.tidy(() => be.argmax(model.step(tokens, state, next))));
    const kernels = (await profile.collect()).map((k) => ({
      ...k,
      count: k.count / profiled,
      us: k.us / profiled,
    }));
    for (const s of [state, next]) releaseState(be, s);
    return { submitMs, kernels };
  }
}
