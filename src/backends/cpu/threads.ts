// Worker pool for linear() (and the jobs below): the main thread and the workers share out the n
// output columns of one call, synchronously, through a shared Int32Array control block; no
// postMessage per call, so a dispatch costs ~2 µs. Protocol: the main thread writes the job, stores
// the chunk word NEXT = lo | hi << 8 (column chunks [lo, hi) unclaimed), bumps SEQ and notifies.
// Each worker, polling SEQ for SPIN_MS after its last job and then asleep in Atomics.wait,
// increments BUSY, claims chunks from the top (hi − 1, by CAS), reads the job and computes them,
// then decrements BUSY; the main thread claims from the bottom (lo) and computes straight into the
// caller's arrays, then waits for BUSY = 0. Dynamic chunks keep a worker that is descheduled or slow to wake (a busy or
// virtualised machine) from stalling the call: the main thread simply takes its chunks. A claim
// succeeds only on a published word and the job is not rewritten while a claimer is BUSY, so a
// late worker can only ever join the current job.
//
// Arrays. Only w must live in a SharedArrayBuffer (sharedF32); x, bias and out may be any
// Float32Array. Each distinct weight SAB is posted to every worker once, on first sight (WeakMap
// SAB → id here, Map id → view in the worker, which reads its MessagePort with receiveMessageOnPort
// when ctrl[POSTED] is ahead); a FinalizationRegistry tells the workers to drop a SAB that was
// collected here. Activations go through one grow-only shared arena instead: x and bias are copied
// in, the workers write their columns of out there (chunks [split, chunks), one block) and the main
// thread copies them back: O(m·(k + n)) against O(m·n·k) work, about a microsecond at decode and
// < 1% at prefill, where registering every fresh activation buffer would cost a postMessage each.
// A w that is an activation (wFresh: linearBackward's swapped products, dy's rows) travels with the
// job instead (W_ID = 0), like a lane job's arrays below.
//
// Jobs. The pool also runs the transposes of linearBackward.ts (transposeCols over column chunks,
// ctrl[KIND] = TRANSPOSE), whose source and destination must both live in SharedArrayBuffers and,
// being fresh activations, travel with the job like a lane job's arrays (below). And lane jobs (ctrl[KIND] = LANES, runLanes): a LaneJob of
// laneJobs.ts (the scans and SSD, forward and backward) over chunks of independent lanes (channels,
// heads), its arrays (f32 or f64, all shared) and numeric parameters listed in ctrl and a shared
// Float64Array. The chunks are fixed by the lane count alone (laneWidth), never by the threads, so
// a job that sums over lanes per chunk and then over chunks in order gives the same bits on any
// number of threads. Lane arrays are mostly fresh activations: rather than registered (a worker
// would hold each until a FinalizationRegistry callback, which a training loop of resolved awaits
// seldom lets run: registered transposes grew memory by ~150 MB a step for a 3.6M model at 4 × 256),
// their buffers travel with each job in one message per worker (~10 µs), which the workers let go
// of when the job ends.
//
// Memory. V8 gives SharedArrayBuffers no weight in its collection heuristics (their per-isolate
// accounting length is 0, src/objects/backing-store.h: sharing one buffer between isolates would
// count it twice), so their bytes never prompt a collection: a buffer lives until every thread that
// holds a wrapper of it collects that wrapper, which its JS allocations alone decide. A wrapper that
// survives two scavenges waits for a full collection that may never come: a training step's
// activations (tensors are SABs) piled up on every thread count, 3.8 GB after 25 steps of Mamba
// small at 4 × 256 on 2 threads and 2.9 GB on 1, and the workers, which allocate next to nothing,
// kept the wrappers of every job's buffers. So each thread counts the shared bytes it makes
// (sharedF32, sharedF64) or receives (the workers' job buffers) and collects its heap once per
// GC_BYTES of them (countShared): a full collection of a heap of a few tens of MB (~10 ms) per
// 512 MiB of buffers. The main thread also allocates next to nothing while it waits (waitWhile).
//
// Size: MAMBA_TS_THREADS threads in all (main included; 0 or 1: no workers), by default
// os.availableParallelism(). Workers start on the first large enough job, with weights in a SAB, and
// are unref'd, so they never keep the process alive. Left out: calls from workers.

