// `mamba-ts bench --backend webgpu --quick` through the command line (tiny shapes, seconds on
// lavapipe): one table with every row of both families, and JSON with the device, the date and
// finite numbers. Skipped, loudly, only where no WebGPU adapter exists (never under CI).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { webgpuBackend } from '../helpers/backends.ts';
import { cli, tmpRoot } from '../helpers/cli.ts';

const adapter = await webgpuBackend();
const skip = typeof adapter === 'string' ? adapter : false;

test('bench --backend webgpu --quick prints every row and writes JSON', {
  skip,
  timeout: 120_000,
}, async () => {
  const json = path.join(tmpRoot('bench-webgpu'), 'webgpu.json');
  const result = await cli(['bench', '--backend', 'webgpu', '--quick', '--peak-gbps', '100', '--json', json]);
  assert.equal(result.status, 0, `exit ${result.status}, stderr: ${result.stderr}`);
  // Dawn may print its own warnings (e.g. limits it reduced on lavapipe), never an error of ours.
  for (const line of result.stderr.split('\n').filter(Boolean)) assert.match(line, /^Warning: /);
  const lines = result.stdout.trimEnd().split('\n');
  assert.match(lines[0], /^WebGPU bench \(quick: tiny shapes\): .+; peak 100 GB\/s$/);
  assert.match(lines[1], /^family +what +shape +ms +tok\/s +GB\/s +% peak +note$/);
  const expected = [
    /^mamba +prefill +b1 x 8 /,
    /^mamba +prefill +b2 x 8 /,
    /^mamba +prefill +b1 x 32 /,
    /^mamba +decode \(logits back\) +b1 +[\d.]+ +\d+ +\d+ dispatches, record [\d.]+ ms$/,
    /^mamba +decode greedy \(ids back\) +b1 +[\d.]+ +\d+ +\d+ dispatches, record [\d.]+ ms$/,
    /^mamba +decode \(logits back\) +b3 +[\d.]+ +\d+ +\d+ dispatches, record [\d.]+ ms$/,
    /^mamba +decode greedy \(ids back\) +b3 +[\d.]+ +\d+ +\d+ dispatches, record [\d.]+ ms$/,
    /^mamba +selective scan \(1 layer\) +b2 x 16, d32 n16 +[\d.]+ +\d+ +[\d.]+ +[\d.]+$/,
    /^mamba2 +prefill +b1 x 8 /,
    /^mamba2 +prefill +b2 x 8 /,
    /^mamba2 +prefill +b1 x 32 /,
    /^mamba2 +decode \(logits back\) +b1 +[\d.]+ +\d+ +\d+ dispatches, record [\d.]+ ms$/,
    /^mamba2 +decode greedy \(ids back\) +b1 +[\d.]+ +\d+ +\d+ dispatches, record [\d.]+ ms$/,
    /^mamba2 +decode \(logits back\) +b3 +[\d.]+ +\d+ +\d+ dispatches, record [\d.]+ ms$/,
    /^mamba2 +decode greedy \(ids back\) +b3 +[\d.]+ +\d+ +\d+ dispatches, record [\d.]+ ms$/,
    /^mamba2 +ssd \(1 layer\) +b1 x 48, 4x16 n32 q16 +[\d.]+ +\d+ +[\d.]+ +[\d.]+ +(GPU [\d.]+ ms: ssd\w+ [\d.]+(, ssd\w+ [\d.]+){4}|no timestamp queries)$/,
  ];
  const rows = lines.slice(2, -1);
  assert.equal(rows.length, expected.length, result.stdout);
  for (const [i, pattern] of expected.entries()) assert.match(rows[i], pattern);
  assert.equal(lines.at(-1), `wrote ${json}`);

  const out = JSON.parse(fs.readFileSync(json, 'utf8'));
  assert.equal(typeof out.device, 'string');
  assert.ok(out.device.length > 0);
  assert.ok(Number.isFinite(Date.parse(out.date)), `date ${out.date}`);
  assert.equal(out.backend, 'webgpu');
  assert.equal(out.peakGbps, 100);
  assert.equal(out.rows.length, expected.length);
  for (const row of out.rows) {
    for (const key of ['tokens', 'ms', 'tokensPerSecond']) {
      assert.ok(Number.isFinite(row[key]) && row[key] > 0, `${row.family} ${row.what} ${key}: ${row[key]}`);
    }
  }
  const kernels = out.rows.filter((row: { what: string }) => row.what.includes('(1 layer)'));
  assert.deepEqual(
    kernels.map((row: { what: string }) => row.what),
    ['selective scan (1 layer)', 'ssd (1 layer)'],
  );
  for (const row of kernels) {
    for (const key of ['bytes', 'gbps', 'fractionOfPeak']) {
      assert.ok(Number.isFinite(row[key]) && row[key] > 0, `${row.what} ${key}: ${row[key]}`);
    }
    assert.ok(Math.abs(row.fractionOfPeak - row.gbps / 100) < 1e-12);
  }
});
