// Tests for src/io/hub.ts: local folders, repo ids, a hand-built huggingface_hub cache read without
// network, and downloads from a local HTTP server on 127.0.0.1 that serves the hub's URL layout
// (API, resolve/ with one redirect, a sharded checkpoint, 401/404, a stalled body). No test talks
// to any other address; the server closes when the tests end.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { MambaError } from '../../src/core/errors.ts';
import { type Progress, progressBar, resolveModel } from '../../src/io/hub.ts';
import { writeSafetensors } from '../../src/io/safetensors.ts';
import { fixture } from '../helpers/fixtures.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-hub-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
const newCache = () => fs.mkdtempSync(path.join(tmp, 'cache-'));
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const gitBlobId = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
const fakeSha = (seed: string) => createHash('sha1').update(seed).digest('hex');
const REFUSING = 'http://127.0.0.1:1'; // fetch refuses port 1 outright, so nothing is ever sent

function rejectsWith(promise: Promise<unknown>, re: RegExp): Promise<void> {
  return assert.rejects(
    promise,
    (e: unknown) => e instanceof MambaError && re.test(e.message) && !/\n/.test(e.message),
  );
}

/** Builds the huggingface_hub layout by hand: blobs/<sha256>, snapshots/<sha>/<file> → ../../blobs/… */
function populate(
  cache: string,
  repo: string,
  files: Record<string, Buffer>,
  sha: string,
  ref = 'main',
): string {
  const dir = path.join(cache, `models--${repo.replace('/', '--')}`);
  const snapshot = path.join(dir, 'snapshots', sha);
  fs.mkdirSync(path.join(dir, 'blobs'), { recursive: true });
  fs.mkdirSync(snapshot, { recursive: true });
  fs.mkdirSync(path.join(dir, 'refs'), { recursive: true });
  for (const [name, data] of Object.entries(files)) {
    fs.writeFileSync(path.join(dir, 'blobs', sha256(data)), data);
    fs.symlinkSync(`../../blobs/${sha256(data)}`, path.join(snapshot, name));
  }
  fs.writeFileSync(path.join(dir, 'refs', ref), sha);
  return snapshot;
}

// ---- the local hub ----
type Repo = {
  sha: string;
  files: Map<string, Buffer>;
  apiStatus?: number;
  fileStatus?: number;
  stall?: string;
};
const repos = new Map<string, Repo>();
const requests: Array<{ url: string; auth?: string }> = [];
const REDIRECTED = 'model.safetensors';
let endpoint = '';
const server = http.createServer((req, res) => {
  requests.push({ url: req.url!, auth: req.headers.authorization });
  const { pathname } = new URL(req.url!, 'http://localhost');
  const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(pathname);
  const file = /^\/(cdn\/)?([^/]+\/[^/]+)\/resolve\/([0-9a-f]{40})\/(.+)$/.exec(pathname);
  const repo = repos.get((api ?? file)?.[api ? 1 : 2] ?? '');
  const status = api ? repo?.apiStatus : repo?.fileStatus;
  if (!repo || status) return res.writeHead(status ?? 404).end('{"error":"nope"}');
  if (api) {
    const siblings = [...repo.files].map(([rfilename, data]) =>
      rfilename.endsWith('.safetensors')
        ? { rfilename, lfs: { sha256: sha256(data) } }
        : { rfilename, blobId: gitBlobId(data) },
    );
    return res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ sha: repo.sha, siblings }));
  }
  const name = decodeURIComponent(file![4]);
  const data = file && file[3] === repo.sha ? repo.files.get(name) : undefined;
  if (!data) return res.writeHead(404).end();
  if (name === REDIRECTED && !file![1]) return res.writeHead(302, { location: `/cdn${pathname}` }).end();
  res.writeHead(200, { 'content-length': data.length, 'content-type': 'application/octet-stream' });
  if (name === repo.stall)
    res.write(data.subarray(0, data.length >> 1)); // and never end
  else res.end(data);
});
before(async () => {
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => {
  server.closeAllConnections();
  server.close();
});

const readFixture = (name: string) => fs.readFileSync(fixture('hf', 'gen-mamba2-2k', name));
const fixtureFiles = () =>
  new Map(
    ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'].map((f) => [
      f,
      readFixture(f),
    ]),
  );

test('a local folder is returned as is; a missing local path or an invalid spec is an error', async () => {
  assert.equal(await resolveModel(tmp), tmp);
  const dir = fixture('hf', 'gen-mamba2-2k');
  assert.equal(await resolveModel(dir, { endpoint: REFUSING }), dir);
  await rejectsWith(resolveModel('./no-such-model-here'), /^\.\/no-such-model-here: no such folder$/);
  await rejectsWith(resolveModel(path.join(tmp, 'absent')), /absent: no such folder$/);
  for (const spec of ['gpt2', 'a/b/c', 'a b/c', 'org/na..me', 'org--x/y', '']) {
    await rejectsWith(
      resolveModel(spec, { endpoint: REFUSING }),
      /is neither a folder nor a Hugging Face repo id/,
    );
  }
  await rejectsWith(
    resolveModel('org/x', { revision: '../../x', download: false }),
    /^org\/x: invalid revision/,
  );
});

