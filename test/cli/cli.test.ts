// The command line run as a user runs it (one child process per command), on its successful paths:
// - `logits` writes the fixtures' logits.npy (int32 and int64 ids) and `generate` prints greedy.json;
// - the loader's compatibility paths give the same numbers: config.json with a bare `Infinity`
//   (Python's json module) and the original mamba_ssm layout (its config fields, the
//   `backbone.embedding.weight` key, a padded vocabulary);
// - `init` writes a folder that loads and runs, depends on the seed alone, reads back as the
//   preset's config and holds parameters initialised as mamba_ssm initialises them.
// Every command starts when the file loads (a few run at a time); the tests await their results.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { CpuBackend } from '../../src/backends/cpu/cpuBackend.ts';
import { loadModel, readConfig } from '../../src/io/hf.ts';
import { type NpyArray, readNpy, writeNpy } from '../../src/io/npy.ts';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.ts';
import { presetConfig } from '../../src/models/presets.ts';
import { assertOk, cli, copyModel, tmpRoot } from '../helpers/cli.ts';
import { fixture } from '../helpers/fixtures.ts';
import { relDiff } from '../helpers/random.ts';

const tolerance = 1e-5;
const tmp = tmpRoot('cli');
const models = ['mamba-tiny-0', 'mamba2-tiny-0', 'mamba2-groups-0'];
let outputs = 0;

/** Starts `logits` on `model`; the returned function awaits it and reads the .npy it wrote. */
function startLogits(model: string, ids: string): () => Promise<NpyArray> {
  const output = path.join(tmp, `logits-${outputs++}.npy`);
  const run = cli(['logits', '--model', model, '--input-ids', ids, '--output', output]);
  return async () => {
    assert.equal(assertOk(await run), '');
    return readNpy(output);
  };
}

/** Asserts that `out` holds float32 logits within tolerance of fixture `name`'s logits.npy. */
function assertGolden(out: NpyArray, name: string): void {
  const reference = readNpy(fixture('hf', name, 'logits.npy'));
  assert.equal(out.dtype, 'float32');
  assert.deepEqual(out.shape, reference.shape);
  const diff = relDiff(out.data as Float32Array, reference.data as Float32Array);
  assert.ok(diff < tolerance, `${name}: logits differ from logits.npy by ${diff} (relative)`);
}

const idsOf = (name: string) => fixture('hf', name, 'input_ids.npy');
/** `logits` of each fixture on its input_ids.npy (int32), as it ships (the HF layout). */
const hfLogits = new Map(models.map((name) => [name, startLogits(fixture('hf', name), idsOf(name))]));

describe('golden outputs through the command line', { concurrency: true }, () => {
  for (const name of models) {
    const { shape, data } = readNpy(idsOf(name));
    const ids64 = path.join(tmp, `${name}-ids-int64.npy`);
    writeNpy(ids64, { dtype: 'int64', shape, data: BigInt64Array.from(data as Int32Array, BigInt) });
    const { prompt, greedy } = JSON.parse(fs.readFileSync(fixture('hf', name, 'greedy.json'), 'utf8'));
    const generateArgs = ['generate', '--model', fixture('hf', name), '--prompt-ids', prompt[0].join(',')];
    generateArgs.push('--max-new-tokens', String(greedy[0].length - prompt[0].length), '--greedy');
    const runs = {
      int32: hfLogits.get(name)!,
      int64: startLogits(fixture('hf', name), ids64),
      generate: cli([...generateArgs, '--format', 'ids']),
    };

    test(`${name}: logits of input_ids.npy (int32) match logits.npy`, async () => {
      assert.equal(readNpy(idsOf(name)).dtype, 'int32');
      assertGolden(await runs.int32(), name);
    });

    test(`${name}: logits of the same ids saved as int64 match logits.npy`, async () => {
      assertGolden(await runs.int64(), name);
    });

    test(`${name}: generate --greedy --format ids prints greedy.json`, async () => {
      assert.equal(assertOk(await runs.generate), `${JSON.stringify(greedy[0])}\n`);
    });
  }
});

