// Broken model folders through the command line: config.json missing, unreadable, invalid or
// unsupported; weights missing, pickled, truncated or with a corrupt safetensors header; tensors
// that do not fit the config, missing or unexpected. Each case copies a fixture folder into a
// temporary directory, breaks it and runs `logits` on it: exit 1, one stderr line
// `mamba-ts: error: <file>: <problem>`, no stack trace (see errorTests).

import fs from 'node:fs';
import path from 'node:path';
import {
  copyModel,
  type ErrorCase,
  editConfig,
  editHeader,
  editHeaderText,
  editTensors,
  errorTests,
  re,
  tmpRoot,
} from '../helpers/cli.ts';
import { fixture } from '../helpers/fixtures.ts';

const tmp = tmpRoot('model-errors');
let outputs = 0;

const configOf = (dir: string) => re(path.join(dir, 'config.json'));
const weightsOf = (dir: string) => re(path.join(dir, 'model.safetensors'));

/** A copy of fixture `name` broken by `edit`, run through `logits`; `error(dir)` is the expected message. */
function broken(
  name: string,
  edit: (dir: string) => void,
  error: (dir: string) => string,
  model = 'mamba-tiny-0',
): ErrorCase {
  return {
    name,
    make: () => {
      const dir = copyModel(tmp, model);
      edit(dir);
      const ids = fixture('hf', model, 'input_ids.npy');
      const output = path.join(tmp, `out-${outputs++}.npy`);
      return { args: ['logits', '--model', dir, '--input-ids', ids, '--output', output], error: error(dir) };
    },
  };
}

/** Replaces config.json in `dir` by a mamba_ssm one (the layout without model_type) with `ssm_cfg`. */
function writeMambaSsmConfig(dir: string, ssmCfg: unknown): void {
  const config = { d_model: 64, n_layer: 2, vocab_size: 512, ssm_cfg: ssmCfg, tie_embeddings: true };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
}

const rm = (file: string) => (dir: string) => fs.rmSync(path.join(dir, file));

const configCases: ErrorCase[] = [
  broken('missing config.json', rm('config.json'), (d) => `${configOf(d)}: file not found`),
  broken(
    'config.json is a folder',
    (d) => {
      fs.rmSync(path.join(d, 'config.json'));
      fs.mkdirSync(path.join(d, 'config.json'));
    },
    (d) => `${configOf(d)}: cannot read \\(EISDIR.*\\)`,
  ),
  broken(
    'config.json with invalid JSON',
    (d) => fs.writeFileSync(path.join(d, 'config.json'), '{"model_type": "mamba", "hidden_size": 64,,}'),
    (d) => `${configOf(d)}: invalid JSON \\(.+\\)`,
  ),
  broken(
    'unsupported model_type',
    (d) => editConfig(d, (c) => (c.model_type = 'llama')),
    (d) => `${configOf(d)}: unsupported model_type "llama" \\(expected "mamba" or "mamba2"\\)`,
  ),
  broken(
    'mamba2: hidden_size that heads × head_dim do not fill',
    (d) => editConfig(d, (c) => (c.hidden_size = 32)),
    (d) => `${configOf(d)}: num_heads 8 × head_dim 16 must equal the intermediate size 64`,
    'mamba2-tiny-0',
  ),
  broken(
    'mamba_ssm layout: ssm_cfg that is not an object',
    (d) => writeMambaSsmConfig(d, 'Mamba2'),
    (d) => `${configOf(d)}: field "ssm_cfg" must be an object`,
  ),
  broken(
    'mamba_ssm layout: headdim that does not divide the inner width',
    (d) => writeMambaSsmConfig(d, { layer: 'Mamba2', d_state: 16, headdim: 48 }),
    (d) => `${configOf(d)}: ssm_cfg.headdim 48 does not divide expand × d_model = 128`,
  ),
  broken(
    'mamba_ssm layout: dt_limit that is not a pair of numbers',
    (d) => writeMambaSsmConfig(d, { layer: 'Mamba2', d_state: 16, headdim: 16, dt_limit: [0] }),
    (d) => `${configOf(d)}: field "ssm_cfg.dt_limit" must be a pair of numbers`,
  ),
];