import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import type { linearCols } from './matmul.ts';
import type { transposeCols } from './transpose.ts';

/** One thread's part of a job (see linearCols): claimed column chunks, arrays from element offsets. */
export type LinearChunks = typeof linearCols;
/** One thread's part of a transpose job (see transposeCols). */
export type TransposeChunks = typeof transposeCols;

/** Control block slots (Int32). */
export const SEQ = 0;
export const BUSY = 1;
export const NEXT = 2;
export const FAILED = 3;
export const POSTED = 4;
export const READY = 5;
export const M = 6;
export const N = 7;
export const K = 8;
export const W_ID = 9;
export const W_OFF = 10;
export const A_ID = 11;
export const B_OFF = 12;
export const O_OFF = 13;
export const WIDTH = 14;
export const KIND = 15;
/** Transpose jobs: source and destination buffer ids and element offsets, cols, rectangle, add. */
export const S_OFF = 17;
export const D_OFF = 19;
export const COLS = 20;
export const R0 = 21;
export const R1 = 22;
export const C0 = 23;
export const C1 = 24;
export const ADD = 25;
/** Lane jobs: job id, lanes, lanes per chunk (WIDTH), then per array LANE_FIELDS slots: byte
 * offset, length, 1 for f64 (its buffer: the job's message). Parameters go through `params`. */
export const JOB = 16;
export const LANE_COUNT = 17;
export const ARRAY0 = 18;
export const LANE_FIELDS = 3;
const MAX_ARRAYS = 24;
const MAX_PARAMS = 16;
const SLOTS = ARRAY0 + LANE_FIELDS * MAX_ARRAYS;

/** Job kinds (ctrl[KIND]). */
export const LINEAR = 0;
export const TRANSPOSE = 1;
export const LANES = 2;

/** Lane job ids (LaneJob.id), the index of each in laneJobs.ts. */
export const SCAN_JOB = 0;
export const SCAN_BACKWARD_JOB = 1;
export const SSD_JOB = 2;
export const SSD_BACKWARD_JOB = 3;
export const CONV_JOB = 4;
export const CONV_BACKWARD_JOB = 5;

/** How long an idle thread polls before it sleeps in Atomics.wait (ms): waking a sleeping thread
 * takes ~50 µs on a VM, against ~1 µs for a polling one, and decode calls come every few tens of µs. */
const SPIN_MS = 1;
/** Polls between two reads of the clock while spinning (a poll takes a few ns). */
const SPIN_POLLS = 1024;
/** Jobs below this many multiply-adds run on the calling thread alone (~20 µs of work). */
const MIN_MACS = 1 << 15;
/** Chunks per job at most (lo and hi fit a byte) and multiply-adds per chunk at least. */
const MAX_CHUNKS = 128;
const CHUNK_MACS = 1 << 14;
/** Transposes below this many values run on the calling thread alone. */
const MIN_MOVES = 1 << 16;
/** Bytes of SharedArrayBuffers a thread makes or receives between two collections (see Memory). */
const GC_BYTES = 512 * 2 ** 20;
/** Lane jobs below this much work (the caller's count, ~multiply-adds) run on the calling thread. */
const MIN_LANE_WORK = 1 << 16;
/** Chunks of a lane job at most. */
const LANE_CHUNKS = 32;
/** How long the first parallel job waits for the workers to load before it gives up on them (ms). */
const START_MS = 10_000;

let sharedBytes = 0;
let collect: (() => void) | null = null;

