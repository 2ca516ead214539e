// Test helpers for the command line: run `mamba-ts` (src/cli/bin.ts through tsx) in a child
// process, a few at a time, and collect its exit status and output; copy fixture model folders into
// a temporary directory and break them (config.json, safetensors header, tensor list); check that a
// failure is the one-line error the CLI promises, for a table of cases.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.ts';
import { fixture } from './fixtures.ts';

export const repoRoot = path.resolve(import.meta.dirname, '../..');

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

// Child processes mostly wait on their own start-up (loading tsx and the sources), so a few more
// than the cores keeps the machine busy without thrashing.
const maxRunning = Math.max(2, os.availableParallelism() + 1);
let running = 0;
const waiting: Array<() => void> = [];

async function slot<T>(work: () => Promise<T>): Promise<T> {
  if (running >= maxRunning) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  try {
    return await work();
  } finally {
    running--;
    waiting.shift()?.();
  }
}

/**
 * Runs `mamba-ts ...args` from the repository root (MAMBA_TS_DEBUG unset), with `input` on stdin
 * when given. Commands may be started
 * long before a test awaits them (it rejects only when the process cannot start; that rejection is
 * marked handled here and surfaces where the result is awaited).
 */
export function cli(args: string[], input?: string): Promise<CliResult> {
  const env = { ...process.env };
  delete env.MAMBA_TS_DEBUG;
  const result = slot(
    () =>
      new Promise<CliResult>((resolve, reject) => {
        const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/bin.ts', ...args], {
          cwd: repoRoot,
          env,
          stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
        });
        child.stdin?.end(input);
        let stdout = '';
        let stderr = '';
        child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
        child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
        child.on('error', reject);
        child.on('close', (status) => resolve({ status, stdout, stderr }));
      }),
  );
  result.catch(() => {});
  return result;
}

/** Asserts a successful run and returns its stdout. */
export function assertOk(result: CliResult): string {
  assert.equal(result.status, 0, `exit ${result.status}, stderr: ${result.stderr}`);
  assert.equal(result.stderr, '');
  return result.stdout;
}

/**
 * Asserts the CLI's failure contract: exit `status`, nothing on stdout, and stderr exactly one line
 * `mamba-ts: error: ...` without a stack trace, matching `expected`.
 */
export function assertOneLineError(result: CliResult, expected: RegExp, status = 1): void {
  const shown = `stderr: ${JSON.stringify(result.stderr)}`;
  assert.equal(result.status, status, `exit status; ${shown}`);
  assert.equal(result.stdout, '', `stdout should be empty; ${shown}`);
  assert.ok(result.stderr.endsWith('\n'), `stderr should end with a newline; ${shown}`);
  const lines = result.stderr.slice(0, -1).split('\n');
  assert.equal(lines.length, 1, `stderr should be one line; ${shown}`);
  assert.match(lines[0], /^mamba-ts: error: \S/);
  assert.doesNotMatch(result.stderr, / {4}at /, 'no stack trace');
  assert.match(lines[0], expected);
}

/** `s` with every regular-expression metacharacter escaped (for file names in patterns). */
export function re(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A fresh temporary directory, removed when the process exits. */
export function tmpRoot(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `mamba-ts-${prefix}-`));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

let folders = 0;

/** Copies the model files (config.json, model.safetensors) of fixture `name` into a new folder under `root`. */
export function copyModel(root: string, name: string): string {
  const dir = path.join(root, `${folders++}-${name}`);
  fs.mkdirSync(dir);
  for (const file of ['config.json', 'model.safetensors']) {
    fs.copyFileSync(fixture('hf', name, file), path.join(dir, file));
  }
  return dir;
}

/** Edits the parsed config.json in `dir` in place. */
export function editConfig(dir: string, edit: (json: Record<string, unknown>) => void): void {
  const file = path.join(dir, 'config.json');
  const json = JSON.parse(fs.readFileSync(file, 'utf8'));
  edit(json);
  fs.writeFileSync(file, JSON.stringify(json, null, 2));
}

export type SafetensorsHeader = Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>;

/** Rewrites the header of safetensors `file` (parsed, then written back by `edit` as an object or as raw text). */
function rewriteHeader(
  file: string,
  edit: (header: SafetensorsHeader, dataBytes: number) => string | null,
): void {
  const bytes = fs.readFileSync(file);
  const length = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + length).toString('utf8'));
  const data = bytes.subarray(8 + length);
  const text = Buffer.from(edit(header, data.length) ?? JSON.stringify(header));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(text.length));
  fs.writeFileSync(file, Buffer.concat([prefix, text, data]));
}

/** Edits the parsed header of `dir`/model.safetensors in place; the data section stays as it is. */
export function editHeader(dir: string, edit: (header: SafetensorsHeader, dataBytes: number) => void): void {
  rewriteHeader(path.join(dir, 'model.safetensors'), (header, dataBytes) => {
    edit(header, dataBytes);
    return null;
  });
}

/** Replaces the header of `dir`/model.safetensors by the text `edit` makes of its JSON. */
export function editHeaderText(dir: string, edit: (text: string) => string): void {
  rewriteHeader(path.join(dir, 'model.safetensors'), (header) => edit(JSON.stringify(header)));
}

export type Tensors = Array<{ name: string; shape: number[]; data: Float32Array }>;

/** Rewrites `dir`/model.safetensors with writeSafetensors, holding the tensors `edit` returns. */
export function editTensors(dir: string, edit: (tensors: Tensors) => Tensors): void {
  const file = path.join(dir, 'model.safetensors');
  const source = SafetensorsFile.open(file);
  const tensors = [...source.tensors.values()].map(({ name, shape }) => ({
    name,
    shape,
    data: source.read(name),
  }));
  source.close();
  writeSafetensors(file, edit(tensors), { format: 'pt' });
}

/** One bad-input case: `make` builds its files and returns the command line and the expected message. */
export interface ErrorCase {
  name: string;
  make: () => { args: string[]; error: string };
  /** Expected exit status; 1 unless given. */
  status?: number;
}

/**
 * Registers one test per case, in one suite per group. Every command starts at once (they run a few
 * at a time, see `cli`); each test checks its result with assertOneLineError against
 * `^mamba-ts: error: <error>`.
 */
export function errorTests(groups: Record<string, ErrorCase[]>): void {
  for (const [group, cases] of Object.entries(groups)) {
    const runs = cases.map(({ name, make, status = 1 }) => {
      const { args, error } = make();
      const result = cli(args);
      return { name, status, expected: new RegExp(`^mamba-ts: error: ${error}`), result };
    });
    describe(group, { concurrency: true }, () => {
      for (const { name, status, expected, result } of runs) {
        test(name, async () => assertOneLineError(await result, expected, status));
      }
    });
  }
}
