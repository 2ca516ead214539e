// `mamba-ts train --data PATH --family mamba|mamba2 [--preset NAME | --init DIR] --out DIR
// [options]`: trains a model on a text file or folder (src/train/), writing checkpoints in the
// Hugging Face layout to OUT/checkpoint-<step> (OUT/latest names the newest) and the loss curve
// to OUT/loss.svg; progress on stderr. `--resume` continues the run saved in OUT exactly, with
// the hyperparameters and backend it was started with (only --data, --backend and --steps may
// be given; the same backend gives the same numbers).

import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fail } from '../core/errors.ts';
import { numel } from '../core/tensor.ts';
import { readConfig } from '../io/hf.ts';
import { progressBar, trainLoop } from '../train/loop.ts';
import { resumeRun, savedHyper, startRun, type TrainHyper } from '../train/run.ts';
import { intOption, makeBackend, parse, requireString, type Values } from './args.ts';

const options = {
  data: { type: 'string' },
  family: { type: 'string' },
  preset: { type: 'string' },
  init: { type: 'string' },
  out: { type: 'string' },
  backend: { type: 'string' },
  steps: { type: 'string' },
  batch: { type: 'string' },
  'seq-len': { type: 'string' },
  lr: { type: 'string' },
  'min-lr': { type: 'string' },
  warmup: { type: 'string' },
  accum: { type: 'string' },
  'weight-decay': { type: 'string' },
  clip: { type: 'string' },
  'val-every': { type: 'string' },
  'val-fraction': { type: 'string' },
  'save-every': { type: 'string' },
  seed: { type: 'string' },
  tokenizer: { type: 'string' },
  resume: { type: 'boolean' },
} as const;

/** What --resume accepts besides itself: the rest comes from the checkpoint. */
const resumable = new Set(['out', 'data', 'backend', 'steps', 'resume']);

/** A number option in [min, max], or `fallback` when absent. */
function numberOption(
  values: Values,
  name: string,
  fallback: number,
  min: number,
  max = Number.POSITIVE_INFINITY,
): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (
    typeof raw !== 'string' ||
    raw.trim() === '' ||
    !Number.isFinite(value) ||
    !(value >= min && value <= max)
  ) {
    const range = max === Number.POSITIVE_INFINITY ? `>= ${min}` : `in [${min}, ${max}]`;
    fail(`train: --${name} must be a number ${range}, got "${raw}"`);
  }
  return value;
}

function hyperFrom(values: Values): Omit<TrainHyper, 'backend'> {
  const init = values.init as string | undefined;
  if (init !== undefined && values.preset !== undefined) fail('train: give --preset or --init, not both');
  const family = values.family ?? (init === undefined ? undefined : readConfig(init).family);
  if (family === undefined) fail('train: --family is required (mamba or mamba2)');
  if (family !== 'mamba' && family !== 'mamba2')
    fail(`train: unknown --family "${family}" (expected mamba or mamba2)`);
  const steps = intOption('train', values, 'steps', 1000, 1);
  const lr = numberOption(values, 'lr', 1e-3, 0);
  const tokenizer = values.tokenizer as string | undefined;
  const initTokenizer = init !== undefined && existsSync(join(init, 'tokenizer.json')) ? init : undefined;
  return {
    family,
    preset: init === undefined ? ((values.preset as string | undefined) ?? 'tiny') : null,
    init: init === undefined ? null : resolve(init),
    tokenizer:
      tokenizer !== undefined || initTokenizer !== undefined ? resolve(tokenizer ?? initTokenizer!) : 'bytes',
    steps,
    batch: intOption('train', values, 'batch', 8, 1),
    seqLen: intOption('train', values, 'seq-len', 256, 2),
    lr,
    minLr: numberOption(values, 'min-lr', lr / 10, 0),
    warmup: intOption('train', values, 'warmup', Math.min(100, Math.floor(steps / 10))),
    accum: intOption('train', values, 'accum', 1, 1),
    beta1: 0.9,
    beta2: 0.95,
    eps: 1e-8,
    weightDecay: numberOption(values, 'weight-decay', 0.1, 0),
    clip: numberOption(values, 'clip', 1, 0),
    valEvery: intOption('train', values, 'val-every', Math.min(100, steps), 1),
    saveEvery: intOption('train', values, 'save-every', Math.min(500, steps), 1),
    seed: intOption('train', values, 'seed', 0),
    valFraction: numberOption(values, 'val-fraction', 0.05, 0, 0.5),
    valBatches: 16,
  };
}

export async function trainCommand(argv: string[]): Promise<void> {
  const values = parse('train', argv, options);
  const out = requireString('train', values, 'out');
  let run: Awaited<ReturnType<typeof startRun>>;
  if (values.resume) {
    const extra = Object.keys(values).find((name) => values[name] !== undefined && !resumable.has(name));
    if (extra !== undefined) {
      fail(
        `train: --${extra} cannot be given with --resume (the run keeps the options saved in its checkpoint)`,
      );
    }
    const steps = values.steps === undefined ? undefined : intOption('train', values, 'steps', 0, 1);
    const data = values.data === undefined ? undefined : resolve(values.data as string);
    const backend = await makeBackend('train', values.backend ?? savedHyper(out).backend);
    run = resumeRun(out, backend, { dataPath: data, steps });
  } else {
    const data = resolve(requireString('train', values, 'data'));
    const hyper = hyperFrom(values);
    const backend = await makeBackend('train', values.backend);
    run = startRun(out, data, { ...hyper, backend: backend.name }, backend);
  }
  const { model, dataset, hyper } = run;
  const count = [...model.parameters().values()].reduce((sum, t) => sum + numel(t.shape), 0);
  process.stderr.write(
    `${values.resume ? `resuming at step ${run.step}: ` : ''}${model.config.family} model, ${count} parameters, on ${model.backend.name}; ` +
      `${run.data.tokens} tokens: ${dataset.trainCount} training and ${dataset.valCount} held-out sequences of ${hyper.seqLen}\n`,
  );
  await trainLoop(run, progressBar(process.stderr));
  const last = run.history.train.at(-1);
  const val = run.history.val.at(-1);
  process.stdout.write(
    `trained ${run.step} steps: loss ${last?.loss.toFixed(4) ?? '-'}, validation ${val?.loss.toFixed(4) ?? '-'}; model in ${join(out, `checkpoint-${run.step}`)}\n`,
  );
}