/**
 * Counts `bytes` of SharedArrayBuffers this thread made or received and, once GC_BYTES are counted,
 * collects its heap (module state is per thread; see Memory above).
 */
export function countShared(bytes: number): void {
  sharedBytes += bytes;
  if (sharedBytes < GC_BYTES) return;
  sharedBytes = 0;
  if (collect === null) {
    setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as () => void;
  }
  collect();
}

/** A zeroed float32 array backed by a SharedArrayBuffer, so that worker threads can read it. */
export function sharedF32(length: number): Float32Array {
  countShared(length * 4);
  return new Float32Array(new SharedArrayBuffer(length * 4));
}

/** A zeroed float64 array backed by a SharedArrayBuffer (lane jobs' partial sums). */
export function sharedF64(length: number): Float64Array {
  countShared(length * 8);
  return new Float64Array(new SharedArrayBuffer(length * 8));
}

const scratches: Float64Array[] = [];

/**
 * This thread's float64 scratch `slot` with room for `length` values, grow-only (module state is per
 * thread): lane jobs run many chunks a step, and fresh scratches per chunk let the heap balloon.
 * Its contents are whatever the last user left.
 */
export function scratchF64(slot: number, length: number): Float64Array {
  if ((scratches[slot]?.length ?? -1) < length) scratches[slot] = new Float64Array(length);
  return scratches[slot].subarray(0, length);
}

/** An array a lane job reads or writes. */
export type LaneArray = Float32Array | Float64Array;

/**
 * A job over independent lanes: `keys` name its arrays in the order they travel, `run` computes the
 * lanes [lo, hi) of one chunk (of `chunk` index) from them and the numeric parameters.
 */
export interface LaneJob<Arrays extends { [K in keyof Arrays]: LaneArray }> {
  id: number;
  keys: readonly (keyof Arrays & string)[];
  run(a: Arrays, params: Float64Array, chunk: number, lo: number, hi: number): void;
}

/** Lanes per chunk of a lane job over `lanes` lanes in at most `chunks` chunks (≤ LANE_CHUNKS). */
export function laneWidth(lanes: number, chunks = LANE_CHUNKS): number {
  return Math.max(1, Math.ceil(lanes / Math.max(1, Math.min(chunks, LANE_CHUNKS))));
}

const cores = availableParallelism();

/** Threads linear() may use, the main thread included: MAMBA_TS_THREADS, read on every call (the
 * pool keeps the size it started with), else os.availableParallelism(). */
export function threadCount(): number {
  const env = Number.parseInt(process.env['MAMBA_TS_THREADS'] ?? '', 10);
  return Math.max(1, Number.isFinite(env) ? env : cores);
}

/** Workers running now (0 before the first parallel job, or if they could not start). */
export function workerCount(): number {
  return pool === null ? 0 : pool.ports.length;
}

/**
 * Polls ctrl[slot] while it equals `value`, for SPIN_MS, then sleeps until it changes; returns it.
 * The clock is read once per SPIN_POLLS polls: each performance.now() allocates a heap number, and
 * a thread spinning on it filled the main thread's young generation several times a step, so that
 * scavenges promoted the live activations (SharedArrayBuffers, which V8 does not count as external
 * memory) to the old generation, where they stayed as garbage until a rare full GC.
 */
export function waitWhile(ctrl: Int32Array, slot: number, value: number): number {
  const until = performance.now() + SPIN_MS;
  let v = Atomics.load(ctrl, slot);
  for (let polls = 1; v === value; polls++) {
    if (polls % SPIN_POLLS === 0 && performance.now() >= until) break;
    v = Atomics.load(ctrl, slot);
  }
  while (v === value) {
    Atomics.wait(ctrl, slot, value);
    v = Atomics.load(ctrl, slot);
  }
  return v;
}

/** Buffers registered with the workers so far (weights and the shared arena; 0 without a pool). */
export function registeredCount(): number {
  return pool === null ? 0 : pool.nextId - 1;
}