describe('config.json as Python writes it', { concurrency: true }, () => {
  const dir = copyModel(tmp, 'mamba2-tiny-0');
  const file = path.join(dir, 'config.json');
  const text = fs.readFileSync(file, 'utf8').replace(/\{\s*"__float__":\s*"Infinity"\s*\}/, 'Infinity');
  fs.writeFileSync(file, text);
  const bare = startLogits(dir, idsOf('mamba2-tiny-0'));

  test('the fixtures\' {"__float__": "Infinity"} in time_step_limit reads as Infinity', () => {
    assert.match(fs.readFileSync(fixture('hf', 'mamba2-tiny-0', 'config.json'), 'utf8'), /"__float__"/);
    const config = readConfig(fixture('hf', 'mamba2-tiny-0'));
    assert.deepEqual(config.family === 'mamba2' && config.timeStepLimit, [0, Number.POSITIVE_INFINITY]);
  });

  test('a bare Infinity in time_step_limit (not JSON) loads and gives the reference logits', async () => {
    assert.match(text, /"time_step_limit": \[\s*0\.0,\s*Infinity\s*\]/);
    assert.throws(() => JSON.parse(text), SyntaxError);
    const config = readConfig(dir);
    assert.deepEqual(config.family === 'mamba2' && config.timeStepLimit, [0, Number.POSITIVE_INFINITY]);
    assertGolden(await bare(), 'mamba2-tiny-0');
  });
});

/** Fixture `name` as mamba_ssm saves it: `config` as config.json, the embedding key renamed. */
function mambaSsmFolder(name: string, config: Record<string, unknown>): string {
  const dir = path.join(tmp, `mamba-ssm-${name}`);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  const source = SafetensorsFile.open(fixture('hf', name, 'model.safetensors'));
  const tensors = [...source.tensors.values()].map(({ name: key, shape }) => ({
    name: key === 'backbone.embeddings.weight' ? 'backbone.embedding.weight' : key,
    shape,
    data: source.read(key),
  }));
  source.close();
  assert.ok(tensors.some((t) => t.name === 'backbone.embedding.weight'));
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  return dir;
}

// The fixtures' sizes: hidden 64, 2 layers, state 16, expand 2, tied embeddings, a vocabulary of
// 512 rows, which mamba_ssm reaches by padding vocab_size 509 up to a multiple of 8.
const mambaSsm = { d_model: 64, n_layer: 2, vocab_size: 509, pad_vocab_size_multiple: 8 };
const mambaSsmFlags = { rms_norm: true, residual_in_fp32: true, fused_add_norm: true, tie_embeddings: true };
const mambaSsmConfigs: Record<string, Record<string, unknown>> = {
  'mamba-tiny-0': { ...mambaSsm, ssm_cfg: { layer: 'Mamba1' }, ...mambaSsmFlags },
  'mamba2-tiny-0': {
    ...mambaSsm,
    ssm_cfg: { layer: 'Mamba2', d_state: 16, headdim: 16, ngroups: 1, chunk_size: 16 },
    ...mambaSsmFlags,
  },
};

describe('the original mamba_ssm layout', { concurrency: true }, () => {
  for (const [name, config] of Object.entries(mambaSsmConfigs)) {
    const dir = mambaSsmFolder(name, config);
    const fromSsm = startLogits(dir, idsOf(name));

    test(`${name} in the mamba_ssm layout gives the same logits as in the HF layout`, async () => {
      const [hf, ssm] = [readConfig(fixture('hf', name)), readConfig(dir)];
      const sizes = [
        'family',
        'vocabSize',
        'hiddenSize',
        'numLayers',
        'stateSize',
        'intermediateSize',
      ] as const;
      for (const key of sizes) assert.equal(ssm[key], hf[key], key);
      const [ssmLogits, asShipped] = [await fromSsm(), await hfLogits.get(name)!()];
      assertGolden(ssmLogits, name);
      assert.deepEqual(
        ssmLogits.data,
        asShipped.data,
        'the same weights give the same logits in either layout',
      );
    });
  }
});

/** Every tensor of `dir`/model.safetensors whose name ends with `suffix`, by name. */
function tensors(dir: string, suffix = ''): Map<string, Float32Array> {
  const file = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
  const names = [...file.tensors.keys()].filter((name) => name.endsWith(suffix));
  const out = new Map(names.map((name) => [name, file.read(name)]));
  file.close();
  assert.ok(out.size > 0, `no tensor named *${suffix}`);
  return out;
}

