// Tests for src/io/safetensors.ts: round trips in F32/F16/BF16 (with hand-checked conversions), chunked
// reads, sharded checkpoints, the real mamba-tiny-0 fixture, and one test per corrupt-header case.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { MambaError } from '../../src/core/errors.ts';
import {
  Checkpoint,
  f32ToBf16,
  f32ToF16,
  SafetensorsFile,
  writeSafetensors,
} from '../../src/io/safetensors.ts';

const FIXTURE = path.resolve(
  import.meta.dirname,
  '../../../shared/fixtures/hf/mamba-tiny-0/model.safetensors',
);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-safetensors-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
let counter = 0;
const tmpFile = (name = 'x.safetensors') => path.join(tmp, `${counter++}-${name}`);

/** Writes a raw safetensors file: 8-byte length (or `length`), the header text, then `dataBytes` zeros. */
function craft(header: unknown, dataBytes = 0, length?: bigint): string {
  const text = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(length ?? BigInt(text.length));
  const file = tmpFile();
  fs.writeFileSync(file, Buffer.concat([prefix, text, Buffer.alloc(dataBytes)]));
  return file;
}

/** Asserts that opening `file` throws a MambaError whose message names the file and matches `re`. */
function rejects(file: string, re: RegExp): void {
  assert.throws(
    () => SafetensorsFile.open(file),
    (e: unknown) => e instanceof MambaError && e.message.startsWith(`${file}: `) && re.test(e.message),
  );
}

const same = (a: number, b: number) => Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));

test('F32 round trip keeps values, shapes, metadata and an 8-byte aligned header', () => {
  const file = tmpFile();
  const a = Float32Array.from([1.5, -2, 3.25e-40, Number.POSITIVE_INFINITY, Number.NaN, -0]);
  const scalar = Float32Array.of(7);
  writeSafetensors(
    file,
    [
      { name: 'a', shape: [2, 3], data: a },
      { name: 'scalar', shape: [], data: scalar },
      { name: 'empty', shape: [0, 4], data: new Float32Array(0) },
    ],
    { format: 'pt' },
  );
  assert.equal(fs.existsSync(`${file}.tmp`), false);
  const bytes = fs.readFileSync(file);
  assert.equal(Number(bytes.readBigUInt64LE(0)) % 8, 0);
  const st = SafetensorsFile.open(file);
  assert.deepEqual(st.metadata, { format: 'pt' });
  assert.deepEqual([...st.tensors.keys()], ['a', 'scalar', 'empty']);
  assert.deepEqual(st.tensors.get('a')!.shape, [2, 3]);
  assert.equal(st.tensors.get('a')!.dtype, 'F32');
  const back = st.read('a');
  for (let i = 0; i < a.length; i++) assert.ok(same(back[i], a[i]), `a[${i}]`);
  assert.deepEqual([...st.read('scalar')], [7]);
  assert.equal(st.read('empty').length, 0);
  st.close();
  assert.throws(() => st.read('a'), /after close\(\)/);
});

test('f32 → F16 rounds to nearest even and keeps subnormals, ±inf and NaN', () => {
  const cases: Array<[number, number, number]> = [
    // [input, f16 bits, value read back]
    [1, 0x3c00, 1],
    [-2, 0xc000, -2],
    [-0, 0x8000, -0],
    [65504, 0x7bff, 65504],
    [65519, 0x7bff, 65504],
    [65520, 0x7c00, Number.POSITIVE_INFINITY], // halfway to 2^16 rounds up to inf
    [1e6, 0x7c00, Number.POSITIVE_INFINITY],
    [Number.NEGATIVE_INFINITY, 0xfc00, Number.NEGATIVE_INFINITY],
    [2 ** -14, 0x0400, 2 ** -14], // smallest normal
    [2 ** -24, 0x0001, 2 ** -24], // smallest subnormal
    [2 ** -25, 0x0000, 0], // tie between 0 and 2^-24 goes to even (0)
    [1.5 * 2 ** -24, 0x0002, 2 ** -23], // tie between 1 and 2 (in units of 2^-24) goes to 2
    [2 ** -25 * 1.0001, 0x0001, 2 ** -24],
    [1023 * 2 ** -24, 0x03ff, 1023 * 2 ** -24], // largest subnormal
    [1 + 2 ** -11, 0x3c00, 1], // tie goes to even
    [1 + 3 * 2 ** -11, 0x3c02, 1 + 2 ** -9], // tie goes to even (up)
    [1 + 2 ** -11 + 2 ** -20, 0x3c01, 1 + 2 ** -10],
    [0.1, 0x2e66, 0.0999755859375],
  ];
  for (const [x, bits] of cases) assert.equal(f32ToF16(x), bits, `f32ToF16(${x})`);
  assert.equal(f32ToF16(Number.NaN) & 0x7c00, 0x7c00);
  assert.notEqual(f32ToF16(Number.NaN) & 0x3ff, 0);

  const file = tmpFile();
  const data = Float32Array.from([...cases.map((c) => c[0]), Number.NaN]);
  writeSafetensors(file, [{ name: 'h', shape: [data.length], data }], undefined, 'F16');
  const st = SafetensorsFile.open(file);
  assert.equal(st.tensors.get('h')!.dtype, 'F16');
  assert.equal(fs.statSync(file).size - (st.tensors.get('h')!.begin as number), data.length * 2);
  const back = st.read('h');
  for (const [i, [x, , want]] of cases.entries())
    assert.ok(same(back[i], want), `F16 ${x} read back as ${back[i]}`);
  assert.ok(Number.isNaN(back[cases.length]));
  st.close();
});