/** Claims the highest unclaimed chunk (workers), or the lowest (`low`, the main thread); −1 if none. */
export function claim(ctrl: Int32Array, low: boolean): number {
  for (let v = Atomics.load(ctrl, NEXT); ; ) {
    const lo = v & 255;
    const hi = v >> 8;
    if (lo >= hi) return -1;
    const got = Atomics.compareExchange(ctrl, NEXT, v, low ? v + 1 : v - 256);
    if (got === v) return low ? lo : hi - 1;
    v = got;
  }
}

/** What the workers' ports carry: a buffer registered (id, sab) or dropped (id), or the buffers of
 * the next lane job (lane), held by the workers for that job only. */
export type PoolMessage =
  | { id: number; sab?: SharedArrayBuffer }
  | { lane: SharedArrayBuffer[]; seq: number }; // seq: the SEQ of the job they are for

interface Pool {
  ctrl: Int32Array;
  ports: MessagePort[];
  ids: WeakMap<SharedArrayBuffer, number>;
  nextId: number;
  arena: Float32Array;
  params: Float64Array;
}

let pool: Pool | null = null;

// Worker bootstrap (CommonJS eval): imports matmulWorker; under tsx on Node 20 the loader hooks are
// not inherited by workers, so a .ts worker that fails to load registers tsx and tries again. A
// worker that cannot load at all says so through READY instead of hanging the first job.
const BOOT = `const { workerData: d } = require('node:worker_threads');
import(d.url).catch(async (e) => {
  if (e?.code !== 'ERR_UNKNOWN_FILE_EXTENSION' || !d.tsx) throw e;
  (await import(d.tsx)).register();
  await import(d.url + '?tsx');
}).catch(() => { Atomics.sub(d.ctrl, ${READY}, 1 << 20); Atomics.notify(d.ctrl, ${READY}); });`;

function startPool(workers: number): Pool {
  const ctrl = new Int32Array(new SharedArrayBuffer(SLOTS * 4));
  const params = sharedF64(MAX_PARAMS);
  const ext = import.meta.url.slice(import.meta.url.lastIndexOf('.'));
  const url = new URL(`./matmulWorker${ext}`, import.meta.url).href;
  let tsx: string | null = null;
  try {
    if (ext === '.ts') tsx = import.meta.resolve('tsx/esm/api');
  } catch {}
  const ports: MessagePort[] = [];
  const threads: Worker[] = [];
  for (let t = 0; t < workers; t++) {
    const { port1, port2 } = new MessageChannel();
    const workerData = { ctrl, params, port: port2, url, tsx };
    const worker = new Worker(BOOT, { eval: true, workerData, transferList: [port2] });
    worker.unref();
    port1.unref();
    threads.push(worker);
    ports.push(port1);
  }
  const deadline = performance.now() + START_MS;
  for (let r = 0; r < workers; r = Atomics.load(ctrl, READY)) {
    if (r < 0 || Atomics.wait(ctrl, READY, r, deadline - performance.now()) === 'timed-out') {
      for (const worker of threads) void worker.terminate();
      ports.length = 0;
      break;
    }
  }
  return { ctrl, params, ports, ids: new WeakMap(), nextId: 1, arena: sharedF32(0) };
}

function broadcast(p: Pool, message: PoolMessage): void {
  for (const port of p.ports) port.postMessage(message);
  Atomics.add(p.ctrl, POSTED, 1);
}

/** Posts the buffers of the job about to start (runJob bumps SEQ next), tagged with its SEQ. */
function postLane(p: Pool, buffers: SharedArrayBuffer[]): void {
  broadcast(p, { lane: buffers, seq: Atomics.load(p.ctrl, SEQ) + 1 });
}

const dropped = new FinalizationRegistry((id: number) => {
  if (pool) broadcast(pool, { id });
});

