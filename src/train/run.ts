// A training run: the model, its data, optimizer and history, started fresh (a preset initialised
// as mamba_ssm does, or the weights of --init DIR) or resumed from OUT's latest checkpoint, and
// saved as a checkpoint (checkpoint.ts). A fresh preset model takes the tokenizer's vocabulary
// size, rounded up to a multiple of 8 (mamba_ssm's pad_vocab_size_multiple), instead of the
// preset's; its EOS id is the tokenizer's when it has one.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend } from '../backends/backend.ts';
import { fail } from '../core/errors.ts';
import type { Tensor } from '../core/tensor.ts';
import { loadModel } from '../io/hf.ts';
import { CausalLM } from '../models/causalLM.ts';
import { toHfConfigJson } from '../models/config.ts';
import { initParameters } from '../models/init.ts';
import { presetConfig } from '../models/presets.ts';
import {
  type HostTensor,
  type LossHistory,
  latestCheckpoint,
  readMoments,
  readTrainerState,
  replaceFile,
  saveCheckpoint,
} from './checkpoint.ts';
import { Batcher, byteTokenizer, Dataset, loadTokenizer, readCorpus, type TextTokenizer } from './data.ts';
import { AdamW, type OptimizerConfig } from './optimizer.ts';
import { lossSvg } from './plot.ts';

/** Every option of a run; saved in trainer_state.json and reused by --resume. */
export interface TrainHyper extends OptimizerConfig {
  family: 'mamba' | 'mamba2';
  /** A preset name, or null with `init`. */
  preset: string | null;
  /** The folder of the starting weights, or null for a fresh preset. */
  init: string | null;
  /** "bytes" or the path of the tokenizer.json (folder) used. */
  tokenizer: string;
  /** The backend's name (cpu, webgpu): --resume continues on it unless told otherwise. */
  backend: string;
  batch: number; // b
  seqLen: number; // l
  accum: number;
  valEvery: number;
  saveEvery: number;
  seed: number;
  valFraction: number;
  /** At most this many batches of held-out sequences per validation. */
  valBatches: number;
}

export interface Run {
  readonly out: string;
  readonly hyper: TrainHyper;
  readonly model: CausalLM;
  readonly dataset: Dataset;
  readonly batcher: Batcher;
  readonly optimizer: AdamW;
  readonly tokenizer: TextTokenizer;
  readonly data: { path: string; tokens: number; digest: string };
  history: LossHistory;
  /** Steps done. */
  step: number;
}

function roundUp(n: number, multiple: number): number {
  return Math.ceil(n / multiple) * multiple;
}

function chooseTokenizer(hyper: TrainHyper): TextTokenizer {
  return hyper.tokenizer === 'bytes' ? byteTokenizer() : loadTokenizer(hyper.tokenizer);
}

function freshModel(hyper: TrainHyper, tokenizer: TextTokenizer, backend: Backend): CausalLM {
  if (hyper.init !== null) {
    const model = loadModel(hyper.init, backend);
    if (model.config.family !== hyper.family) {
      fail(`${hyper.init}: holds a ${model.config.family} model, not ${hyper.family} (--family)`);
    }
    if (model.config.vocabSize < tokenizer.vocabSize) {
      fail(
        `${hyper.init}: the model's vocabulary (${model.config.vocabSize}) is smaller than the tokenizer's (${tokenizer.vocabSize})`,
      );
    }
    return model;
  }
  const preset = presetConfig(hyper.family, hyper.preset ?? 'tiny');
  const config = {
    ...preset,
    vocabSize: roundUp(tokenizer.vocabSize, 8),
    eosTokenId: tokenizer.eosTokenId ?? preset.eosTokenId,
  };
  const params = initParameters(config, hyper.seed);
  return new CausalLM(config, backend, (name) => params.get(name));
}

/** The options of the run saved in `out` (its latest checkpoint). */
export function savedHyper(out: string): TrainHyper {
  return readTrainerState(latestCheckpoint(out)).hyper as unknown as TrainHyper;
}