test('a complete cached snapshot resolves without network, by branch or by commit', async () => {
  const cache = newCache();
  const sha = fakeSha('cached');
  const files = {
    'config.json': readFixture('config.json'),
    'model.safetensors': readFixture('model.safetensors'),
  };
  const snapshot = populate(cache, 'org/cached', files, sha);
  assert.equal(await resolveModel('org/cached', { cacheDir: cache, endpoint: REFUSING }), snapshot);
  assert.equal(
    await resolveModel('org/cached', { cacheDir: cache, endpoint: REFUSING, revision: sha }),
    snapshot,
  );
  // A sharded snapshot missing a shard is not complete.
  const index = Buffer.from(JSON.stringify({ weight_map: { a: 'm-1.safetensors', b: 'm-2.safetensors' } }));
  const partial = {
    'config.json': files['config.json'],
    'model.safetensors.index.json': index,
    'm-1.safetensors': files['model.safetensors'],
  };
  populate(cache, 'org/partial', partial, fakeSha('partial'));
  await rejectsWith(
    resolveModel('org/partial', { cacheDir: cache, download: false }),
    /^org\/partial: not in the local Hugging Face cache \(.*models--org--partial\)$/,
  );
});

test('the cache folder is cacheDir, else $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub', async () => {
  const keys = ['HF_HUB_CACHE', 'HF_HOME', 'XDG_CACHE_HOME'];
  const saved = keys.map((key) => [key, process.env[key]] as const);
  const files = { 'config.json': Buffer.from('{}'), 'model.safetensors': Buffer.from('x') };
  const home = newCache();
  const hubCache = newCache();
  const inHome = populate(path.join(home, 'hub'), 'org/env', files, fakeSha('home'));
  const inHubCache = populate(hubCache, 'org/env', files, fakeSha('hub'));
  try {
    process.env.HF_HOME = home;
    process.env.HF_HUB_CACHE = hubCache;
    assert.equal(await resolveModel('org/env', { download: false }), inHubCache);
    assert.equal(
      await resolveModel('org/env', { download: false, cacheDir: path.join(home, 'hub') }),
      inHome,
    );
    delete process.env.HF_HUB_CACHE;
    assert.equal(await resolveModel('org/env', { download: false }), inHome);
    delete process.env.HF_HOME;
    delete process.env.XDG_CACHE_HOME;
    const fallback = path.join(os.homedir(), '.cache', 'huggingface', 'hub', 'models--org--env-absent-x');
    await rejectsWith(
      resolveModel('org/env-absent-x', { download: false }),
      new RegExp(`\\(${fallback.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\)$`),
    );
  } finally {
    for (const [key, value] of saved) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
});

test('downloads into the huggingface_hub layout, byte for byte, once', async () => {
  const files = fixtureFiles();
  files.set('pytorch_model.bin', Buffer.from('never fetched'));
  files.set('README.md', Buffer.from('# never fetched'));
  const sha = fakeSha('download');
  repos.set('org/mamba', { sha, files });
  const cache = newCache();
  const progress: Progress[] = [];
  const before = requests.length;
  const snapshot = await resolveModel('org/mamba', {
    cacheDir: cache,
    endpoint,
    onProgress: (p) => progress.push(p),
  });
  const repoDir = path.join(cache, 'models--org--mamba');
  assert.equal(snapshot, path.join(repoDir, 'snapshots', sha));
  assert.equal(fs.readFileSync(path.join(repoDir, 'refs', 'main'), 'utf8'), sha);
  const got = fs.readdirSync(snapshot).sort();
  assert.deepEqual(got, ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
  for (const name of got) {
    assert.ok(fs.readFileSync(path.join(snapshot, name)).equals(files.get(name)!), name);
    const data = files.get(name)!;
    const blob = name.endsWith('.safetensors') ? sha256(data) : gitBlobId(data);
    assert.equal(fs.readlinkSync(path.join(snapshot, name)), `../../blobs/${blob}`);
  }
  assert.deepEqual(
    fs.readdirSync(path.join(repoDir, 'blobs')).filter((f) => f.includes('incomplete')),
    [],
  );
  const urls = requests.slice(before).map((r) => r.url);
  assert.ok(urls.includes(`/cdn/org/mamba/resolve/${sha}/model.safetensors`), 'the redirect was followed');
  assert.ok(!urls.some((u) => /pytorch_model|README/.test(u)));
  const last = progress.filter((p) => p.file === 'model.safetensors').at(-1)!;
  const size = files.get('model.safetensors')!.length;
  assert.deepEqual(last, { file: 'model.safetensors', received: size, total: size, done: true });
  assert.ok(progress.filter((p) => p.file === 'model.safetensors').length > 2);
  // Cached now: no request at all.
  const count = requests.length;
  assert.equal(await resolveModel('org/mamba', { cacheDir: cache, endpoint }), snapshot);
  assert.equal(requests.length, count);
});

test('a sharded checkpoint downloads the index and every shard', async () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'shards-'));
  const shard = (name: string, tensors: string[]) => {
    const file = path.join(dir, name);
    writeSafetensors(
      file,
      tensors.map((t, i) => ({ name: t, shape: [2], data: Float32Array.of(i, -i) })),
    );
    return fs.readFileSync(file);
  };
  const names = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  const weightMap = { a: names[0], b: names[0], c: names[1] };
  const files = new Map([
    ['config.json', readFixture('config.json')],
    ['model.safetensors.index.json', Buffer.from(JSON.stringify({ metadata: {}, weight_map: weightMap }))],
    [names[0], shard(names[0], ['a', 'b'])],
    [names[1], shard(names[1], ['c'])],
  ]);
  repos.set('org/sharded', { sha: fakeSha('sharded'), files });
  const cache = newCache();
  const snapshot = await resolveModel('org/sharded', { cacheDir: cache, endpoint });
  for (const [name, data] of files) assert.ok(fs.readFileSync(path.join(snapshot, name)).equals(data), name);
  const count = requests.length;
  assert.equal(await resolveModel('org/sharded', { cacheDir: cache, endpoint: REFUSING }), snapshot);
  assert.equal(requests.length, count);
});

