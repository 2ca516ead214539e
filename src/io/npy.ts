// NumPy .npy files: reads format versions 1.0, 2.0 and 3.0 and writes 1.0, for little-endian int32,
// int64, float32 and float64 arrays in C order. The header (a Python dict literal such as
// {'descr': '<i4', 'fortran_order': False, 'shape': (2, 53), }) is parsed by a small dedicated parser,
// never evaluated. Leaves out: big-endian data, other dtypes (bool, float16, strings, structured),
// Fortran order, .npz archives, and big-endian hosts.

import fs from 'node:fs';
import { fail, MambaError } from '../core/errors.ts';

export type NpyDtype = 'int32' | 'int64' | 'float32' | 'float64';

export type NpyArray = {
  dtype: NpyDtype;
  shape: number[];
  data: Int32Array | BigInt64Array | Float32Array | Float64Array;
};

const MAGIC = Buffer.from([0x93, ...Buffer.from('NUMPY')]);

const DTYPES: Record<
  NpyDtype,
  { descr: string; array: { new (n: number): NpyArray['data']; BYTES_PER_ELEMENT: number; name: string } }
> = {
  int32: { descr: '<i4', array: Int32Array },
  int64: { descr: '<i8', array: BigInt64Array },
  float32: { descr: '<f4', array: Float32Array },
  float64: { descr: '<f8', array: Float64Array },
};

