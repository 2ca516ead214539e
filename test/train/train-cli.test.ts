// Tests for `mamba-ts train`: kill-and-resume (a run killed with SIGKILL after a checkpoint and
// resumed ends with the same loss curve, weights and moments, bit for bit, as an uninterrupted
// one), a truncated latest checkpoint (one error line naming the file; the previous checkpoint
// still loads), and one-line errors for bad options.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { assertOneLineError, cli, re, repoRoot, tmpRoot } from '../helpers/cli.ts';

const root = tmpRoot('train-cli');
const corpus = path.join(root, 'corpus.txt');
fs.writeFileSync(corpus, 'to be or not to be, that is the question. '.repeat(30));
const out = (name: string) => path.join(root, name);

const run = (dir: string) => [
  'train',
  ...['--data', corpus, '--family', 'mamba', '--out', dir, '--steps', '12', '--batch', '2'],
  ...[
    '--seq-len',
    '16',
    '--lr',
    '3e-3',
    '--warmup',
    '2',
    '--val-every',
    '3',
    '--save-every',
    '4',
    '--seed',
    '3',
  ],
];

/** Runs `mamba-ts ...args` and kills it with SIGKILL once its stderr shows `marker`. */
function killAfter(args: string[], marker: string): Promise<{ signal: string | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/bin.ts', ...args], {
      cwd: repoRoot,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
      if (stderr.includes(marker)) child.kill('SIGKILL');
    });
    child.on('error', reject);
    child.on('close', (_status, signal) => resolve({ signal, stderr }));
  });
}

const state = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'trainer_state.json'), 'utf8'));
const bytes = (dir: string, file: string) => fs.readFileSync(path.join(dir, file));

// The error cases start at once, running beside the kill-and-resume test.
const base = ['train', '--data', corpus, '--family', 'mamba', '--out', out('bad')];
const existing = out('existing');
fs.mkdirSync(existing);
fs.writeFileSync(path.join(existing, 'latest'), 'checkpoint-1\n');
const cases: Array<[string[], RegExp]> = [
  [[...base, '--bogus'], /^mamba-ts: error: train: Unknown option '--bogus'/],
  [[...base, '--steps', '0'], /^mamba-ts: error: train: --steps must be an integer >= 1, got "0"$/],
  [[...base, '--clip', 'Infinity'], /^mamba-ts: error: train: --clip must be a number >= 0, got "Infinity"$/],
  [[...base, '--lr', 'fast'], /^mamba-ts: error: train: --lr must be a number >= 0, got "fast"$/],
  [
    [...base, '--val-fraction', '0.9'],
    /^mamba-ts: error: train: --val-fraction must be a number in \[0, 0\.5\], got "0\.9"$/,
  ],
  [[...base, '--seq-len', '1'], /^mamba-ts: error: train: --seq-len must be an integer >= 2, got "1"$/],
  [
    [...base, '--family', 'rnn'],
    /^mamba-ts: error: train: unknown --family "rnn" \(expected mamba or mamba2\)$/,
  ],
  [[...base, '--preset', 'huge'], /^mamba-ts: error: unknown mamba preset "huge" \(available: tiny, /],
  [
    [...base, '--preset', 'tiny', '--init', root],
    /^mamba-ts: error: train: give --preset or --init, not both$/,
  ],
  [[...base, '--backend', 'tpu'], /^mamba-ts: error: train: unknown backend "tpu"/],
  [['train', '--data', corpus, '--family', 'mamba'], /^mamba-ts: error: train: --out is required$/],
  [['train', '--out', out('x'), '--family', 'mamba'], /^mamba-ts: error: train: --data is required$/],
  [
    ['train', '--data', out('none'), '--family', 'mamba', '--out', out('x')],
    new RegExp(`^mamba-ts: error: ${re(out('none'))}: training data not found$`),
  ],
  [
    ['train', '--out', out('x'), '--resume', '--lr', '1'],
    /^mamba-ts: error: train: --lr cannot be given with --resume/,
  ],
  [['train', '--out', out('empty'), '--resume'], /^mamba-ts: error: .*empty: no checkpoint to resume from/],
  [
    ['train', '--data', corpus, '--family', 'mamba', '--out', existing],
    /already holds a training run; pass --resume/,
  ],
];
const results = cases.map(([args]) => cli(args));

test('kill-and-resume: the resumed run equals the uninterrupted one, bit for bit', async (t) => {
  const straight = cli(run(out('straight')));
  const killed = await killAfter(run(out('killed')), `saved ${path.join(out('killed'), 'checkpoint-4')}`);
  assert.equal(killed.signal, 'SIGKILL', `the run should be killed mid-way; stderr: ${killed.stderr}`);
  const resumedFrom = fs.readFileSync(path.join(out('killed'), 'latest'), 'utf8').trim();
  t.diagnostic(`killed after ${resumedFrom}`);
  const resumed = await cli(['train', '--out', out('killed'), '--resume']);
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, /^resuming at step \d+: mamba model/);
  assert.match(resumed.stdout, /^trained 12 steps: loss \d+\.\d+, validation \d+\.\d+; model in /);
  const done = await straight;
  assert.equal(done.status, 0, done.stderr);
  const [a, b] = [path.join(out('straight'), 'checkpoint-12'), path.join(out('killed'), 'checkpoint-12')];
  const [sa, sb] = [state(a), state(b)];
  assert.equal(sa.history.train.length, 12);
  assert.equal(sa.history.val.length, 4);
  assert.deepEqual(sb.history, sa.history);
  assert.deepEqual(sb.data, sa.data);
  assert.ok(bytes(a, 'model.safetensors').equals(bytes(b, 'model.safetensors')), 'same weights');
  assert.ok(bytes(a, 'optimizer.safetensors').equals(bytes(b, 'optimizer.safetensors')), 'same moments');
  const losses = sa.history.train.map((p: { loss: number }) => p.loss);
  assert.ok(losses.at(-1) < losses[0], `loss ${losses[0]} → ${losses.at(-1)}`);
  assert.ok(fs.readFileSync(path.join(out('straight'), 'loss.svg'), 'utf8').includes('<polyline'));

  // A truncated latest checkpoint: one line naming the file; the previous one still loads.
  const weights = path.join(a, 'model.safetensors');
  fs.truncateSync(weights, 1000);
  const broken = await cli(['train', '--out', out('straight'), '--resume', '--steps', '16']);
  assertOneLineError(
    broken,
    new RegExp(
      `^mamba-ts: error: ${re(weights)}: 1000 bytes where the checkpoint wrote \\d+ \\(truncated or changed\\)`,
    ),
  );
  const previous = await cli([
    ...['generate', '--model', path.join(out('straight'), 'checkpoint-8'), '--prompt', 'to be'],
    ...['--max-new-tokens', '3', '--greedy'],
  ]);
  assert.equal(previous.status, 0, previous.stderr);
  assert.ok(previous.stdout.startsWith('to be'));
});

test('train: bad options and data give one clear line', async () => {
  for (const [i, [, expected]] of cases.entries()) assertOneLineError(await results[i], expected);
});
