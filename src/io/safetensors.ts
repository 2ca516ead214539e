// Safetensors files, written against the format: an 8-byte little-endian header length N, N bytes of
// JSON header ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}), then the
// data section that data_offsets index into. SafetensorsFile.open reads and validates only the header;
// read() pulls one tensor with positioned reads in chunks (files can be many GB) and converts F32, F16
// and BF16 to float32. writeSafetensors writes F32/F16/BF16 atomically. Checkpoint opens a Hugging Face
// model directory: one model.safetensors or shards listed by model.safetensors.index.json.
// Leaves out: reading integer, bool, F64 and F8 tensors (the header may list them; read() refuses them),
// memory mapping, and big-endian hosts. Holes between tensors are accepted (the spec forbids them, but
// they are harmless); overlapping tensors are rejected.

import fs from 'node:fs';
import path from 'node:path';
import { fail, MambaError } from '../core/errors.ts';

/** Bytes per element of every standard safetensors dtype. */
export const DTYPE_BYTES: Readonly<Record<string, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

/** Default size of one positioned read (and of one write). */
export const CHUNK_BYTES = 64 * 1024 * 1024;
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** One tensor as the header lists it; `begin` and `end` are absolute byte offsets in the file. */
export type TensorInfo = { name: string; dtype: string; shape: number[]; begin: number; end: number };

export type WriteDtype = 'F32' | 'F16' | 'BF16';

export class SafetensorsFile {
  private fd: number | null;

  private constructor(
    readonly path: string,
    fd: number,
    readonly metadata: Record<string, string>,
    readonly tensors: Map<string, TensorInfo>,
    private readonly chunkBytes: number,
  ) {
    this.fd = fd;
  }

