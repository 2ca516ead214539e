// State snapshots: a generation's recurrent state, serialised to bytes and back. Only a recurrent
// model can offer this: the whole past of a sequence is its fixed-size state, so a conversation can
// be saved, moved to another process, forked into several continuations, or a long shared prompt
// read once and reused. A snapshot also carries each sequence's token history, the tokens not yet
// read by the state (the last sampled one) and the sampler's generator position, so that continuing
// from it equals never having stopped.
//
// Layout (little-endian): "MAMBATS\0" · u32 version · u32 header bytes · header JSON (UTF-8) ·
// zero padding to a multiple of 4 · float32 state (per layer: conv then ssm) · u32 CRC-32 of all
// bytes before it. The header names the model (its fingerprint), so a snapshot of another model is
// refused, and the CRC refuses a corrupted one.

import { fail } from '../core/errors.ts';
import { crc32 } from '../core/hash.ts';
import type { HostState } from '../models/state.ts';

const MAGIC = 'MAMBATS\0';
const VERSION = 1;

export interface SnapshotRow {
  ids: number[]; // every token of the sequence so far, prompt included
  pending: number[]; // tokens sampled but not yet read by the state
  rng: number[] | null; // the sampler's generator state, when sampling
}

export interface Snapshot {
  model: string; // fingerprint of the model that produced it
  rows: SnapshotRow[];
  state: HostState;
}

interface Header {
  model: string;
  rows: SnapshotRow[];
  layers: Array<{ conv: number; ssm: number }>; // float counts
}

export function encodeSnapshot(s: Snapshot): Uint8Array {
  const header: Header = {
    model: s.model,
    rows: s.rows,
    layers: s.state.layers.map((l) => ({ conv: l.conv.length, ssm: l.ssm.length })),
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const dataStart = align4(16 + json.length);
  const floats = header.layers.reduce((sum, l) => sum + l.conv + l.ssm, 0);
  const bytes = new Uint8Array(dataStart + 4 * floats + 4);
  const view = new DataView(bytes.buffer);
  bytes.set(new TextEncoder().encode(MAGIC), 0);
  view.setUint32(8, VERSION, true);
  view.setUint32(12, json.length, true);
  bytes.set(json, 16);
  const data = new Float32Array(bytes.buffer, dataStart, floats);
  let at = 0;
  for (const layer of s.state.layers) {
    data.set(layer.conv, at);
    data.set(layer.ssm, at + layer.conv.length);
    at += layer.conv.length + layer.ssm.length;
  }
  view.setUint32(bytes.length - 4, crc32(bytes.subarray(0, bytes.length - 4)), true);
  return bytes;
}

/** Parses a snapshot; `source` (a file name) is named in every error. */
export function decodeSnapshot(bytes: Uint8Array, source: string): Snapshot {
  const bad = (why: string): never => fail(`${source}: not a valid mamba-ts state snapshot (${why})`);
  if (bytes.length < 20 || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) bad('wrong magic bytes');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(8, true) !== VERSION) bad(`unsupported version ${view.getUint32(8, true)}`);
  if (crc32(bytes.subarray(0, bytes.length - 4)) !== view.getUint32(bytes.length - 4, true)) {
    bad('checksum mismatch: the file is corrupted or truncated');
  }
  const headerLength = view.getUint32(12, true);
  if (16 + headerLength > bytes.length - 4) bad('header runs past the end');
  let header: Header;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(16, 16 + headerLength)));
  } catch {
    return bad('header is not valid JSON');
  }
  const dataStart = align4(16 + headerLength);
  const floats = header.layers.reduce((sum, l) => sum + l.conv + l.ssm, 0);
  if (dataStart + 4 * floats + 4 !== bytes.length) bad('state size does not match the header');
  // Copied out: a Node Buffer's slice() is a view on its whole (possibly pooled) ArrayBuffer.
  const data = new Float32Array(floats);
  new Uint8Array(data.buffer).set(bytes.subarray(dataStart, dataStart + 4 * floats));
  let at = 0;
  const layers = header.layers.map((l) => {
    const conv = data.subarray(at, at + l.conv);
    const ssm = data.subarray(at + l.conv, at + l.conv + l.ssm);
    at += l.conv + l.ssm;
    return { conv, ssm };
  });
  return { model: header.model, rows: header.rows, state: { batch: header.rows.length, layers } };
}

function align4(n: number): number {
  return (n + 3) & ~3;
}
