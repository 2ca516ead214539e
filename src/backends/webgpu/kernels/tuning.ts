// The kernels' tuning tables (matvecTuning, skinnyTuning, mambaStepTuning, blockStepTuning, …)
// are plain objects that tests and the H100 sweeps change between calls; the caches of kernels
// built under one keep a snapshot of it and start again when it moved.

/**
 * Whether `table` differs from `snapshot` in any of its fields; if so the snapshot takes its
 * values (the caller then drops what it built under the old ones). Allocates nothing: it runs on
 * every dispatch of a decoding step.
 */
export function retuned<T extends object>(snapshot: T, table: T): boolean {
  let changed = false;
  for (const key in table) if (snapshot[key] !== table[key]) changed = true;
  if (changed) Object.assign(snapshot, table);
  return changed;
}