test('f32 → BF16 rounds to nearest even and keeps subnormals, ±inf and NaN', () => {
  const cases: Array<[number, number]> = [
    // [input, value read back]
    [1, 1],
    [-0, -0],
    [1 + 2 ** -8, 1], // tie goes to even
    [1 + 3 * 2 ** -8, 1 + 2 ** -6], // tie goes to even (up)
    [1 + 2 ** -8 + 2 ** -20, 1 + 2 ** -7],
    [2 ** -130, 2 ** -130], // f32 subnormal, exact in bf16
    [3.4028234663852886e38, Number.POSITIVE_INFINITY], // max f32 rounds up past bf16's max
    [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY],
    [Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY],
    [Number.NaN, Number.NaN],
    [-3.140625, -3.140625],
  ];
  assert.equal(f32ToBf16(1), 0x3f80);
  assert.equal(f32ToBf16(-2), 0xc000);
  const file = tmpFile();
  const data = Float32Array.from(cases.map((c) => c[0]));
  writeSafetensors(file, [{ name: 'b', shape: [data.length], data }], undefined, 'BF16');
  const st = SafetensorsFile.open(file);
  const back = st.read('b');
  for (const [i, [x, want]] of cases.entries())
    assert.ok(same(back[i], want), `BF16 ${x} read back as ${back[i]}`);
  st.close();
});

test('reads that span many chunks give the same values, into a caller-supplied buffer', () => {
  const n = 100_003;
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.sin(i) * 1000;
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    const file = tmpFile();
    writeSafetensors(
      file,
      [
        { name: 'pad', shape: [3], data: Float32Array.of(1, 2, 3) },
        { name: 'big', shape: [n], data },
      ],
      undefined,
      dtype,
    );
    const whole = SafetensorsFile.open(file);
    const want = whole.read('big');
    whole.close();
    if (dtype === 'F32') assert.deepEqual(want, data);
    for (const chunkBytes of [1000, 4096, 3]) {
      const st = SafetensorsFile.open(file, { chunkBytes });
      const shared = st.read('big', (len) => new Float32Array(new SharedArrayBuffer(len * 4)));
      assert.ok(shared.buffer instanceof SharedArrayBuffer);
      assert.deepEqual(new Float32Array(shared), want, `${dtype} with ${chunkBytes}-byte chunks`);
      assert.deepEqual([...st.read('pad')], [1, 2, 3]);
      st.close();
    }
  }
});

test('read refuses wrong alloc lengths, unknown names and non-float dtypes', () => {
  const file = craft(
    {
      ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] },
      w: { dtype: 'F32', shape: [2], data_offsets: [16, 24] },
    },
    24,
  );
  const st = SafetensorsFile.open(file);
  assert.throws(() => st.read('ids'), /tensor "ids" has dtype I64; only F32, F16 and BF16/);
  assert.throws(() => st.read('nope'), /no tensor "nope"/);
  assert.throws(() => st.read('w', () => new Float32Array(3)), /alloc\(2\) for tensor "w" returned 3 values/);
  st.close();
});

test('the mamba-tiny-0 fixture opens and matches an independent parse of its header', () => {
  const bytes = fs.readFileSync(FIXTURE);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const dataBytes = names.reduce((s, k) => s + header[k].data_offsets[1] - header[k].data_offsets[0], 0);
  assert.equal(8 + n + dataBytes, bytes.length);

  const st = SafetensorsFile.open(FIXTURE);
  assert.deepEqual([...st.tensors.keys()].sort(), names.sort());
  const emb = st.tensors.get('backbone.embeddings.weight')!;
  assert.deepEqual(emb.shape, [512, 64]);
  assert.equal(emb.dtype, 'F32');
  assert.equal(emb.end - emb.begin, 512 * 64 * 4);
  const values = st.read('backbone.embeddings.weight');
  const start = 8 + n + header['backbone.embeddings.weight'].data_offsets[0];
  for (const i of [0, 1, 777, 512 * 64 - 1]) assert.equal(values[i], bytes.readFloatLE(start + 4 * i));
  st.close();

  const ckpt = Checkpoint.open(path.dirname(FIXTURE));
  assert.equal(ckpt.info('backbone.norm_f.weight').file, FIXTURE);
  assert.equal(ckpt.read('backbone.norm_f.weight').length, 64);
  ckpt.close();
});

