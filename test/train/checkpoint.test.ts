// Tests for src/train/checkpoint.ts (and run.ts's save/resume): a round trip of every file, a
// tiny run's weights, moments, data position and history through a checkpoint, a crash in the
// middle of a save (the previous checkpoint stays the latest and loads), a stale folder from a
// crash after the rename, pruning, and one clear error naming the file for truncated or corrupt
// checkpoints while the previous one still loads.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { CpuBackend } from '../../src/backends/cpu/cpuBackend.ts';
import { loadModel } from '../../src/io/hf.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import {
  type CheckpointContents,
  latestCheckpoint,
  readMoments,
  readTrainerState,
  saveCheckpoint,
} from '../../src/train/checkpoint.ts';
import { trainLoop } from '../../src/train/loop.ts';
import { resumeRun, saveRun, startRun, type TrainHyper } from '../../src/train/run.ts';
import { tmpRoot } from '../helpers/cli.ts';
import { normal, rngFor } from '../helpers/random.ts';

const root = tmpRoot('checkpoint');
let counter = 0;
const fresh = () => path.join(root, `${counter++}`);

function contents(step: number, rand: () => number): CheckpointContents {
  const tensor = (name: string, shape: number[]) => ({
    name,
    shape,
    data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => normal(rand)),
  });
  return {
    config: { model_type: 'mamba', hidden_size: 4 },
    weights: [tensor('a.weight', [3, 4]), tensor('b', [5])],
    moments: [tensor('a.weight.exp_avg', [3, 4]), tensor('a.weight.exp_avg_sq', [3, 4])],
    tokenizerFiles: new Map([['tokenizer.json', '{"model": {}}\n']]),
    lossSvg: '<svg/>\n',
    state: {
      step,
      hyper: { lr: 0.001, family: 'mamba', init: null },
      data: {
        path: '/data',
        tokens: 100,
        digest: 'abc',
        position: { epoch: 1, cursor: 2, rng: [1, 2, 3, 4] },
      },
      history: { train: [{ step, loss: rand(), lr: 0.001 }], val: [] },
    },
  };
}

test('a checkpoint round trip: every file as written, latest pointing at it', (t) => {
  const rand = rngFor(t);
  const out = fresh();
  const c = contents(3, rand);
  const dir = saveCheckpoint(out, c);
  assert.equal(dir, path.join(out, 'checkpoint-3'));
  assert.equal(latestCheckpoint(out), dir);
  assert.deepEqual(fs.readdirSync(dir).sort(), [
    'config.json',
    'loss.svg',
    'model.safetensors',
    'optimizer.safetensors',
    'tokenizer.json',
    'trainer_state.json',
  ]);
  const state = readTrainerState(dir);
  assert.deepEqual({ ...state, files: undefined }, { ...c.state, files: undefined });
  const model = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
  for (const w of c.weights) assert.deepEqual(model.read(w.name), w.data);
  model.close();
  readMoments(dir, (read) => {
    for (const m of c.moments) assert.deepEqual(read(m.name), m.data);
  });
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')), c.config);
  assert.deepEqual(fs.readdirSync(out).sort(), ['checkpoint-3', 'latest']);
});

test('a crash in the middle of a save leaves the previous checkpoint as the latest, loadable', (t) => {
  const rand = rngFor(t);
  const out = fresh();
  const first = saveCheckpoint(out, contents(1, rand));
  const crash = (name: string) => {
    if (name === 'model.safetensors') throw new Error('simulated crash');
  };
  assert.throws(() => saveCheckpoint(out, contents(2, rand), { afterFile: crash }), /simulated crash/);
  assert.equal(latestCheckpoint(out), first);
  assert.equal(readTrainerState(first).step, 1);
  assert.ok(fs.existsSync(path.join(out, '.checkpoint-2.tmp')), 'the crash leaves its temp folder');
  assert.ok(!fs.existsSync(path.join(out, 'checkpoint-2')));
  // A crash after the rename but before `latest` moved leaves a complete folder that is not
  // the latest; the next save of that step replaces it.
  fs.mkdirSync(path.join(out, 'checkpoint-2', 'junk'), { recursive: true });
  const second = saveCheckpoint(out, contents(2, rand));
  assert.equal(latestCheckpoint(out), second);
  assert.ok(!fs.existsSync(path.join(second, 'junk')));
  assert.ok(!fs.existsSync(path.join(out, '.checkpoint-2.tmp')), 'stale temp folders are removed');
  // The newest two are kept.
  saveCheckpoint(out, contents(3, rand));
  assert.deepEqual(fs.readdirSync(out).sort(), ['checkpoint-2', 'checkpoint-3', 'latest']);
});