/** Reads a whole .npy file; the data is read straight into the returned typed array. */
export function readNpy(path: string): NpyArray {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    fail(`${path}: cannot open (${err.code === 'ENOENT' ? 'file not found' : err.message})`);
  }
  try {
    const size = fs.fstatSync(fd).size;
    const prefix = Buffer.alloc(Math.min(size, 12));
    readFully(path, fd, prefix, 0);
    if (!prefix.subarray(0, 6).equals(MAGIC)) fail(`${path}: not a .npy file (bad magic)`);
    if (size < 8) fail(`${path}: file ends inside the header`);
    const [major, minor] = [prefix[6], prefix[7]];
    if (major < 1 || major > 3 || minor !== 0)
      fail(`${path}: unsupported .npy format version ${major}.${minor}`);
    const lengthBytes = major === 1 ? 2 : 4;
    if (size < 8 + lengthBytes) fail(`${path}: file ends inside the header`);
    const headerLength = major === 1 ? prefix.readUInt16LE(8) : prefix.readUInt32LE(8);
    const dataStart = 8 + lengthBytes + headerLength;
    if (dataStart > size) fail(`${path}: header length ${headerLength} runs past the end of the file`);
    const headerBytes = Buffer.alloc(headerLength);
    readFully(path, fd, headerBytes, 8 + lengthBytes);
    const { dtype, shape } = parseHeader(path, headerBytes.toString(major === 3 ? 'utf8' : 'latin1'));

    const { array } = DTYPES[dtype];
    const count = shape.reduce((p, d) => p * d, 1);
    const need = count * array.BYTES_PER_ELEMENT;
    const have = size - dataStart;
    const what = `shape [${shape.join(', ')}] of ${dtype} needs ${need} bytes`;
    if (have < need) fail(`${path}: truncated: ${what} but the data is ${have} bytes`);
    if (have > need) fail(`${path}: ${have - need} trailing bytes after the data (${what})`);
    let data: NpyArray['data'];
    try {
      data = new array(count);
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      fail(`${path}: ${what}, too large for one typed array`);
    }
    readFully(path, fd, new Uint8Array(data.buffer), dataStart);
    return { dtype, shape, data };
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes `arr` as a version 1.0 .npy file; the data starts at a multiple of 64 bytes, as numpy does. */
export function writeNpy(path: string, arr: NpyArray): void {
  const { dtype, shape, data } = arr;
  const spec = DTYPES[dtype] ?? fail(`${path}: cannot write dtype ${JSON.stringify(dtype)}`);
  if (!(data instanceof spec.array)) fail(`${path}: dtype ${dtype} needs its data in a ${spec.array.name}`);
  if (
    !shape.every((d) => Number.isSafeInteger(d) && d >= 0) ||
    shape.reduce((p, d) => p * d, 1) !== data.length
  ) {
    fail(`${path}: ${data.length} values do not fit shape [${shape.join(', ')}]`);
  }
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  let header = `{'descr': '${spec.descr}', 'fortran_order': False, 'shape': (${dims}), }`;
  header += `${' '.repeat(63 - ((10 + header.length) % 64))}\n`;
  if (header.length > 0xffff) fail(`${path}: shape [${shape.join(', ')}] makes the header too long`);
  const head = Buffer.alloc(10 + header.length);
  MAGIC.copy(head);
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  head.write(header, 10, 'latin1');
  let fd: number | undefined;
  try {
    fd = fs.openSync(path, 'w');
    writeFully(fd, head);
    writeFully(fd, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  } catch (e) {
    if (e instanceof MambaError) throw e;
    fail(`${path}: write failed (${(e as Error).message})`);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

// ---- header ----

const DESCRS: Record<string, NpyDtype> = { i4: 'int32', i8: 'int64', f4: 'float32', f8: 'float64' };

function parseHeader(path: string, text: string): { dtype: NpyDtype; shape: number[] } {
  let dict: unknown;
  try {
    dict = new LiteralParser(text).parseAll();
  } catch (e) {
    if (!(e instanceof SyntaxError)) throw e;
    fail(`${path}: header does not parse (${e.message}): ${JSON.stringify(text.trim())}`);
  }
  if (!(dict instanceof Map)) fail(`${path}: header is not a dict: ${JSON.stringify(text.trim())}`);
  for (const key of ['descr', 'fortran_order', 'shape'])
    if (!dict.has(key)) fail(`${path}: header lacks '${key}'`);
  const descr = dict.get('descr');
  if (typeof descr !== 'string') fail(`${path}: unsupported dtype (structured dtypes are not supported)`);
  const dtype = /^[<|=]/.test(descr) ? DESCRS[descr.slice(1)] : undefined;
  if (!dtype) fail(`${path}: unsupported dtype '${descr}' (mamba-ts reads <i4, <i8, <f4 and <f8)`);
  const fortran = dict.get('fortran_order');
  if (fortran === true) fail(`${path}: Fortran order is not supported; save with np.ascontiguousarray`);
  if (fortran !== false) fail(`${path}: header 'fortran_order' must be True or False`);
  const shape = dict.get('shape');
  if (!(shape instanceof Tuple) || !shape.items.every((d) => typeof d === 'number' && d >= 0)) {
    fail(`${path}: header 'shape' must be a tuple of non-negative integers`);
  }
  return { dtype, shape: shape.items as number[] };
}

class Tuple {
  constructor(readonly items: unknown[]) {}
}

/** Python literals as numpy writes them: dict, tuple, list, str, int, True/False/None. */
class LiteralParser {
  private i = 0;
  constructor(private readonly s: string) {}

  parseAll(): unknown {
    const value = this.value();
    this.skip();
    if (this.i < this.s.length) this.error('unexpected text after the dict');
    return value;
  }

  private value(): unknown {
    this.skip();
    const c = this.s[this.i];
    if (c === '{') {
      const dict = new Map<unknown, unknown>();
      this.seq('}', () => {
        const key = this.value();
        this.expect(':');
        dict.set(key, this.value());
      });
      return dict;
    }
    if (c === '(' || c === '[') {
      const items: unknown[] = [];
      this.seq(c === '(' ? ')' : ']', () => items.push(this.value()));
      return c === '(' ? new Tuple(items) : items;
    }
    if (c === "'" || c === '"') {
      const end = this.s.indexOf(c, this.i + 1);
      if (end < 0) this.error('unterminated string');
      const str = this.s.slice(this.i + 1, end);
      this.i = end + 1;
      return str;
    }
    const word = /^(?:-?\d+L?|True|False|None)/.exec(this.s.slice(this.i))?.[0];
    if (!word) this.error(c === undefined ? 'unexpected end' : `unexpected ${JSON.stringify(c)}`);
    this.i += word.length;
    if (word === 'True' || word === 'False') return word === 'True';
    if (word === 'None') return null;
    const n = Number(word.replace('L', ''));
    if (!Number.isSafeInteger(n)) this.error(`integer ${word} is too large`);
    return n;
  }

  /** Comma-separated items up to `close`; a trailing comma is allowed. */
  private seq(close: string, item: () => void): void {
    this.i++;
    for (;;) {
      this.skip();
      if (this.s[this.i] === close) break;
      item();
      this.skip();
      if (this.s[this.i] === ',') this.i++;
      else if (this.s[this.i] !== close) this.error(`expected ',' or '${close}'`);
    }
    this.i++;
  }

  private expect(c: string): void {
    this.skip();
    if (this.s[this.i] !== c) this.error(`expected '${c}'`);
    this.i++;
  }

  private skip(): void {
    while (this.i < this.s.length && /\s/.test(this.s[this.i])) this.i++;
  }

  private error(message: string): never {
    throw new SyntaxError(`${message} at character ${this.i}`);
  }
}

// ---- io ----

function readFully(path: string, fd: number, dst: Uint8Array, position: number): void {
  const chunk = 1 << 30;
  for (let off = 0; off < dst.length; ) {
    const n = fs.readSync(fd, dst, off, Math.min(chunk, dst.length - off), position + off);
    if (n === 0) fail(`${path}: unexpected end of file at byte ${position + off}`);
    off += n;
  }
}

function writeFully(fd: number, src: Uint8Array): void {
  const chunk = 1 << 30;
  for (let off = 0; off < src.length; ) off += fs.writeSync(fd, src, off, Math.min(chunk, src.length - off));
}