const fileCases: ErrorCase[] = [
  broken(
    'no model.safetensors',
    rm('model.safetensors'),
    (d) => `${re(d)}: no model\\.safetensors or model\\.safetensors\\.index\\.json found`,
  ),
  broken(
    'pytorch_model.bin only',
    (d) => fs.renameSync(path.join(d, 'model.safetensors'), path.join(d, 'pytorch_model.bin')),
    (d) => `${re(d)}: pytorch_model\\.bin is a PyTorch pickle.*convert it to safetensors`,
  ),
  broken(
    'truncated in the middle of the data',
    (d) => {
      const file = path.join(d, 'model.safetensors');
      fs.truncateSync(file, Math.floor(fs.statSync(file).size / 2));
    },
    (d) => `${weightsOf(d)}: tensor ".+" data offsets \\[\\d+, \\d+\\) run past the end of the data section`,
  ),
  broken(
    'header length beyond the file',
    (d) => {
      const file = path.join(d, 'model.safetensors');
      const bytes = fs.readFileSync(file);
      bytes.writeBigUInt64LE(BigInt(bytes.length), 0);
      fs.writeFileSync(file, bytes);
    },
    (d) => `${weightsOf(d)}: header length \\d+ runs past the end of the file \\(\\d+ bytes\\)`,
  ),
  broken(
    'corrupt header JSON',
    (d) => editHeaderText(d, (text) => text.replace('"dtype":"F32"', '"dtype":F32,')),
    (d) => `${weightsOf(d)}: header is not valid JSON \\(.+\\)`,
  ),
  broken(
    'offsets out of range',
    (d) =>
      editHeader(d, (h, dataBytes) => {
        h['backbone.norm_f.weight'].data_offsets = [dataBytes, dataBytes + 256];
      }),
    (d) =>
      `${weightsOf(d)}: tensor "backbone\\.norm_f\\.weight" data offsets \\[\\d+, \\d+\\) run past the end of the data section`,
  ),
  broken(
    'overlapping offsets',
    (d) =>
      editHeader(d, (h) => {
        const [a, b] = ['backbone.layers.0.norm.weight', 'backbone.layers.1.norm.weight'];
        h[b].data_offsets = h[a].data_offsets.map((offset) => offset + 128);
      }),
    (d) => `${weightsOf(d)}: tensors ".+" \\[\\d+, \\d+\\) and ".+" \\[\\d+, \\d+\\) overlap`,
  ),
  broken(
    'unknown dtype',
    (d) =>
      editHeader(d, (h) => {
        h['backbone.norm_f.weight'].dtype = 'F33';
      }),
    (d) => `${weightsOf(d)}: tensor "backbone\\.norm_f\\.weight" has unknown dtype "F33"`,
  ),
  broken(
    'shape does not match the byte size',
    (d) =>
      editHeader(d, (h) => {
        h['backbone.norm_f.weight'].shape = [32];
      }),
    (d) =>
      `${weightsOf(d)}: tensor "backbone\\.norm_f\\.weight" data offsets .* do not match its shape \\[32\\] of F32`,
  ),
];

const tensorCases: ErrorCase[] = [
  broken(
    'hidden_size disagrees with the tensors',
    (d) => editConfig(d, (c) => (c.hidden_size = 32)),
    (d) =>
      `${weightsOf(d)}: tensor "backbone\\.embeddings\\.weight" has shape \\[512, 64\\] but config\\.json implies \\[512, 32\\]`,
  ),
  broken(
    'state_size disagrees with the tensors',
    (d) => editConfig(d, (c) => (c.state_size = 8)),
    (d) =>
      `${weightsOf(d)}: tensor "backbone\\.layers\\.0\\.mixer\\.x_proj\\.weight" has shape \\[36, 128\\] but config\\.json implies \\[20, 128\\]`,
  ),
  broken(
    'mamba2: state_size disagrees with the tensors',
    (d) => editConfig(d, (c) => (c.state_size = 32)),
    (d) =>
      `${weightsOf(d)}: tensor "backbone\\.layers\\.0\\.mixer\\.in_proj\\.weight" has shape \\[296, 64\\] but config\\.json implies \\[328, 64\\]`,
    'mamba2-tiny-0',
  ),
  broken(
    'a missing tensor',
    (d) => editTensors(d, (ts) => ts.filter((t) => t.name !== 'backbone.layers.1.mixer.D')),
    (d) => `${re(d)}: missing tensor "backbone\\.layers\\.1\\.mixer\\.D"`,
  ),
  broken(
    'an unexpected extra tensor',
    (d) =>
      editTensors(d, (ts) => [
        ...ts,
        { name: 'backbone.extra.weight', shape: [2], data: new Float32Array(2) },
      ]),
    (d) =>
      `${re(d)}: unexpected tensor "backbone\\.extra\\.weight" \\(not part of a mamba model with this config\\.json\\)`,
  ),
];

errorTests({ 'config.json': configCases, 'weight files': fileCases, 'tensors vs config': tensorCases });
