// Tests for src/io/npy.ts: round trips for every dtype and rank 0 to 3, the mamba-tiny-0 input_ids
// fixture, and one hand-made file per error case.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { MambaError } from '../../src/core/errors.ts';
import { type NpyArray, readNpy, writeNpy } from '../../src/io/npy.ts';

const FIXTURE = path.resolve(import.meta.dirname, '../../../shared/fixtures/hf/mamba-tiny-0/input_ids.npy');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-npy-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
let counter = 0;
const tmpFile = () => path.join(tmp, `${counter++}.npy`);

/** A .npy file with the given version, header text and data bytes. */
function craft(header: string, data: Buffer = Buffer.alloc(0), version = 1, magic = '\x93NUMPY'): string {
  const text = Buffer.from(header, version === 3 ? 'utf8' : 'latin1');
  const prefix = Buffer.alloc(version === 1 ? 10 : 12);
  prefix.write(magic, 0, 'latin1');
  prefix[6] = version;
  if (version === 1) prefix.writeUInt16LE(text.length, 8);
  else prefix.writeUInt32LE(text.length, 8);
  const file = tmpFile();
  fs.writeFileSync(file, Buffer.concat([prefix, text, data]));
  return file;
}

function rejects(file: string, re: RegExp): void {
  assert.throws(
    () => readNpy(file),
    (e: unknown) => e instanceof MambaError && e.message.startsWith(`${file}: `) && re.test(e.message),
  );
}

test('round trips every dtype in 0-d, 1-d and n-d shapes', () => {
  const arrays: NpyArray[] = [
    { dtype: 'int32', shape: [2, 3], data: Int32Array.from([1, -2, 3, 2 ** 31 - 1, -(2 ** 31), 0]) },
    { dtype: 'int64', shape: [3], data: BigInt64Array.from([1n, -(2n ** 63n), 2n ** 63n - 1n]) },
    { dtype: 'float32', shape: [], data: Float32Array.of(3.5) },
    { dtype: 'float64', shape: [2, 1, 2], data: Float64Array.from([Math.PI, -0, Number.NaN, 1e300]) },
    { dtype: 'float32', shape: [0, 5], data: new Float32Array(0) },
    { dtype: 'int32', shape: [1], data: Int32Array.of(42) },
  ];
  for (const arr of arrays) {
    const file = tmpFile();
    writeNpy(file, arr);
    const bytes = fs.readFileSync(file);
    assert.equal((10 + bytes.readUInt16LE(8)) % 64, 0);
    assert.equal(bytes[10 + bytes.readUInt16LE(8) - 1], 0x0a);
    assert.deepEqual(readNpy(file), arr);
  }
});

test('writes the header numpy writes', () => {
  const file = tmpFile();
  writeNpy(file, { dtype: 'float32', shape: [5], data: new Float32Array(5) });
  const bytes = fs.readFileSync(file);
  const header = bytes.subarray(10, 10 + bytes.readUInt16LE(8)).toString('latin1');
  assert.equal(header.trimEnd(), "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }");
  const scalar = tmpFile();
  writeNpy(scalar, { dtype: 'int64', shape: [], data: new BigInt64Array(1) });
  assert.match(fs.readFileSync(scalar).toString('latin1'), /'shape': \(\), }/);
});

test('reads the mamba-tiny-0 input_ids fixture', () => {
  const ids = readNpy(FIXTURE);
  assert.equal(ids.dtype, 'int32');
  assert.equal(ids.shape.length, 2);
  assert.equal(ids.shape[0], 2);
  assert.ok(ids.shape[1] > 0);
  assert.ok(ids.data instanceof Int32Array);
  assert.equal(ids.data.length, 2 * ids.shape[1]);
  const bytes = fs.readFileSync(FIXTURE);
  assert.equal(ids.data[ids.data.length - 1], bytes.readInt32LE(bytes.length - 4));
});

test('reads format versions 2.0 and 3.0 and tolerant header spellings', () => {
  const data = Buffer.alloc(8);
  data.writeInt32LE(7, 0);
  data.writeInt32LE(-8, 4);
  const header = "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }\n";
  for (const version of [2, 3]) assert.deepEqual([...readNpy(craft(header, data, version)).data], [7, -8]);
  const odd = craft('{"shape":(1L,2L),"fortran_order":False,"descr":"|i4"}', data);
  assert.deepEqual(readNpy(odd).shape, [1, 2]);
  assert.deepEqual(
    readNpy(craft("{'descr': '=i4', 'fortran_order': False, 'shape': (2,)}", data)).shape,
    [2],
  );
});

test('rejects a missing file', () => {
  rejects(path.join(tmp, 'missing.npy'), /cannot open \(file not found\)/);
});

test('rejects bad magic', () => {
  rejects(
    craft("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", Buffer.alloc(4), 1, 'XNUMPY'),
    /bad magic/,
  );
  const short = tmpFile();
  fs.writeFileSync(short, 'abc');
  rejects(short, /bad magic/);
});

test('rejects unsupported versions', () => {
  rejects(craft('{}', Buffer.alloc(0), 4), /unsupported .npy format version 4.0/);
});

test('rejects headers that do not parse', () => {
  for (const header of [
    "{'descr': '<f4', 'fortran_order': False 'shape': (), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (), ",
    "{'descr': '<f4, 'fortran_order': False, 'shape': (), }",
    "{'descr': '<f4', 'fortran_order': Fals, 'shape': (), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (), } x",
  ]) {
    rejects(craft(header), /header does not parse/);
  }
  rejects(craft("('descr', '<f4')"), /header is not a dict/);
  rejects(craft("{'descr': '<f4', 'fortran_order': False}"), /header lacks 'shape'/);
  rejects(craft("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}"), /'shape' must be a tuple/);
  rejects(
    craft("{'descr': '<f4', 'fortran_order': 0, 'shape': ()}"),
    /'fortran_order' must be True or False/,
  );
});

test('rejects unsupported dtypes, naming them', () => {
  for (const descr of ['>f4', '<U5', '|b1', '<f2', '<c8', '|u1']) {
    const file = craft(`{'descr': '${descr}', 'fortran_order': False, 'shape': (1,), }`, Buffer.alloc(16));
    rejects(file, new RegExp(`unsupported dtype '${descr.replace('|', '\\|')}'`));
  }
  rejects(
    craft("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", Buffer.alloc(4)),
    /structured dtypes are not supported/,
  );
});

test('rejects Fortran order', () => {
  rejects(
    craft("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", Buffer.alloc(16)),
    /Fortran order is not supported; save with np.ascontiguousarray/,
  );
});

test('rejects data that does not match the shape', () => {
  const header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
  rejects(
    craft(header, Buffer.alloc(40)),
    /truncated: shape \[2, 3\] of float64 needs 48 bytes but the data is 40/,
  );
  rejects(craft(header, Buffer.alloc(50)), /2 trailing bytes after the data/);
  const file = tmpFile();
  fs.writeFileSync(file, Buffer.from('\x93NUMPY\x01\x00\xff\x00{}', 'latin1'));
  rejects(file, /header length 255 runs past the end of the file/);
});

test('writeNpy refuses data that does not fit the dtype or shape', () => {
  assert.throws(
    () => writeNpy(tmpFile(), { dtype: 'float32', shape: [3], data: new Float32Array(2) }),
    /2 values do not fit shape \[3\]/,
  );
  assert.throws(
    () => writeNpy(tmpFile(), { dtype: 'int64', shape: [2], data: new Int32Array(2) }),
    /dtype int64 needs its data in a BigInt64Array/,
  );
});