  /** Opens `file` and validates its whole header; no tensor data is read. */
  static open(file: string, options: { chunkBytes?: number } = {}): SafetensorsFile {
    const fd = openFile(file, 'r');
    try {
      const { metadata, tensors } = readHeader(file, fd, fs.fstatSync(fd).size);
      return new SafetensorsFile(file, fd, metadata, tensors, options.chunkBytes ?? CHUNK_BYTES);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  /** Reads tensor `name` as float32 into `alloc(length)` (a new Float32Array by default). */
  read(name: string, alloc: (length: number) => Float32Array = (n) => new Float32Array(n)): Float32Array {
    const info = this.tensors.get(name) ?? fail(`${this.path}: no tensor "${name}"`);
    const fd = this.fd ?? fail(`${this.path}: read of tensor "${name}" after close()`);
    const { dtype, begin, end } = info;
    if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16') {
      fail(
        `${this.path}: tensor "${name}" has dtype ${dtype}; only F32, F16 and BF16 can be read as float32`,
      );
    }
    const length = (end - begin) / DTYPE_BYTES[dtype];
    let out: Float32Array;
    try {
      out = alloc(length);
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      fail(`${this.path}: tensor "${name}" (${length} values) is too large for one Float32Array`);
    }
    if (out.length !== length) {
      fail(`${this.path}: alloc(${length}) for tensor "${name}" returned ${out.length} values`);
    }
    const chunk = Math.max(2, this.chunkBytes - (this.chunkBytes % 4));
    if (dtype === 'F32') {
      const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
      for (let off = 0; off < bytes.length; off += chunk) {
        readFully(this.path, fd, bytes.subarray(off, off + chunk), begin + off);
      }
      return out;
    }
    const buf = new Uint8Array(Math.min(chunk, end - begin));
    const halves = new Uint16Array(buf.buffer);
    const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
    const table = dtype === 'F16' ? f16Table() : null;
    for (let off = 0; off < end - begin; off += buf.length) {
      const n = Math.min(buf.length, end - begin - off);
      readFully(this.path, fd, buf.subarray(0, n), begin + off);
      const at = off / 2;
      if (table) for (let i = 0; i < n / 2; i++) out[at + i] = table[halves[i]];
      else for (let i = 0; i < n / 2; i++) bits[at + i] = halves[i] << 16;
    }
    return out;
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

function readHeader(file: string, fd: number, size: number) {
  if (size < 8) fail(`${file}: file is ${size} bytes, shorter than the 8-byte header length`);
  const lengthBytes = Buffer.alloc(8);
  readFully(file, fd, lengthBytes, 0);
  const n = lengthBytes.readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    fail(`${file}: header length ${n} is over the 100 MB limit (is this a safetensors file?)`);
  }
  if (8n + n > BigInt(size))
    fail(`${file}: header length ${n} runs past the end of the file (${size} bytes)`);
  const headerBytes = Buffer.alloc(Number(n));
  readFully(file, fd, headerBytes, 8);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (e) {
    fail(`${file}: header is not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(header)) fail(`${file}: header is not a JSON object`);
  const dataStart = 8 + Number(n);
  let metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  for (const [name, entry] of Object.entries(header)) {
    if (name !== '__metadata__')
      tensors.set(name, checkEntry(file, name, entry, dataStart, size - dataStart));
    else if (isObject(entry) && Object.values(entry).every((v) => typeof v === 'string')) {
      metadata = entry as Record<string, string>;
    } else fail(`${file}: __metadata__ must map strings to strings`);
  }
  const sorted = [...tensors.values()].filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    const [a, b] = [sorted[i - 1], sorted[i]];
    if (b.begin < a.end) {
      const span = (t: TensorInfo) => `[${t.begin - dataStart}, ${t.end - dataStart})`;
      fail(`${file}: tensors "${a.name}" ${span(a)} and "${b.name}" ${span(b)} overlap`);
    }
  }
  return { metadata, tensors };
}

function checkEntry(file: string, name: string, entry: unknown, dataStart: number, dataBytes: number) {
  const where = `${file}: tensor "${name}"`;
  if (!isObject(entry)) fail(`${where} is not an object`);
  for (const key of ['dtype', 'shape', 'data_offsets']) if (!(key in entry)) fail(`${where} has no "${key}"`);
  const { dtype, shape, data_offsets: offsets } = entry;
  if (typeof dtype !== 'string') fail(`${where}: dtype must be a string, got ${JSON.stringify(dtype)}`);
  if (!Object.hasOwn(DTYPE_BYTES, dtype)) {
    fail(`${where} has unknown dtype "${dtype}" (known: ${Object.keys(DTYPE_BYTES).join(', ')})`);
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    fail(`${where}: shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]) {
    fail(
      `${where}: data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offsets)}`,
    );
  }
  const [begin, end] = offsets as number[];
  if (end > dataBytes) {
    fail(
      `${where} data offsets [${begin}, ${end}) run past the end of the data section (${dataBytes} bytes)`,
    );
  }
  const bytes = shape.reduce((p: number, d: number) => p * d, DTYPE_BYTES[dtype]);
  if (bytes !== end - begin) {
    fail(
      `${where} data offsets [${begin}, ${end}) do not match its shape [${shape.join(', ')}] of ${dtype} (${bytes} bytes)`,
    );
  }
  return { name, dtype, shape: shape as number[], begin: dataStart + begin, end: dataStart + end };
}

/**
 * Writes `tensors` (in the order given) to `file` as `dtype`, rounding to nearest even for F16/BF16.
 * The header is padded with spaces to a multiple of 8 bytes; the file is written to `file.tmp`,
 * fsynced and renamed, so a reader never sees half a file.
 */
export function writeSafetensors(
  file: string,
  tensors: Array<{ name: string; shape: number[]; data: Float32Array }>,
  metadata?: Record<string, string>,
  dtype: WriteDtype = 'F32',
): void {
  const size = DTYPE_BYTES[dtype];
  const entries: Array<[string, unknown]> = metadata ? [['__metadata__', metadata]] : [];
  const names = new Set<string>(['__metadata__']);
  let offset = 0;
  for (const { name, shape, data } of tensors) {
    if (names.has(name)) fail(`${file}: tensor name "${name}" is repeated or reserved`);
    names.add(name);
    if (!shape.every(isCount) || shape.reduce((p, d) => p * d, 1) !== data.length) {
      fail(
        `${file}: tensor "${name}" has ${data.length} values, which does not fit shape [${shape.join(', ')}]`,
      );
    }
    entries.push([name, { dtype, shape, data_offsets: [offset, offset + data.length * size] }]);
    offset += data.length * size;
  }
  let json = JSON.stringify(Object.fromEntries(entries));
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const header = Buffer.from(json);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(header.length));

  const tmp = `${file}.tmp`;
  const fd = openFile(tmp, 'w');
  try {
    writeFully(fd, length);
    writeFully(fd, header);
    const chunk = CHUNK_BYTES / size;
    const longest = Math.max(0, ...tensors.map((t) => t.data.length));
    const halves = new Uint16Array(dtype === 'F32' ? 0 : Math.min(chunk, longest));
    const encode = dtype === 'BF16' ? f32ToBf16 : f32ToF16;
    for (const { data } of tensors) {
      for (let i = 0; i < data.length; i += chunk) {
        const src = data.subarray(i, i + chunk);
        if (dtype === 'F32') writeFully(fd, new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
        else {
          for (let j = 0; j < src.length; j++) halves[j] = encode(src[j]);
          writeFully(fd, new Uint8Array(halves.buffer, 0, src.length * 2));
        }
      }
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tmp, file);
  } catch (e) {
    try {
      fs.closeSync(fd);
    } catch {}
    fs.rmSync(tmp, { force: true });
    if (e instanceof MambaError) throw e;
    fail(`${file}: write failed (${(e as Error).message})`);
  }
}

const INDEX = 'model.safetensors.index.json';

/** The weights of one Hugging Face model directory, single file or sharded. */
export class Checkpoint {
  private constructor(
    readonly dir: string,
    private readonly files: SafetensorsFile[],
    private readonly where: Map<string, SafetensorsFile>,
  ) {}

  static open(dir: string): Checkpoint {
    if (!fs.existsSync(dir)) fail(`${dir}: directory not found`);
    if (!fs.statSync(dir).isDirectory()) fail(`${dir}: not a directory`);
    const indexPath = path.join(dir, INDEX);
    if (fs.existsSync(indexPath)) return Checkpoint.openSharded(dir, indexPath);
    const single = path.join(dir, 'model.safetensors');
    if (fs.existsSync(single)) {
      const f = SafetensorsFile.open(single);
      return new Checkpoint(dir, [f], new Map([...f.tensors.keys()].map((name) => [name, f])));
    }
    const pickles = fs.readdirSync(dir).filter((f) => /\.(bin|pt|pth)$/.test(f));
    const pickle = pickles.includes('pytorch_model.bin') ? 'pytorch_model.bin' : pickles.sort()[0];
    if (pickle) {
      fail(
        `${dir}: ${pickle} is a PyTorch pickle, which mamba-ts does not load (pickles can run code); ` +
          `convert it to safetensors (e.g. with the safetensors library's convert script)`,
      );
    }
    fail(`${dir}: no model.safetensors or ${INDEX} found`);
  }

  private static openSharded(dir: string, indexPath: string): Checkpoint {
    let index: unknown;
    try {
      index = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
    } catch (e) {
      fail(`${indexPath}: cannot read it as JSON (${(e as Error).message})`);
    }
    const map = isObject(index) ? index.weight_map : undefined;
    if (!isObject(map) || !Object.values(map).every((v) => typeof v === 'string')) {
      fail(`${indexPath}: "weight_map" must map tensor names to shard file names`);
    }
    const shards = new Map<string, SafetensorsFile>();
    try {
      const where = new Map<string, SafetensorsFile>();
      for (const [name, shard] of Object.entries(map as Record<string, string>)) {
        let f = shards.get(shard);
        if (!f) {
          if (path.isAbsolute(shard) || shard.split(/[\\/]/).includes('..')) {
            fail(`${indexPath}: shard "${shard}" is not a file inside ${dir}`);
          }
          const shardPath = path.join(dir, shard);
          if (!fs.existsSync(shardPath))
            fail(`${indexPath}: shard "${shard}" (for tensor "${name}") not found`);
          f = SafetensorsFile.open(shardPath);
          shards.set(shard, f);
        }
        if (!f.tensors.has(name)) {
          fail(`${indexPath}: tensor "${name}" is mapped to shard "${shard}", which does not contain it`);
        }
        where.set(name, f);
      }
      return new Checkpoint(dir, [...shards.values()], where);
    } catch (e) {
      for (const f of shards.values()) f.close();
      throw e;
    }
  }

  names(): string[] {
    return [...this.where.keys()];
  }

  has(name: string): boolean {
    return this.where.has(name);
  }

  /** The header entry of `name` (absolute offsets) and the path of the file holding it. */
  info(name: string): TensorInfo & { file: string } {
    const f = this.fileOf(name);
    return { ...f.tensors.get(name)!, file: f.path };
  }

  read(name: string, alloc?: (length: number) => Float32Array): Float32Array {
    return this.fileOf(name).read(name, alloc);
  }

  close(): void {
    for (const f of this.files) f.close();
  }

  private fileOf(name: string): SafetensorsFile {
    return this.where.get(name) ?? fail(`${this.dir}: missing tensor "${name}"`);
  }
}

// ---- conversions ----

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
let f16Values: Float32Array | null = null;

/** All 65536 half-precision values as float32 (subnormals, ±inf and NaN included). */
function f16Table(): Float32Array {
  if (f16Values) return f16Values;
  f16Values = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) f16Values[h] = sign * mant * 2 ** -24;
    else if (exp === 31) f16Values[h] = mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
    else f16Values[h] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return f16Values;
}

/** float32 → IEEE half bits, round to nearest even; overflow gives ±inf, NaN stays NaN. */
export function f32ToF16(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 112; // rebias 127 → 15
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    const rest = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    let h = m >>> shift;
    if (rest > half || (rest === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++; // a carry into the exponent is still right
  return sign | h;
}

/** float32 → bfloat16 bits (the top half), round to nearest even; NaN stays NaN. */
export function f32ToBf16(value: number): number {
  f32[0] = value;
  const x = u32[0];
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return (x >>> 16) | 0x40;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

// ---- helpers ----

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}

function openFile(file: string, flags: 'r' | 'w'): number {
  try {
    return fs.openSync(file, flags);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    fail(`${file}: cannot open (${err.code === 'ENOENT' ? 'file not found' : err.message})`);
  }
}

function readFully(file: string, fd: number, dst: Uint8Array, position: number): void {
  for (let off = 0; off < dst.length; ) {
    const n = fs.readSync(fd, dst, off, dst.length - off, position + off);
    if (n === 0) fail(`${file}: unexpected end of file at byte ${position + off} (did it change?)`);
    off += n;
  }
}

function writeFully(fd: number, src: Uint8Array): void {
  for (let off = 0; off < src.length; ) off += fs.writeSync(fd, src, off, src.length - off);
}
