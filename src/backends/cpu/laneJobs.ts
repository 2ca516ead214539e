// The lane jobs the worker pool runs (threads.ts, ctrl[KIND] = LANES), indexed by LaneJob.id: the
// selective scan, SSD and causal conv1d, forward and backward. Imported by the workers
// (matmulWorker.ts) only.

import { convJob } from './conv1d.ts';
import { convBackwardJob } from './conv1dBackward.ts';
import { scanJob } from './selectiveScan.ts';
import { scanBackwardJob } from './selectiveScanBackward.ts';
import { ssdJob } from './ssd.ts';
import { ssdBackwardJob } from './ssdBackward.ts';
import type { LaneArray, LaneJob } from './threads.ts';

export const laneJobs = [
  scanJob,
  scanBackwardJob,
  ssdJob,
  ssdBackwardJob,
  convJob,
  convBackwardJob,
] as unknown as LaneJob<Record<string, LaneArray>>[];
