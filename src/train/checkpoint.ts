// Training checkpoints. OUT/checkpoint-<step>/ is a Hugging Face model folder (config.json as
// transformers writes it for MambaForCausalLM / Mamba2ForCausalLM, model.safetensors, the
// tokenizer files) that transformers, mamba_ssm and mamba-ts load as is, plus the training state:
// optimizer.safetensors (AdamW moments, `<name>.exp_avg` / `<name>.exp_avg_sq`), loss.svg and
// trainer_state.json (step, hyperparameters, data position and generator state, loss history, and
// the byte size of every other file, which catches truncation).
//
// Atomic saves: everything is written into OUT/.checkpoint-<step>.tmp, each file fsynced, the
// folder fsynced and renamed to OUT/checkpoint-<step>; then the pointer file OUT/latest (one line,
// the folder name) is replaced by write-fsync-rename, and OUT is fsynced. A crash at any point
// leaves `latest` naming a complete checkpoint (the previous one until the pointer moves). Older
// checkpoints beyond the newest `keep` are removed only after that, and so are stale temp folders.

import fs from 'node:fs';
import { join } from 'node:path';
import { fail, MambaError } from '../core/errors.ts';
import { readJsonFile } from '../io/json.ts';
import { SafetensorsFile, writeSafetensors } from '../io/safetensors.ts';
import type { DataPosition } from './data.ts';

export interface LossHistory {
  train: Array<{ step: number; loss: number; lr: number }>;
  val: Array<{ step: number; loss: number }>;
}

/** trainer_state.json: what a resumed run needs beyond the weights and moments. */
export interface TrainerState {
  step: number;
  /** The run's options (hyperparameters), as the command resolved them. */
  hyper: Record<string, number | string | null>;
  data: { path: string; tokens: number; digest: string; position: DataPosition };
  history: LossHistory;
  /** Byte size of every other file of the checkpoint. */
  files?: Record<string, number>;
}

export type HostTensor = { name: string; shape: number[]; data: Float32Array };

export interface CheckpointContents {
  config: Record<string, unknown>; // config.json
  weights: HostTensor[]; // model.safetensors
  moments: HostTensor[]; // optimizer.safetensors
  tokenizerFiles: ReadonlyMap<string, string>;
  lossSvg: string;
  state: TrainerState;
}

const LATEST = 'latest';
const STATE = 'trainer_state.json';

export const checkpointName = (step: number) => `checkpoint-${step}`;

