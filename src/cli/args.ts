// Shared pieces of the commands: strict option parsing (unknown options and missing values are
// errors naming the option), typed option readers, and the backend choice.

import { parseArgs } from 'node:util';
import type { Backend } from '../backends/backend.ts';
import { CpuBackend } from '../backends/cpu/cpuBackend.ts';
import { WebGpuBackend } from '../backends/webgpu/webgpuBackend.ts';
import { fail, MambaError } from '../core/errors.ts';

export type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;
export type Values = Record<string, string | boolean | string[] | undefined>;

/** Parses `argv` against `options`; every problem is a MambaError naming the command and option. */
export function parse(command: string, argv: string[], options: OptionSpec): Values {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as Values;
  } catch (error) {
    // parseArgs puts its hint on further lines (e.g. "use '--max-new-tokens=-XYZ'"): keep them, on one line.
    throw new MambaError(`${command}: ${(error as Error).message.replace(/\s*\n\s*/g, ' ')}`);
  }
}

export function requireString(command: string, values: Values, name: string): string {
  const value = values[name];
  if (typeof value !== 'string' || value === '') fail(`${command}: --${name} is required`);
  return value;
}

/** An integer option within [min, max], or `fallback` when absent. */
export function intOption(command: string, values: Values, name: string, fallback: number, min = 0): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!/^-?\d+$/.test(String(raw)) || value < min) {
    fail(`${command}: --${name} must be an integer >= ${min}, got "${raw}"`);
  }
  return value;
}

export async function makeBackend(command: string, name: Values[string]): Promise<Backend> {
  if (name === undefined || name === 'cpu') return new CpuBackend();
  if (name === 'webgpu') return WebGpuBackend.create();
  return fail(`${command}: unknown backend "${name}" (available: cpu, webgpu)`);
}
