// Reads JSON files written by Python tools. Python's json module writes infinity and NaN as bare
// `Infinity`, `-Infinity` and `NaN`, which JSON.parse refuses; transformers 5 writes
// {"__float__": "Infinity"} instead. Both come back as numbers here.

import { existsSync, readFileSync } from 'node:fs';
import { fail } from '../core/errors.ts';

const bareNumbers: Record<string, string> = {
  Infinity: '{"__float__":"Infinity"}',
  '-Infinity': '{"__float__":"-Infinity"}',
  NaN: '{"__float__":"NaN"}',
};

/** Replaces bare Infinity / -Infinity / NaN outside strings with transformers' __float__ form. */
function quoteBareFloats(text: string): string {
  return text.replace(/"(?:[^"\\]|\\.)*"|-?Infinity|NaN/g, (token) => bareNumbers[token] ?? token);
}

function reviveFloats(_key: string, value: unknown): unknown {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const keys = Object.keys(value);
    const special = (value as Record<string, unknown>).__float__;
    if (keys.length === 1 && typeof special === 'string') return Number(special);
  }
  return value;
}

/** Parses a JSON file, naming the file in any error. */
export function readJsonFile(path: string): unknown {
  if (!existsSync(path)) fail(`${path}: file not found`);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    return fail(`${path}: cannot read (${(error as Error).message})`);
  }
  try {
    return JSON.parse(quoteBareFloats(text), reviveFloats);
  } catch (error) {
    return fail(`${path}: invalid JSON (${(error as Error).message})`);
  }
}
