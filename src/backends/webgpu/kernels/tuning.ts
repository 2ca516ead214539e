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

/**
 * What a kernel works out per (weight tensor, batch size) and keeps (a decoding step would
 * otherwise redo it for every block, on the host's critical path), made again once `table` moves.
 * null: the kernel does not take that case.
 */
export class PlanCache<P> {
  private plans = new WeakMap<object, Map<number, P | null>>();
  private readonly builtWith: object;

  constructor(private readonly table: object) {
    this.builtWith = { ...table };
  }

  /** The plan kept for (key, batch), or undefined if none was made under the current table. */
  get(key: object, batch: number): P | null | undefined {
    if (retuned(this.builtWith, this.table)) this.plans = new WeakMap();
    return this.plans.get(key)?.get(batch);
  }

  set(key: object, batch: number, plan: P | null): P | null {
    let byBatch = this.plans.get(key);
    if (byBatch === undefined) {
      byBatch = new Map();
      this.plans.set(key, byBatch);
    }
    byBatch.set(batch, plan);
    return plan;
  }
}