function idOf(p: Pool, sab: SharedArrayBuffer): number {
  let id = p.ids.get(sab);
  if (id === undefined) {
    id = p.nextId++;
    p.ids.set(sab, id);
    broadcast(p, { id, sab });
    dropped.register(sab, id);
  }
  return id;
}

const claimLow = () => (pool === null ? -1 : claim(pool.ctrl, true));

/** The pool, started on first use, or null when there are no workers to share with. */
function workers(): Pool | null {
  const threads = threadCount();
  if (threads < 2) return null;
  pool ??= startPool(threads - 1);
  return pool.ports.length === 0 ? null : pool;
}

/**
 * Publishes the job already written into ctrl as `chunks` chunks, runs the main thread's share
 * (`mine`, from its first claimed chunk), and returns once no worker is busy with it.
 */
function runJob(p: Pool, chunks: number, mine: (first: number) => void): void {
  const { ctrl } = p;
  Atomics.store(ctrl, FAILED, 0);
  Atomics.store(ctrl, NEXT, chunks << 8);
  Atomics.add(ctrl, SEQ, 1);
  Atomics.notify(ctrl, SEQ);
  const first = claim(ctrl, true);
  if (first >= 0) mine(first);
  for (let busy = Atomics.load(ctrl, BUSY); busy !== 0; ) busy = waitWhile(ctrl, BUSY, busy);
  if (Atomics.load(ctrl, FAILED) !== 0) throw new Error('cpu threads: a worker thread failed');
}

/**
 * Runs linear() on the pool and returns true, or returns false (the caller runs it alone) when there
 * are no workers, the job is small or w is not backed by a SharedArrayBuffer. A `wFresh` w (an
 * activation, used once) travels with the job instead of being registered: the workers would hold
 * a registered buffer until a FinalizationRegistry callback that a training loop never lets run.
 */
export function parallelLinear(
  out: Float32Array,
  x: Float32Array,
  w: Float32Array,
  bias: Float32Array | null,
  m: number,
  n: number,
  k: number,
  kernel: LinearChunks,
  wFresh = false,
): boolean {
  if (m * n * k < MIN_MACS || n < 16 || !(w.buffer instanceof SharedArrayBuffer)) return false;
  const p = workers();
  if (p === null) return false;
  const { ctrl } = p;
  const xLen = m * k;
  const bLen = bias === null ? 0 : n;
  if (p.arena.length < xLen + bLen + m * n) p.arena = sharedF32(2 * (xLen + bLen + m * n));
  const arena = p.arena;
  arena.set(x.subarray(0, xLen));
  if (bias !== null) arena.set(bias.subarray(0, n), xLen);
  const oOff = xLen + bLen;
  const cols = Math.max(n / MAX_CHUNKS, CHUNK_MACS / (m * k));
  const width = Math.min(n, Math.ceil(cols / 8) * 8);
  const chunks = Math.ceil(n / width);
  ctrl[KIND] = LINEAR;
  ctrl[M] = m;
  ctrl[N] = n;
  ctrl[K] = k;
  ctrl[W_ID] = wFresh ? 0 : idOf(p, w.buffer);
  ctrl[W_OFF] = w.byteOffset >> 2;
  ctrl[A_ID] = idOf(p, arena.buffer as SharedArrayBuffer);
  ctrl[B_OFF] = bias === null ? -1 : xLen;
  ctrl[O_OFF] = oOff;
  ctrl[WIDTH] = width;
  if (wFresh) postLane(p, [w.buffer as SharedArrayBuffer]);
  runJob(p, chunks, (first) => kernel(out, 0, x, 0, w, 0, bias, 0, m, n, k, width, first, claimLow));
  const split = Math.min(n, (Atomics.load(ctrl, NEXT) & 255) * width);
  // Copied back without a subarray per row: the main thread allocates as little as it can (see waitWhile).
  for (let i = 0; i < m; i++) for (let j = split; j < n; j++) out[i * n + j] = arena[oOff + i * n + j];
  return true;
}