test('a sharded checkpoint reads each tensor from its shard', () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'sharded-'));
  writeSafetensors(path.join(dir, 'model-00001-of-00002.safetensors'), [
    { name: 'a', shape: [2], data: Float32Array.of(1, 2) },
    { name: 'b', shape: [1], data: Float32Array.of(3) },
  ]);
  writeSafetensors(path.join(dir, 'model-00002-of-00002.safetensors'), [
    { name: 'c', shape: [2, 2], data: Float32Array.of(4, 5, 6, 7) },
  ]);
  const weightMap = {
    a: 'model-00001-of-00002.safetensors',
    b: 'model-00001-of-00002.safetensors',
    c: 'model-00002-of-00002.safetensors',
  };
  const indexPath = path.join(dir, 'model.safetensors.index.json');
  fs.writeFileSync(indexPath, JSON.stringify({ metadata: { total_size: 28 }, weight_map: weightMap }));
  const ckpt = Checkpoint.open(dir);
  assert.deepEqual(ckpt.names(), ['a', 'b', 'c']);
  assert.ok(ckpt.has('c') && !ckpt.has('d'));
  assert.equal(ckpt.info('c').file, path.join(dir, 'model-00002-of-00002.safetensors'));
  assert.deepEqual(ckpt.info('c').shape, [2, 2]);
  assert.deepEqual([...ckpt.read('c')], [4, 5, 6, 7]);
  assert.deepEqual([...ckpt.read('b')], [3]);
  assert.throws(
    () => ckpt.read('d'),
    (e) => e instanceof MambaError && e.message === `${dir}: missing tensor "d"`,
  );
  ckpt.close();

  fs.writeFileSync(indexPath, JSON.stringify({ weight_map: { ...weightMap, d: weightMap.c } }));
  assert.throws(
    () => Checkpoint.open(dir),
    (e) =>
      e instanceof MambaError &&
      e.message.startsWith(`${indexPath}: `) &&
      /tensor "d" is mapped to shard "model-00002-of-00002.safetensors", which does not contain it/.test(
        e.message,
      ),
  );
  fs.writeFileSync(indexPath, JSON.stringify({ weight_map: { ...weightMap, e: 'model-00003.safetensors' } }));
  assert.throws(() => Checkpoint.open(dir), /shard "model-00003.safetensors" \(for tensor "e"\) not found/);
  fs.writeFileSync(indexPath, JSON.stringify({ weight_map: { e: '../outside.safetensors' } }));
  assert.throws(() => Checkpoint.open(dir), /shard "..\/outside.safetensors" is not a file inside/);
  fs.writeFileSync(indexPath, '{"weight_map": ');
  assert.throws(() => Checkpoint.open(dir), /model.safetensors.index.json: cannot read it as JSON/);
  fs.writeFileSync(indexPath, JSON.stringify({ weight_map: { a: 3 } }));
  assert.throws(() => Checkpoint.open(dir), /"weight_map" must map tensor names to shard file names/);
});

test('Checkpoint refuses PyTorch pickles and says when nothing is there', () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'pickle-'));
  assert.throws(
    () => Checkpoint.open(dir),
    (e) =>
      e instanceof MambaError &&
      e.message === `${dir}: no model.safetensors or model.safetensors.index.json found`,
  );
  fs.writeFileSync(path.join(dir, 'pytorch_model.bin'), 'PK');
  assert.throws(
    () => Checkpoint.open(dir),
    (e) =>
      e instanceof MambaError &&
      e.message ===
        `${dir}: pytorch_model.bin is a PyTorch pickle, which mamba-ts does not load (pickles can run code); ` +
          `convert it to safetensors (e.g. with the safetensors library's convert script)`,
  );
  const other = fs.mkdtempSync(path.join(tmp, 'pickle-'));
  fs.writeFileSync(path.join(other, 'weights.pt'), 'PK');
  assert.throws(() => Checkpoint.open(other), /weights\.pt is a PyTorch pickle/);
  assert.throws(() => Checkpoint.open(path.join(tmp, 'nowhere')), /nowhere: directory not found/);
  assert.throws(() => Checkpoint.open(FIXTURE), /model\.safetensors: not a directory/);
});