/** Starts a run into `out` (which must not hold one) on the corpus at `dataPath`; hyper.backend names `backend`. */
export function startRun(out: string, dataPath: string, hyper: TrainHyper, backend: Backend): Run {
  if (existsSync(join(out, 'latest'))) {
    fail(`${out}: already holds a training run; pass --resume to continue it, or choose another --out`);
  }
  const tokenizer = chooseTokenizer(hyper);
  const corpus = readCorpus(dataPath, tokenizer);
  const model = freshModel(hyper, tokenizer, backend);
  if (corpus.tokens.some((id) => id >= model.config.vocabSize)) {
    fail(`${dataPath}: the tokenizer gives ids beyond the model's vocabulary (${model.config.vocabSize})`);
  }
  const dataset = new Dataset(corpus.tokens, hyper.seqLen, hyper.valFraction);
  return {
    out,
    hyper,
    model,
    dataset,
    batcher: new Batcher(dataset.trainCount, hyper.seed + 1),
    optimizer: new AdamW(backend, model.parameters(), hyper),
    tokenizer,
    data: { path: dataPath, tokens: corpus.tokens.length, digest: corpus.digest },
    history: { train: [], val: [] },
    step: 0,
  };
}

/**
 * Resumes the run saved in `out` from its latest checkpoint: the weights, moments, data position
 * and history as saved, the hyperparameters too (`steps` may be raised; the schedule then
 * differs from the first run's). `dataPath` replaces the saved data path; the tokens must match.
 */
export function resumeRun(
  out: string,
  backend: Backend,
  options: { dataPath?: string; steps?: number } = {},
): Run {
  const dir = latestCheckpoint(out);
  const state = readTrainerState(dir);
  const hyper = { ...(state.hyper as unknown as TrainHyper), backend: backend.name };
  if (options.steps !== undefined) hyper.steps = options.steps;
  if (hyper.steps < state.step)
    fail(`train: --steps ${hyper.steps} is below the ${state.step} steps already done in ${dir}`);
  const tokenizer = hyper.tokenizer === 'bytes' ? byteTokenizer() : loadTokenizer(dir);
  const dataPath = options.dataPath ?? state.data.path;
  const corpus = readCorpus(dataPath, tokenizer);
  if (corpus.digest !== state.data.digest || corpus.tokens.length !== state.data.tokens) {
    fail(
      `${dataPath}: the training data changed since ${dir} was saved (${corpus.tokens.length} tokens, digest ${corpus.digest}; saved ${state.data.tokens}, ${state.data.digest})`,
    );
  }
  const model = loadModel(dir, backend);
  model.refreshDerived(); // A from A_log exactly as the uninterrupted run's last update left it
  const dataset = new Dataset(corpus.tokens, hyper.seqLen, hyper.valFraction);
  const batcher = new Batcher(dataset.trainCount, hyper.seed + 1);
  batcher.position = state.data.position;
  const optimizer = readMoments(
    dir,
    (read) => new AdamW(backend, model.parameters(), hyper, { step: state.step, read }),
  );
  return {
    out,
    hyper,
    model,
    dataset,
    batcher,
    optimizer,
    tokenizer,
    data: { path: dataPath, tokens: corpus.tokens.length, digest: corpus.digest },
    history: state.history,
    step: state.step,
  };
}

async function hostTensors(backend: Backend, tensors: ReadonlyMap<string, Tensor>): Promise<HostTensor[]> {
  const out: HostTensor[] = [];
  for (const [name, t] of tensors) {
    out.push({ name, shape: [...t.shape], data: (await backend.read(t)) as Float32Array });
  }
  return out;
}

/** Saves the run as OUT/checkpoint-<step> (and OUT/loss.svg); returns the checkpoint's folder. */
export async function saveRun(run: Run, afterFile?: (name: string) => void): Promise<string> {
  const svg = lossSvg(run.history);
  const dir = saveCheckpoint(
    run.out,
    {
      config: toHfConfigJson(run.model.config),
      weights: await hostTensors(run.model.backend, run.model.parameters()),
      moments: await run.optimizer.moments(),
      tokenizerFiles: run.tokenizer.files,
      lossSvg: svg,
      state: {
        step: run.step,
        hyper: { ...run.hyper },
        data: { ...run.data, position: run.batcher.position },
        history: run.history,
      },
    },
    { afterFile },
  );
  replaceFile(run.out, 'loss.svg', svg);
  return dir;
}