test('HF_TOKEN is sent as a bearer token; 401, 403 and 404 are named', async () => {
  repos.set('org/gated', { sha: fakeSha('gated'), files: fixtureFiles(), apiStatus: 401 });
  repos.set('org/gated-files', { sha: fakeSha('gated-files'), files: fixtureFiles(), fileStatus: 403 });
  const saved = process.env.HF_TOKEN;
  process.env.HF_TOKEN = 'hf_test_token';
  const before = requests.length;
  try {
    for (const repo of ['org/gated', 'org/gated-files']) {
      await rejectsWith(
        resolveModel(repo, { cacheDir: newCache(), endpoint }),
        new RegExp(`^${repo}: access denied \\(gated or private; set HF_TOKEN\\)$`),
      );
    }
  } finally {
    if (saved === undefined) delete process.env.HF_TOKEN;
    else process.env.HF_TOKEN = saved;
  }
  assert.ok(requests.slice(before).every((r) => r.auth === 'Bearer hf_test_token'));
  await rejectsWith(
    resolveModel('org/missing', { cacheDir: newCache(), endpoint }),
    /^org\/missing: not found on http:\/\/127/,
  );
});

test('a refused connection, download: false and a stalled body are named errors', async () => {
  const closed = http.createServer();
  await new Promise<void>((done) => closed.listen(0, '127.0.0.1', done));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((done) => closed.close(done));
  const cache = newCache();
  await rejectsWith(
    resolveModel('org/mamba', { cacheDir: cache, endpoint: `http://127.0.0.1:${port}` }),
    /^org\/mamba: not in the local Hugging Face cache \(.*\) and could not be downloaded from http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)$/,
  );
  await rejectsWith(
    resolveModel('org/mamba', { cacheDir: cache, download: false }),
    /^org\/mamba: not in the local Hugging Face cache \(.*\)$/,
  );

  repos.set('org/stall', { sha: fakeSha('stall'), files: fixtureFiles(), stall: 'model.safetensors' });
  const start = Date.now();
  await rejectsWith(
    resolveModel('org/stall', { cacheDir: cache, endpoint, timeoutMs: 300 }),
    /^org\/stall: not in the local Hugging Face cache .* could not be downloaded from .* \(model\.safetensors: no data for 0\.3 s\)$/,
  );
  assert.ok(Date.now() - start < 2000);
  const repoDir = path.join(cache, 'models--org--stall');
  assert.ok(!fs.existsSync(path.join(repoDir, 'snapshots', fakeSha('stall'), 'model.safetensors')));
  assert.ok(!fs.existsSync(path.join(repoDir, 'refs', 'main')));
  assert.deepEqual(fs.readdirSync(path.join(repoDir, 'blobs')), [gitBlobId(readFixture('config.json'))]);
});

test('progressBar redraws in place on a TTY and prints one line per file otherwise', () => {
  const sink = (isTTY: boolean) => {
    const out: string[] = [];
    return { out, stream: { isTTY, write: (s: string) => out.push(s) > 0 } as unknown as NodeJS.WriteStream };
  };
  const tty = sink(true);
  const plain = sink(false);
  for (const { stream } of [tty, plain]) {
    const bar = progressBar(stream);
    bar({ file: 'model.safetensors', received: 0, total: 2_000_000, done: false });
    bar({ file: 'model.safetensors', received: 2_000_000, total: 2_000_000, done: true });
  }
  assert.ok(tty.out.every((s) => s.startsWith('\rmodel.safetensors')));
  assert.match(tty.out.at(-1)!, /2\.0\/2\.0 MB 100% .*MB\/s.*\n$/);
  assert.equal(plain.out.length, 1);
  assert.match(plain.out[0], /^model\.safetensors {2}2\.0 MB {2}[\d.]+ MB\/s\n$/);
});
