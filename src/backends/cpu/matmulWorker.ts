// Worker thread of the linear() pool (threads.ts): waits for a job in the shared control block,
// marks itself BUSY, claims column chunks from the top and runs linearCols on them, reading x and
// bias from the shared arena and writing out there (w registered, or posted with the job when
// fresh; or, for a TRANSPOSE job, transposeCols between the two buffers posted with it, or for a
// LANES job the chunks of a lane job of laneJobs.ts, on views of the buffers posted with it; job
// buffers are let go of afterwards); then clears BUSY. SharedArrayBuffers arrive on a MessagePort,
// read synchronously with receiveMessageOnPort whenever ctrl[POSTED] is ahead of what this worker
// has consumed. Never returns to its event loop; counts the bytes of the job buffers it receives
// (countShared: they prompt no collection otherwise, see Memory in threads.ts).

import { type MessagePort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { laneJobs } from './laneJobs.ts';
import { linearCols } from './matmul.ts';
import {
  A_ID,
  ADD,
  ARRAY0,
  B_OFF,
  BUSY,
  C0,
  C1,
  COLS,
  claim,
  countShared,
  D_OFF,
  FAILED,
  JOB,
  K,
  KIND,
  LANE_COUNT,
  LANE_FIELDS,
  LANES,
  type LaneArray,
  M,
  N,
  O_OFF,
  POSTED,
  type PoolMessage,
  R0,
  R1,
  READY,
  S_OFF,
  SEQ,
  TRANSPOSE,
  W_ID,
  W_OFF,
  WIDTH,
  waitWhile,
} from './threads.ts';
import { transposeCols } from './transpose.ts';

const { ctrl, params, port } = workerData as { ctrl: Int32Array; params: Float64Array; port: MessagePort };
const views = new Map<number, Float32Array>();
let consumed = 0;

/** The buffers of the latest lane job posted, held while it runs, and that job's SEQ. */
let lane: SharedArrayBuffer[] = [];
let laneSeq = 0;
/** Their bytes since the last job ended, counted then (a collection is best done while not BUSY). */
let received = 0;

/** Reads the messages posted so far: registrations, drops, lane jobs' buffers. */
function sync(): void {
  while (consumed < Atomics.load(ctrl, POSTED)) {
    const msg = receiveMessageOnPort(port);
    if (msg === undefined) break;
    const m = msg.message as PoolMessage;
    if ('lane' in m) {
      lane = m.lane;
      laneSeq = m.seq;
      for (const sab of lane) received += sab.byteLength;
    } else if (m.sab === undefined) views.delete(m.id);
    else views.set(m.id, new Float32Array(m.sab, 0, m.sab.byteLength >> 2));
    consumed++;
  }
}

function view(id: number): Float32Array {
  sync();
  const v = views.get(id);
  if (v === undefined) throw new Error(`matmulWorker: unknown buffer ${id}`);
  return v;
}

const claimHigh = () => claim(ctrl, false);

/** Runs the lane job in ctrl from chunk `first` on, on views of its registered arrays. */
function lanes(first: number): void {
  sync();
  const job = laneJobs[ctrl[JOB]];
  const arrays: Record<string, LaneArray> = {};
  job.keys.forEach((key, i) => {
    const at = ARRAY0 + i * LANE_FIELDS;
    arrays[key] =
      ctrl[at + 2] === 1
        ? new Float64Array(lane[i], ctrl[at], ctrl[at + 1])
        : new Float32Array(lane[i], ctrl[at], ctrl[at + 1]);
  });
  const [count, width] = [ctrl[LANE_COUNT], ctrl[WIDTH]];
  for (let c = first; c >= 0; c = claimHigh())
    job.run(arrays as never, params, c, c * width, Math.min(count, (c + 1) * width));
  lane = [];
}

Atomics.add(ctrl, READY, 1);
Atomics.notify(ctrl, READY);
for (let seq = 0; ; ) {
  seq = waitWhile(ctrl, SEQ, seq);
  // Drain the port on every wake, also when this wake claims nothing (the main thread took every
  // chunk first, common on a busy machine): queued messages hold the buffers they carry.
  sync();
  Atomics.add(ctrl, BUSY, 1);
  try {
    const first = claimHigh();
    // Nothing left to claim: the buffers go unless they are for a job not started yet (posted
    // after this wake's SEQ; the thread then wakes again at once and runs that job with them).
    if (first < 0 && laneSeq <= seq) lane = [];
    if (first >= 0 && ctrl[KIND] === LANES) lanes(first);
    else if (first >= 0 && ctrl[KIND] === TRANSPOSE) {
      sync();
      const [src, dst] = lane.map((sab) => new Float32Array(sab));
      const [cols, r0, r1, c0, c1] = [ctrl[COLS], ctrl[R0], ctrl[R1], ctrl[C0], ctrl[C1]];
      const add = ctrl[ADD] === 1;
      transposeCols(
        dst,
        ctrl[D_OFF],
        src,
        ctrl[S_OFF],
        cols,
        r0,
        r1,
        c0,
        c1,
        add,
        ctrl[WIDTH],
        first,
        claimHigh,
      );
      lane = [];
    } else if (first >= 0) {
      const arena = view(ctrl[A_ID]);
      const bOff = ctrl[B_OFF];
      const w = ctrl[W_ID] === 0 ? new Float32Array(lane[0]) : view(ctrl[W_ID]);
      const bias = bOff < 0 ? null : arena;
      const [m, n, k, width] = [ctrl[M], ctrl[N], ctrl[K], ctrl[WIDTH]];
      linearCols(arena, ctrl[O_OFF], arena, 0, w, ctrl[W_OFF], bias, bOff, m, n, k, width, first, claimHigh);
      lane = [];
    }
  } catch {
    Atomics.store(ctrl, FAILED, 1);
  }
  if (Atomics.sub(ctrl, BUSY, 1) === 1) Atomics.notify(ctrl, BUSY);
  countShared(received);
  received = 0;
}
