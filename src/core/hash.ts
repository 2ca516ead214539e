// Checksums for integrity and identity: CRC-32 (IEEE, as zlib) for snapshot files, and a 64-bit
// FNV-1a digest (hex) that names a model by its config and weights. Plain TypeScript so that it
// runs in browsers too; neither is meant to resist deliberate forgery.

const crcTable = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** Incremental 64-bit FNV-1a over bytes (two 32-bit halves carried in doubles). */
export class Fnv64 {
  private hi = 0xcbf29ce4;
  private lo = 0x84222325;

  update(bytes: Uint8Array): this {
    for (let i = 0; i < bytes.length; i++) {
      this.lo = (this.lo ^ bytes[i]) >>> 0;
      // multiply (hi, lo) by the FNV prime 0x00000100_000001b3 modulo 2^64
      const lo = this.lo * 0x1b3;
      const carry = Math.floor(lo / 0x100000000);
      this.hi = (this.hi * 0x1b3 + this.lo * 0x100 + carry) % 0x100000000;
      this.lo = lo % 0x100000000;
    }
    return this;
  }

  updateText(text: string): this {
    return this.update(new TextEncoder().encode(text));
  }

  hex(): string {
    return this.hi.toString(16).padStart(8, '0') + this.lo.toString(16).padStart(8, '0');
  }
}
