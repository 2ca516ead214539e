// Bad input other than the model folder, through the command line: token ids outside the
// vocabulary (from --prompt-ids and from an .npy), unusable .npy files (empty, wrong dtype, wrong
// rank, formats the reader refuses), and bad commands and options. Every case: exit 1 (2 for an
// unknown command), one stderr line `mamba-ts: error: ...` naming the file where there is one, no
// stack trace (see errorTests).

import fs from 'node:fs';
import path from 'node:path';
import { type NpyArray, writeNpy } from '../../src/io/npy.ts';
import { type ErrorCase, errorTests, re, tmpRoot } from '../helpers/cli.ts';
import { fixture } from '../helpers/fixtures.ts';

const tmp = tmpRoot('input-errors');
let files = 0;
const tmpFile = (name: string) => path.join(tmp, `${files++}-${name}`);

const tiny = fixture('hf', 'mamba-tiny-0'); // vocabulary 512
const tinyIds = fixture('hf', 'mamba-tiny-0', 'input_ids.npy');
const logits = (ids = tinyIds) => [
  'logits',
  '--model',
  tiny,
  '--input-ids',
  ids,
  '--output',
  tmpFile('out.npy'),
];
const generate = (...args: string[]) => ['generate', '--model', tiny, '--greedy', ...args];

function npy(arr: NpyArray): string {
  const file = tmpFile('ids.npy');
  writeNpy(file, arr);
  return file;
}

const int32 = (shape: number[], values: number[]) => () =>
  npy({ dtype: 'int32', shape, data: Int32Array.from(values) });
const int64 = (shape: number[], values: bigint[]) => () =>
  npy({ dtype: 'int64', shape, data: BigInt64Array.from(values) });

/** A version 1.0 .npy file with a hand-written header (for dtypes and layouts writeNpy does not write). */
const rawNpy = (descr: string, fortranOrder: string, shape: string, dataBytes: number) => () => {
  let header = `{'descr': '${descr}', 'fortran_order': ${fortranOrder}, 'shape': ${shape}, }`;
  header += `${' '.repeat(63 - ((10 + header.length) % 64))}\n`;
  const prefix = Buffer.from([0x93, ...Buffer.from('NUMPY'), 1, 0, 0, 0]);
  prefix.writeUInt16LE(header.length, 8);
  const file = tmpFile('raw.npy');
  fs.writeFileSync(file, Buffer.concat([prefix, Buffer.from(header, 'latin1'), Buffer.alloc(dataBytes)]));
  return file;
};

/** `logits` on mamba-tiny-0 with the ids file `make` writes; the message must start with its path. */
const ids = (name: string, make: () => string, error: string): ErrorCase => ({
  name,
  make: () => {
    const file = make();
    return { args: logits(file), error: `${re(file)}: ${error}` };
  },
});

const idsCases: ErrorCase[] = [
  ids(
    'an id outside the vocabulary',
    int32([1, 3], [1, 512, 3]),
    'token id 512 \\(sequence 0, position 1\\) is outside the vocabulary \\[0, 512\\)',
  ),
  ids(
    'a negative id (int32)',
    int32([1, 3], [1, -1, 3]),
    'token id -1 \\(index 1\\) is outside any vocabulary',
  ),
  ids(
    'a negative id (int64)',
    int64([2, 1], [5n, -7n]),
    'token id -7 \\(index 1\\) is outside any vocabulary',
  ),
  ids(
    'an id beyond int32 (int64)',
    int64([1, 1], [2n ** 32n + 5n]),
    'token id 4294967301 .* outside any vocabulary',
  ),
  ids('shape [1, 0]', int32([1, 0], []), 'empty input: shape \\[1,0\\] holds no token ids'),
  ids('shape [0, 5]', int32([0, 5], []), 'empty input: shape \\[0,5\\] holds no token ids'),
  ids(
    'float32 ids',
    () => npy({ dtype: 'float32', shape: [1, 2], data: Float32Array.of(1, 2) }),
    'token ids must be int32 or int64, got float32',
  ),
  ids('a <U5 array', rawNpy('<U5', 'False', '(1, 2)', 40), "unsupported dtype '<U5' \\(mamba-ts reads .*\\)"),
  ids('a big-endian >f4 array', rawNpy('>f4', 'False', '(1, 2)', 8), "unsupported dtype '>f4'"),
  ids('a Fortran-order array', rawNpy('<i4', 'True', '(2, 3)', 24), 'Fortran order is not supported'),
  ids(
    'shape [6]',
    int32([6], [1, 2, 3, 4, 5, 6]),
    'token ids must have shape \\[batch, length\\], got \\[6\\]',
  ),
  ids(
    'shape [1, 2, 3]',
    int32([1, 2, 3], [1, 2, 3, 4, 5, 6]),
    'token ids must have shape \\[batch, length\\]',
  ),
  ids('no such file', () => path.join(tmp, 'nowhere.npy'), 'cannot open \\(file not found\\)'),
];

