// The training loop: each step zeroes the gradients, adds those of `accum` micro-batches of b
// sequences (model.lossAndGrads), lets AdamW update the weights, refreshes A from A_log, and
// records the mean loss; every valEvery steps it measures the held-out loss, every saveEvery
// steps (and at the end) it saves a checkpoint. Losses and the gradient norm are summed on the
// backend and read once per step. Progress goes to `progress` (a bar on a TTY, else one line per
// validation or checkpoint): step, loss, validation loss, tokens/s and the time left.

import { zeroGrads } from './gradients.ts';
import { type Run, saveRun } from './run.ts';

export interface StepReport {
  step: number;
  steps: number;
  loss: number;
  val: number | null;
  tokensPerSecond: number;
  secondsLeft: number;
  saved: string | null;
}

/** Mean held-out loss over up to valBatches full batches (mean of batch means: equal weights). */
export async function validationLoss(run: Run): Promise<number> {
  const { model, dataset, hyper } = run;
  const be = model.backend;
  const b = Math.min(hyper.batch, dataset.valCount);
  const batches = Math.max(1, Math.min(hyper.valBatches, Math.floor(dataset.valCount / b)));
  const sum = be.zeros([1]); // (1)
  for (let i = 0; i < batches; i++) {
    be.tidy(() => be.training.accumulate(sum, model.loss(dataset.valBatch(i * b, b), b)));
  }
  return (await be.read(sum))[0] / batches;
}

function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(h > 0 ? 2 : 1, '0');
  return `${h > 0 ? `${h}:` : ''}${mm}:${String(s % 60).padStart(2, '0')}`;
}

/** A reporter writing to `stream`: a bar redrawn in place on a TTY, else a line per event. */
export function progressBar(stream: NodeJS.WriteStream): (r: StepReport) => void {
  let lastVal: number | null = null;
  return (r) => {
    lastVal = r.val ?? lastVal;
    // A bar shows the latest validation loss; a line only the one measured at its step.
    const shown = stream.isTTY ? lastVal : r.val;
    const val = shown === null ? '' : `  val ${shown.toFixed(4)}`;
    const text = `step ${r.step}/${r.steps}  loss ${r.loss.toFixed(4)}${val}  ${Math.round(r.tokensPerSecond)} tok/s  ETA ${clock(r.secondsLeft)}`;
    const saved = r.saved === null ? '' : `saved ${r.saved}`;
    if (stream.isTTY) {
      const width = 24;
      const bar = '#'.repeat(Math.round((r.step / r.steps) * width)).padEnd(width);
      stream.write(`\r[${bar}] ${text}\x1b[K${saved ? `\n${saved}\n` : r.step === r.steps ? '\n' : ''}`);
    } else if (r.val !== null || r.saved !== null || r.step === r.steps) {
      stream.write(`${text}${saved ? `  ${saved}` : ''}\n`);
    }
  };
}

/** Trains `run` up to hyper.steps, reporting each step to `progress`. */
export async function trainLoop(run: Run, progress: (r: StepReport) => void = () => {}): Promise<void> {
  const { model, hyper } = run;
  const be = model.backend;
  const ops = be.training;
  const grads = zeroGrads(model);
  const lossSum = be.zeros([1]); // (1)
  const tokensPerStep = hyper.batch * hyper.seqLen * hyper.accum;
  const started = performance.now();
  const firstStep = run.step;
  while (run.step < hyper.steps) {
    for (const g of grads.values()) ops.zero(g);
    ops.zero(lossSum);
    for (let i = 0; i < hyper.accum; i++) {
      const ids = run.dataset.trainBatch(run.batcher.next(hyper.batch)); // (b, l)
      be.tidy(() => ops.accumulate(lossSum, model.lossAndGrads(ids, hyper.batch, grads)));
    }
    const { lr } = await run.optimizer.update(grads, hyper.accum);
    model.refreshDerived();
    const loss = (await be.read(lossSum))[0] / hyper.accum;
    run.step++;
    run.history.train.push({ step: run.step, loss, lr });
    let val: number | null = null;
    if (run.step % hyper.valEvery === 0 || run.step === hyper.steps) {
      val = await validationLoss(run);
      run.history.val.push({ step: run.step, loss: val });
    }
    const saved = run.step % hyper.saveEvery === 0 || run.step === hyper.steps ? await saveRun(run) : null;
    const seconds = (performance.now() - started) / 1000;
    const rate = ((run.step - firstStep) * tokensPerStep) / Math.max(seconds, 1e-9);
    progress({
      step: run.step,
      steps: hyper.steps,
      loss,
      val,
      tokensPerSecond: rate,
      secondsLeft: ((hyper.steps - run.step) * tokensPerStep) / Math.max(rate, 1e-9),
      saved,
    });
  }
}