const softplus = (x: number) => (x > 20 ? x : Math.log1p(Math.exp(x)));

for (const family of ['mamba', 'mamba2'] as const) {
  describe(`init --family ${family} --preset tiny`, () => {
    const preset = presetConfig(family, 'tiny');
    const [a, b, c] = ['a', 'b', 'c'].map((k) => path.join(tmp, `init-${family}-${k}`));
    const seeds: Array<[string, string]> = [
      [a, '7'],
      [b, '7'],
      [c, '8'],
    ];
    const runs = seeds.map(([dir, seed]) =>
      cli(['init', '--family', family, '--preset', 'tiny', '--out', dir, '--seed', seed]),
    );
    const made = async () => (await Promise.all(runs)).map(assertOk);

    test('writes config.json and model.safetensors and says so', async () => {
      const [stdout] = await made();
      assert.equal(stdout, `wrote ${family} model (${tensors(a).size} tensors) to ${a}\n`);
      assert.deepEqual(fs.readdirSync(a).sort(), ['config.json', 'model.safetensors']);
    });

    test('config.json reads back as the preset', async () => {
      await made();
      assert.deepEqual(readConfig(a), preset);
    });

    test('the same seed gives byte-identical weights, another seed different ones', async () => {
      await made();
      const bytes = (dir: string) => fs.readFileSync(path.join(dir, 'model.safetensors'));
      assert.ok(bytes(a).equals(bytes(b)), 'seed 7 twice');
      const [fromA, fromC] = [tensors(a), tensors(c)];
      assert.deepEqual([...fromA.keys()], [...fromC.keys()]);
      for (const key of ['backbone.embeddings.weight', 'backbone.layers.0.mixer.in_proj.weight']) {
        assert.notDeepEqual(fromA.get(key), fromC.get(key), `${key}: seed 7 vs seed 8`);
      }
    });

    test('loads, and a forward gives finite logits', async () => {
      await made();
      const model = loadModel(a, new CpuBackend());
      const ids = Int32Array.from({ length: 2 * 20 }, (_, i) => (i * 37) % preset.vocabSize);
      const { logits } = model.forward(ids, 2);
      assert.deepEqual(logits.shape, [2, 20, preset.vocabSize]);
      const values = (await model.backend.read(logits)) as Float32Array;
      assert.ok(values.every(Number.isFinite), 'finite logits');
      assert.ok(
        values.some((v) => v !== 0),
        'not all zero',
      );
    });

    test('parameters start as mamba_ssm starts them', async () => {
      await made();
      for (const d of tensors(a, '.D').values())
        assert.ok(
          d.every((v) => v === 1),
          'D = 1',
        );
      for (const g of tensors(a, 'norm.weight').values())
        assert.ok(
          g.every((v) => v === 1),
          'norms = 1',
        );
      const n = preset.stateSize;
      for (const aLog of tensors(a, 'A_log').values()) {
        if (family === 'mamba') {
          // (dInner, n): every row is log(1), …, log(n)
          assert.equal(aLog.length, preset.intermediateSize * n);
          const rows = Float32Array.from(aLog, (_, i) => Math.log((i % n) + 1));
          assert.ok(relDiff(aLog, rows) < 1e-6, 'A_log rows are log(1..n)');
        } else {
          // (h): log of a uniform draw from [1, 16]
          for (const v of aLog) assert.ok(v >= 0 && v <= Math.log(16) + 1e-6, `A_log ${v}`);
          assert.ok(new Set(aLog).size > 1, 'A_log differs between heads');
        }
      }
      const [lo, hi] = [preset.timeStepMin, preset.timeStepMax];
      for (const bias of tensors(a, family === 'mamba' ? 'dt_proj.bias' : 'dt_bias').values()) {
        for (const x of bias) {
          const dt = softplus(x);
          assert.ok(dt >= lo * (1 - 1e-5) && dt <= hi * (1 + 1e-5), `softplus(dt bias ${x}) = ${dt}`);
        }
        assert.ok(new Set(bias).size > 1, 'dt bias is random');
      }
    });
  });
}