function fsyncPath(path: string): void {
  const fd = fs.openSync(path, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes `text` to `file` and fsyncs it. */
function writeDurable(file: string, text: string): void {
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeFileSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Replaces `file` atomically with `text` (write a temp file, fsync, rename, fsync the folder). */
export function replaceFile(dir: string, name: string, text: string): void {
  const tmp = join(dir, `.${name}.tmp`);
  writeDurable(tmp, text);
  fs.renameSync(tmp, join(dir, name));
  fsyncPath(dir);
}

/**
 * Saves `c` as OUT/checkpoint-<step> and points OUT/latest at it, keeping the newest `keep`
 * checkpoints. `afterFile` runs after each file is written (tests inject crashes there).
 */
export function saveCheckpoint(
  out: string,
  c: CheckpointContents,
  options: { keep?: number; afterFile?: (name: string) => void } = {},
): string {
  const name = checkpointName(c.state.step);
  const tmp = join(out, `.${name}.tmp`);
  const pointer = join(out, LATEST);
  if (fs.existsSync(pointer) && fs.readFileSync(pointer, 'utf8').trim() === name) {
    throw new Error(
      `${join(out, name)} is the latest checkpoint: saving step ${c.state.step} again would replace it`,
    );
  }
  const done = (file: string) => options.afterFile?.(file);
  try {
    fs.mkdirSync(out, { recursive: true });
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp);
    const texts = new Map([
      ['config.json', `${JSON.stringify(c.config, null, 2)}\n`],
      ...c.tokenizerFiles,
      ['loss.svg', c.lossSvg],
    ]);
    for (const [file, text] of texts) {
      writeDurable(join(tmp, file), text);
      done(file);
    }
    writeSafetensors(join(tmp, 'model.safetensors'), c.weights, { format: 'pt' });
    done('model.safetensors');
    writeSafetensors(join(tmp, 'optimizer.safetensors'), c.moments, { format: 'pt' });
    done('optimizer.safetensors');
    const files = Object.fromEntries(fs.readdirSync(tmp).map((f) => [f, fs.statSync(join(tmp, f)).size]));
    writeDurable(join(tmp, STATE), `${JSON.stringify({ ...c.state, files }, null, 1)}\n`);
    done(STATE);
    fsyncPath(tmp);
    const final = join(out, name);
    fs.rmSync(final, { recursive: true, force: true }); // not the latest: left by a crash before `latest` moved
    fs.renameSync(tmp, final);
    fsyncPath(out);
    replaceFile(out, LATEST, `${name}\n`);
  } catch (error) {
    if (error instanceof MambaError) throw error;
    fail(`${out}: cannot save ${name} (${(error as Error).message})`);
  }
  prune(out, c.state.step, options.keep ?? 2);
  return join(out, name);
}

/** Removes checkpoints older than the newest `keep` (never `current`) and stale temp folders. */
function prune(out: string, current: number, keep: number): void {
  const steps = fs
    .readdirSync(out)
    .map((f) => /^checkpoint-(\d+)$/.exec(f))
    .filter((m) => m !== null)
    .map((m) => Number(m[1]))
    .filter((s) => s <= current)
    .sort((a, b) => b - a);
  for (const step of steps.slice(Math.max(1, keep))) {
    fs.rmSync(join(out, checkpointName(step)), { recursive: true, force: true });
  }
  for (const f of fs.readdirSync(out)) {
    if (/^\.checkpoint-\d+\.tmp$/.test(f)) fs.rmSync(join(out, f), { recursive: true, force: true });
  }
}

/** The folder OUT/latest names. */
export function latestCheckpoint(out: string): string {
  const pointer = join(out, LATEST);
  if (!fs.existsSync(pointer)) fail(`${out}: no checkpoint to resume from (${pointer} not found)`);
  const name = fs.readFileSync(pointer, 'utf8').trim();
  if (!/^checkpoint-\d+$/.test(name)) fail(`${pointer}: expected a checkpoint folder name, got "${name}"`);
  return join(out, name);
}

/**
 * Reads and checks trainer_state.json of checkpoint `dir` and the sizes of the files it lists;
 * every problem is one error naming the file.
 */
export function readTrainerState(dir: string): TrainerState {
  const file = join(dir, STATE);
  const state = readJsonFile(file) as TrainerState;
  const ok =
    state !== null &&
    typeof state === 'object' &&
    Number.isInteger(state.step) &&
    typeof state.hyper === 'object' &&
    typeof state.data?.position === 'object' &&
    Array.isArray(state.history?.train) &&
    typeof state.files === 'object';
  if (!ok) fail(`${file}: not a mamba-ts trainer state (missing step, hyper, data, history or files)`);
  for (const [name, size] of Object.entries(state.files ?? {})) {
    const path = join(dir, name);
    const actual = fs.existsSync(path) ? fs.statSync(path).size : null;
    if (actual === null) fail(`${path}: missing from the checkpoint`);
    if (actual !== size) {
      fail(
        `${path}: ${actual} bytes where the checkpoint wrote ${size} (truncated or changed); resume from an earlier checkpoint`,
      );
    }
  }
  return state;
}

/** The optimizer moments of checkpoint `dir`, by key; the file is closed after `use`. */
export function readMoments<T>(dir: string, use: (read: (key: string) => Float32Array) => T): T {
  const file = SafetensorsFile.open(join(dir, 'optimizer.safetensors'));
  try {
    return use((key) => file.read(key));
  } finally {
    file.close();
  }
}
