// Test helper: where the reference fixtures live (../shared/fixtures beside the checkout, or
// MAMBA_TS_FIXTURES).

import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

const candidates = [
  process.env.MAMBA_TS_FIXTURES,
  resolve(import.meta.dirname, '../../../shared/fixtures'),
  resolve(import.meta.dirname, '../../shared/fixtures'),
].filter((p): p is string => p !== undefined);

/** The fixtures folder; tests fail loudly (not skip) when it is missing. */
export const fixturesDir: string = candidates.find((p) => existsSync(p)) ?? candidates[0];

export function fixture(...parts: string[]): string {
  return join(fixturesDir, ...parts);
}