/** A fixed command line and the expected message. */
const usage = (name: string, args: string[], error: string, status = 1): ErrorCase => ({
  name,
  make: () => ({ args, error }),
  status,
});

const commandCases: ErrorCase[] = [
  usage(
    'unknown command',
    ['frobnicate'],
    'unknown command "frobnicate" \\(commands: logits, [a-z, ]+\\)',
    2,
  ),
  usage('unknown option', ['logits', '--bogus'], "logits: Unknown option '--bogus'"),
  usage(
    'option without its value',
    generate('--prompt-ids'),
    "generate: Option '--prompt-ids <value>' argument missing",
  ),
  usage(
    'missing --output',
    ['logits', '--model', tiny, '--input-ids', tinyIds],
    'logits: --output is required',
  ),
  usage(
    'missing --preset',
    ['init', '--family', 'mamba', '--out', tmpFile('x')],
    'init: --preset is required',
  ),
  usage(
    '--max-new-tokens -1',
    generate('--prompt-ids', '1', '--max-new-tokens', '-1'),
    "generate: Option '--max-new-tokens' argument is ambiguous\\. .* use '--max-new-tokens=-XYZ'\\.",
  ),
  usage(
    '--max-new-tokens=-1',
    generate('--prompt-ids', '1', '--max-new-tokens=-1'),
    'generate: --max-new-tokens must be an integer >= 0, got "-1"',
  ),
  usage(
    '--max-new-tokens abc',
    generate('--prompt-ids', '1', '--max-new-tokens', 'abc'),
    'generate: --max-new-tokens must be an integer >= 0, got "abc"',
  ),
  usage(
    '--prompt-ids 1,,2',
    generate('--prompt-ids', '1,,2'),
    'generate: --prompt-ids must be comma-separated token ids, got "1,,2"',
  ),
  usage(
    '--prompt-ids x',
    generate('--prompt-ids', 'x'),
    'generate: --prompt-ids must be comma-separated token ids, got "x"',
  ),
  usage(
    '--prompt-ids outside the vocabulary',
    generate('--prompt-ids', '1,512'),
    'token id 512 \\(sequence 0, position 1\\) is outside the vocabulary \\[0, 512\\)',
  ),
  usage(
    '--prompt-ids beyond int32 (would wrap to 5)',
    generate('--prompt-ids', '4294967301'),
    'generate: token id 4294967301 in --prompt-ids is outside any vocabulary',
  ),
  usage(
    'unknown --backend',
    [...logits(), '--backend', 'cuda'],
    'logits: unknown backend "cuda" \\(available: cpu, webgpu\\)',
  ),
  usage(
    '--model that does not exist',
    generate('--prompt-ids', '1', '--model', path.join(tmp, 'none')),
    `${re(path.join(tmp, 'none'))}: no such folder`,
  ),
  usage(
    'init: --out is an existing file',
    ['init', '--family', 'mamba', '--preset', 'tiny', '--out', tinyIds],
    `${re(tinyIds)}: cannot create the output folder \\(EEXIST.*\\)`,
  ),
  usage(
    'bench: unknown family',
    ['bench', '--family', 's4', '--prefill', '1', '--decode', '1', '--json', tmpFile('bench.json')],
    'unknown family "s4" \\(expected mamba or mamba2\\)',
  ),
  usage(
    'bench: unknown preset',
    ['bench', '--preset', 'huge', '--prefill', '1', '--decode', '1', '--json', tmpFile('bench.json')],
    'unknown mamba preset "huge" \\(available: tiny, small, 130m, .*\\)',
  ),
  usage(
    'init: unknown family',
    ['init', '--family', 's4', '--preset', 'tiny', '--out', tmpFile('y')],
    'unknown family "s4" \\(expected mamba or mamba2\\)',
  ),
  usage(
    'init: unknown preset',
    ['init', '--family', 'mamba2', '--preset', 'huge', '--out', tmpFile('z')],
    'unknown mamba2 preset "huge" \\(available: tiny, small, 130m, .*\\)',
  ),
];

errorTests({ 'token id files': idsCases, 'commands and options': commandCases });