/**
 * Runs transposeCols on the pool over the rectangle [r0, r1) × [c0, c1) of src (row-major, `cols`
 * columns) into dst, column chunks of a multiple of 32, and returns true; or returns false (the
 * caller runs it alone) when there are no workers, the job is small or an array is not shared.
 */
export function parallelTranspose(
  dst: Float32Array,
  src: Float32Array,
  cols: number,
  r0: number,
  r1: number,
  c0: number,
  c1: number,
  add: boolean,
  kernel: TransposeChunks,
): boolean {
  if ((r1 - r0) * (c1 - c0) < MIN_MOVES) return false;
  if (!(dst.buffer instanceof SharedArrayBuffer) || !(src.buffer instanceof SharedArrayBuffer)) return false;
  const p = workers();
  if (p === null) return false;
  const { ctrl } = p;
  const width = Math.max(32, Math.ceil((c1 - c0) / MAX_CHUNKS / 32) * 32);
  ctrl[KIND] = TRANSPOSE;
  ctrl[S_OFF] = src.byteOffset >> 2;
  ctrl[D_OFF] = dst.byteOffset >> 2;
  ctrl[COLS] = cols;
  ctrl[R0] = r0;
  ctrl[R1] = r1;
  ctrl[C0] = c0;
  ctrl[C1] = c1;
  ctrl[ADD] = add ? 1 : 0;
  ctrl[WIDTH] = width;
  const chunks = Math.ceil((c1 - c0) / width);
  postLane(p, [src.buffer as SharedArrayBuffer, dst.buffer as SharedArrayBuffer]);
  runJob(p, chunks, (first) => kernel(dst, 0, src, 0, cols, r0, r1, c0, c1, add, width, first, claimLow));
  return true;
}

/**
 * Runs `job` over `lanes` lanes in chunks of laneWidth(lanes, maxChunks): on the pool when there
 * are workers, `work` reaches MIN_LANE_WORK and every array is shared, else all chunks on the
 * calling thread.
 */
export function runLanes<Arrays extends { [K in keyof Arrays]: LaneArray }>(
  job: LaneJob<Arrays>,
  arrays: Arrays,
  params: readonly number[],
  lanes: number,
  work: number,
  maxChunks = LANE_CHUNKS,
): void {
  if (job.keys.length > MAX_ARRAYS || params.length > MAX_PARAMS)
    throw new Error(`runLanes: job ${job.id} has too many arrays or parameters`);
  const width = laneWidth(lanes, maxChunks);
  const chunks = Math.ceil(lanes / width);
  const values: LaneArray[] = job.keys.map((key) => arrays[key]);
  const shared = values.every((v) => v.buffer instanceof SharedArrayBuffer);
  const p = work < MIN_LANE_WORK || chunks < 2 || !shared ? null : workers();
  const chunk = (c: number, ps: Float64Array) =>
    job.run(arrays, ps, c, c * width, Math.min(lanes, (c + 1) * width));
  if (p === null) {
    const ps = Float64Array.from(params);
    for (let c = 0; c < chunks; c++) chunk(c, ps);
    return;
  }
  const { ctrl } = p;
  p.params.set(params);
  ctrl[KIND] = LANES;
  ctrl[JOB] = job.id;
  ctrl[LANE_COUNT] = lanes;
  ctrl[WIDTH] = width;
  values.forEach((v, i) => {
    const at = ARRAY0 + i * LANE_FIELDS;
    ctrl[at] = v.byteOffset;
    ctrl[at + 1] = v.length;
    ctrl[at + 2] = v instanceof Float64Array ? 1 : 0;
  });
  postLane(
    p,
    values.map((v) => v.buffer as SharedArrayBuffer),
  );
  runJob(p, chunks, (first) => {
    for (let c = first; c >= 0; c = claimLow()) chunk(c, p.params);
  });
}