test('open rejects a missing file', () => {
  rejects(path.join(tmp, 'missing.safetensors'), /cannot open \(file not found\)/);
});

test('open rejects a file shorter than 8 bytes', () => {
  const file = tmpFile();
  fs.writeFileSync(file, Buffer.alloc(5));
  rejects(file, /file is 5 bytes, shorter than the 8-byte header length/);
});

test('open rejects a header length past the end of the file', () => {
  rejects(craft('{}', 0, 1000n), /header length 1000 runs past the end of the file \(10 bytes\)/);
});

test('open rejects an absurd header length', () => {
  rejects(craft('{}', 0, 2n ** 60n), /header length 1152921504606846976 is over the 100 MB limit/);
});

test('open rejects a header that is not JSON', () => {
  rejects(craft('{"a": '), /header is not valid JSON/);
  const file = tmpFile();
  fs.writeFileSync(file, Buffer.concat([Buffer.from([2, 0, 0, 0, 0, 0, 0, 0]), Buffer.from([0xff, 0xfe])]));
  rejects(file, /header is not valid JSON/);
});

test('open rejects a header that is not an object', () => {
  rejects(craft('[1, 2]'), /header is not a JSON object/);
  rejects(craft('null'), /header is not a JSON object/);
});

test('open rejects entries that lack dtype, shape or data_offsets, or are not objects', () => {
  rejects(craft({ x: { shape: [1], data_offsets: [0, 4] } }, 4), /tensor "x" has no "dtype"/);
  rejects(craft({ x: { dtype: 'F32', data_offsets: [0, 4] } }, 4), /tensor "x" has no "shape"/);
  rejects(craft({ x: { dtype: 'F32', shape: [1] } }, 4), /tensor "x" has no "data_offsets"/);
  rejects(craft({ x: 5 }), /tensor "x" is not an object/);
  rejects(
    craft({ x: { dtype: 4, shape: [1], data_offsets: [0, 4] } }, 4),
    /tensor "x": dtype must be a string/,
  );
});

test('open rejects an unknown dtype', () => {
  rejects(
    craft({ x: { dtype: 'F128', shape: [1], data_offsets: [0, 16] } }, 16),
    /tensor "x" has unknown dtype "F128"/,
  );
});

test('open rejects shapes that are not lists of non-negative integers', () => {
  const entry = (shape: unknown) => craft({ x: { dtype: 'U8', shape, data_offsets: [0, 4] } }, 4);
  for (const shape of [[-4], [2.5], ['4'], 4, null]) {
    rejects(entry(shape), /tensor "x": shape must be a list of non-negative integers/);
  }
});

test('open rejects data_offsets that are not [begin, end] with begin <= end', () => {
  const entry = (offsets: unknown) => craft({ x: { dtype: 'U8', shape: [0], data_offsets: offsets } }, 8);
  for (const offsets of [[4, 0], [0], [0, 4, 8], [-1, 0], [0, '4'], 'x']) {
    rejects(entry(offsets), /tensor "x": data_offsets must be \[begin, end\] with 0 <= begin <= end/);
  }
});

test('open rejects data offsets past the end of the data section', () => {
  rejects(
    craft({ x: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 12),
    /tensor "x" data offsets \[0, 16\) run past the end of the data section \(12 bytes\)/,
  );
});

test('open rejects data offsets whose size does not match the shape', () => {
  rejects(
    craft({ x: { dtype: 'F32', shape: [4, 5], data_offsets: [0, 64] } }, 80),
    /tensor "x" data offsets \[0, 64\) do not match its shape \[4, 5\] of F32 \(80 bytes\)$/,
  );
});

test('open rejects overlapping tensors but accepts holes, empty tensors and non-float dtypes', () => {
  rejects(
    craft(
      {
        a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
        b: { dtype: 'F32', shape: [4], data_offsets: [8, 24] },
      },
      24,
    ),
    /tensors "a" \[0, 16\) and "b" \[8, 24\) overlap/,
  );
  const st = SafetensorsFile.open(
    craft(
      {
        a: { dtype: 'F64', shape: [1], data_offsets: [0, 8] },
        e: { dtype: 'BOOL', shape: [0], data_offsets: [4, 4] },
        b: { dtype: 'F8_E4M3', shape: [2, 2], data_offsets: [16, 20] },
      },
      24,
    ),
  );
  assert.deepEqual([...st.tensors.keys()], ['a', 'e', 'b']);
  st.close();
});

test('open rejects metadata that is not a map of strings', () => {
  rejects(craft({ __metadata__: { step: 3 } }), /__metadata__ must map strings to strings/);
});