test('truncated or corrupt checkpoints: one error naming the file; the previous one loads', (t) => {
  const rand = rngFor(t);
  const out = fresh();
  const previous = saveCheckpoint(out, contents(1, rand));
  const latest = saveCheckpoint(out, contents(2, rand));
  const weights = path.join(latest, 'model.safetensors');
  const size = fs.statSync(weights).size;
  fs.truncateSync(weights, Math.floor(size / 2));
  assert.throws(() => readTrainerState(latest), {
    name: 'MambaError',
    message: `${weights}: ${Math.floor(size / 2)} bytes where the checkpoint wrote ${size} (truncated or changed); resume from an earlier checkpoint`,
  });
  assert.equal(readTrainerState(previous).step, 1);
  // Same size but a broken header: the safetensors reader names the file.
  const moments = path.join(previous, 'optimizer.safetensors');
  const bytes = fs.readFileSync(moments);
  bytes.fill(0x7b, 8, 12);
  fs.writeFileSync(path.join(latest, 'optimizer.safetensors'), bytes);
  fs.truncateSync(weights, size);
  assert.throws(() => readMoments(latest, () => {}), {
    message: new RegExp(`^${path.join(latest, 'optimizer.safetensors')}: header is not valid JSON`),
  });
  const state = path.join(latest, 'trainer_state.json');
  fs.truncateSync(state, 20);
  assert.throws(() => readTrainerState(latest), { message: new RegExp(`^${state}: invalid JSON`) });
  fs.writeFileSync(path.join(out, 'latest'), '../elsewhere\n');
  assert.throws(() => latestCheckpoint(out), {
    message: /latest: expected a checkpoint folder name, got "\.\.\/elsewhere"$/,
  });
  assert.throws(() => latestCheckpoint(fresh()), { message: /: no checkpoint to resume from/ });
});

const tinyHyper: TrainHyper = {
  family: 'mamba2',
  preset: 'tiny',
  init: null,
  tokenizer: 'bytes',
  backend: 'cpu',
  steps: 3,
  batch: 2,
  seqLen: 16,
  lr: 3e-3,
  minLr: 3e-4,
  warmup: 1,
  accum: 1,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  weightDecay: 0.1,
  clip: 1,
  valEvery: 2,
  saveEvery: 100,
  seed: 5,
  valFraction: 0.2,
  valBatches: 2,
};

test('a run through a checkpoint: weights, moments, data position, history and HF loading', async () => {
  const out = fresh();
  const data = path.join(root, `corpus-${counter++}.txt`);
  fs.writeFileSync(data, 'a small corpus of text for a checkpoint test. '.repeat(8));
  const backend = new CpuBackend();
  const run = startRun(out, data, tinyHyper, backend);
  await trainLoop(run);
  const dir = latestCheckpoint(out);
  assert.equal(dir, path.join(out, 'checkpoint-3'));
  const resumed = resumeRun(out, backend);
  assert.equal(resumed.step, 3);
  assert.deepEqual(resumed.history, run.history);
  assert.deepEqual(resumed.batcher.position, run.batcher.position);
  assert.deepEqual(resumed.hyper, run.hyper);
  for (const [name, p] of run.model.parameters()) {
    const q = resumed.model.parameters().get(name)!;
    assert.deepEqual(await backend.read(q), await backend.read(p), name);
    assert.deepEqual(
      await backend.read(resumed.optimizer.m.get(name)!),
      await backend.read(run.optimizer.m.get(name)!),
    );
    assert.deepEqual(
      await backend.read(resumed.optimizer.v.get(name)!),
      await backend.read(run.optimizer.v.get(name)!),
    );
  }
  // The folder is a Hugging Face model folder with a byte-level tokenizer.
  const model = loadModel(dir, backend);
  assert.equal(model.config.vocabSize, 256);
  assert.equal(
    JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).architectures[0],
    'Mamba2ForCausalLM',
  );
  assert.ok(fs.readFileSync(path.join(out, 'loss.svg'), 'utf8').startsWith('<svg'));
  // A new run may not start over an existing one.
  assert.throws(() => startRun(out, data, tinyHyper, backend), {
    message: `${out}: already holds a training run; pass --resume to continue it, or choose another --out`,
  });
  // Nor resume on changed data.
  fs.appendFileSync(data, 'more');
  assert.throws(() => resumeRun(out, backend), {
    message: new RegExp(`^${data}: the training data changed since`),
  });
  // The latest checkpoint is never replaced in place.
  await assert.rejects(saveRun(resumed), {
    message: `${dir} is the latest checkpoint: saving step 3 again would replace it`,
  });
  assert.equal(readTrainerState(dir).step, 3);
});
