// Resolves `--model` to a local folder: an existing folder as is, or a Hugging Face repo id (ORG/NAME)
// through the huggingface_hub cache (models--ORG--NAME/{refs,snapshots,blobs}), downloading what a
// safetensors checkpoint needs when the cache lacks it. Each file is streamed to
// blobs/<name>.<pid>.incomplete, renamed to blobs/<name> (name: the LFS sha256, else the git blob id,
// as huggingface_hub names blobs) and linked from snapshots/<commit>/<file> by a relative symlink, so
// huggingface_hub and transformers share the cache with us.
// Leaves out: pytorch_model.bin, resuming partial downloads, locks between concurrent processes, the
// token file of `huggingface-cli login`, HF_HUB_OFFLINE, and dataset or space repos.

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fail, MambaError } from '../core/errors.ts';
import { readJsonFile } from './json.ts';

export interface Progress {
  file: string;
  received: number;
  total: number | null;
  /** true once, when the file is complete on disk */
  done: boolean;
}

export interface ResolveOptions {
  /** May files be downloaded when the cache lacks them? Default true. */
  download?: boolean;
  /** Branch, tag or 40-hex commit. Default 'main'. */
  revision?: string;
  onProgress?: (p: Progress) => void;
  /** Default $HF_ENDPOINT, else https://huggingface.co. */
  endpoint?: string;
  /** Default $HF_HUB_CACHE, else $HF_HOME/hub, else ${XDG_CACHE_HOME:-~/.cache}/huggingface/hub. */
  cacheDir?: string;
  /** Milliseconds to wait for an answer, or for the next chunk of a file, before giving up. Default 30 000. */
  timeoutMs?: number;
}

type Sibling = { rfilename: string; blobId?: string; lfs?: { sha256?: string } };

const INDEX = 'model.safetensors.index.json';
const OPTIONAL = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'generation_config.json',
];
const REPO_ID = /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/;
const COMMIT = /^[0-9a-f]{40}$/;
const BLOB_ID = /^[0-9a-f]{40,64}$/;

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p;
}

function hubCache(): string {
  const env = process.env;
  if (env.HF_HUB_CACHE) return expandHome(env.HF_HUB_CACHE);
  if (env.HF_HOME) return path.join(expandHome(env.HF_HOME), 'hub');
  const xdg = env.XDG_CACHE_HOME ? expandHome(env.XDG_CACHE_HOME) : path.join(os.homedir(), '.cache');
  return path.join(xdg, 'huggingface', 'hub');
}

/** The shard files named by an index's weight_map, each checked to stay inside the snapshot. */
function shardsOf(index: string): string[] {
  const map = (readJsonFile(index) as { weight_map?: unknown } | null)?.weight_map;
  if (map === null || typeof map !== 'object' || Array.isArray(map)) fail(`${index}: no weight_map object`);
  const shards = [...new Set(Object.values(map as Record<string, unknown>))];
  for (const s of shards) {
    const bad = typeof s !== 'string' || path.isAbsolute(s) || path.normalize(s).split(path.sep)[0] === '..';
    if (bad) fail(`${index}: shard name ${JSON.stringify(s)} is not a file inside the folder`);
  }
  return shards as string[];
}

/** config.json and model.safetensors, or the index and every shard it names. */
function isComplete(dir: string): boolean {
  if (!fs.existsSync(path.join(dir, 'config.json'))) return false;
  if (fs.existsSync(path.join(dir, 'model.safetensors'))) return true;
  const index = path.join(dir, INDEX);
  return fs.existsSync(index) && shardsOf(index).every((s) => fs.existsSync(path.join(dir, s)));
}

export async function resolveModel(spec: string, options: ResolveOptions = {}): Promise<string> {
  const local = expandHome(spec);
  if (fs.existsSync(local)) {
    if (!fs.statSync(local).isDirectory()) fail(`${spec}: not a folder`);
    return local;
  }
  if (/^[./~]/.test(spec)) fail(`${spec}: no such folder`);
  if (!REPO_ID.test(spec) || /\.\.|--/.test(spec)) {
    fail(`"${spec}" is neither a folder nor a Hugging Face repo id (ORG/NAME)`);
  }
  const revision = options.revision ?? 'main';
  if (!revision || revision.startsWith('/') || revision.split('/').some((part) => part === '..' || !part)) {
    fail(`${spec}: invalid revision "${revision}"`);
  }
  const repoDir = path.join(options.cacheDir ?? hubCache(), `models--${spec.replace('/', '--')}`);
  const ref = path.join(repoDir, 'refs', revision);
  const commit = COMMIT.test(revision)
    ? revision
    : fs.existsSync(ref)
      ? fs.readFileSync(ref, 'utf8').trim()
      : undefined;
  if (commit && COMMIT.test(commit) && isComplete(path.join(repoDir, 'snapshots', commit)))
    return path.join(repoDir, 'snapshots', commit);
  if (options.download === false) fail(`${spec}: not in the local Hugging Face cache (${repoDir})`);

  const endpoint = (options.endpoint ?? process.env.HF_ENDPOINT ?? 'https://huggingface.co').replace(
    /\/+$/,
    '',
  );
  try {
    return await download(spec, revision, endpoint, repoDir, options);
  } catch (e) {
    if (e instanceof MambaError) throw e;
    const error = e as Error & { cause?: { code?: string; message?: string } };
    const reason = error.cause?.code ?? error.cause?.message ?? error.message;
    fail(
      `${spec}: not in the local Hugging Face cache (${repoDir}) and could not be downloaded from ${endpoint} (${reason})`,
    );
  }
}

async function download(
  repo: string,
  revision: string,
  endpoint: string,
  repoDir: string,
  options: ResolveOptions,
): Promise<string> {
  const ms = options.timeoutMs ?? 30_000;
  const headers: Record<string, string> = { 'accept-encoding': 'identity' };
  if (process.env.HF_TOKEN) headers.authorization = `Bearer ${process.env.HF_TOKEN}`;

  /** GETs `url` with a watchdog that aborts when `ms` pass without headers or (after kick()) a chunk. */
  async function get(url: string, file?: string) {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const stop = () => clearTimeout(timer);
    const kick = () => {
      stop();
      const what = file ?? `${endpoint}/api/models/${repo}`;
      timer = setTimeout(() => controller.abort(new Error(`${what}: no data for ${ms / 1000} s`)), ms);
    };
    kick();
    try {
      const res = await fetch(url, { headers, signal: controller.signal });
      if (!res.ok) await res.body?.cancel();
      if (res.status === 401 || res.status === 403)
        fail(`${repo}: access denied (gated or private; set HF_TOKEN)`);
      if (res.status === 404) {
        const at = revision === 'main' ? '' : ` (revision ${revision})`;
        fail(`${repo}: ${file ? `${file} ` : ''}not found on ${endpoint}${at}`);
      }
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}${file ? ` for ${file}` : ''}`);
      return { res, body: res.body, kick, stop };
    } catch (e) {
      stop();
      throw e;
    }
  }

  const api = await get(`${endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}?blobs=true`);
  const info = (await api.res.json().finally(api.stop)) as { sha?: unknown; siblings?: Sibling[] };
  const sha = info.sha;
  if (typeof sha !== 'string' || !COMMIT.test(sha))
    fail(`${repo}: ${endpoint} gave no commit hash for ${revision}`);
  const listed = new Map((Array.isArray(info.siblings) ? info.siblings : []).map((s) => [s.rfilename, s]));
  const snapshot = path.join(repoDir, 'snapshots', sha);
  const blobs = path.join(repoDir, 'blobs');

  async function fetchFile(file: string): Promise<void> {
    const pointer = path.join(snapshot, file);
    if (fs.existsSync(pointer)) return;
    const sibling = listed.get(file);
    const named = sibling?.lfs?.sha256 ?? sibling?.blobId;
    const known = named && BLOB_ID.test(named) ? named : undefined;
    let blob = known && path.join(blobs, known);
    if (!blob || !fs.existsSync(blob)) {
      fs.mkdirSync(blobs, { recursive: true });
      const tmp = path.join(blobs, `${known ?? 'download'}.${process.pid}.incomplete`);
      const segments = file.split('/').map(encodeURIComponent).join('/');
      const { res, kick, stop, ...rest } = await get(`${endpoint}/${repo}/resolve/${sha}/${segments}`, file);
      const body = rest.body.getReader();
      const length = res.headers.get('content-length');
      const total = length !== null && !res.headers.has('content-encoding') ? Number(length) : null;
      const hash = createHash('sha256');
      let received = 0;
      try {
        const fh = await fs.promises.open(tmp, 'w');
        try {
          options.onProgress?.({ file, received, total, done: false });
          for (let chunk = await body.read(); !chunk.done; chunk = await body.read()) {
            kick();
            await fh.write(chunk.value);
            hash.update(chunk.value);
            received += chunk.value.length;
            options.onProgress?.({ file, received, total, done: false });
          }
        } finally {
          stop();
          await fh.close();
        }
        if (total !== null && received !== total)
          fail(`${repo}: ${file} was cut short (${received} of ${total} bytes)`);
        const digest = hash.digest('hex');
        if (sibling?.lfs?.sha256 && digest !== sibling.lfs.sha256)
          fail(`${repo}: ${file} is corrupt (sha256 mismatch)`);
        blob = path.join(blobs, known ?? digest);
        fs.renameSync(tmp, blob);
      } catch (e) {
        body.cancel().catch(() => {});
        fs.rmSync(tmp, { force: true });
        throw e;
      }
      options.onProgress?.({ file, received, total, done: true });
    }
    fs.mkdirSync(path.dirname(pointer), { recursive: true });
    fs.rmSync(pointer, { force: true }); // a dangling link
    try {
      fs.symlinkSync(path.relative(path.dirname(pointer), blob), pointer);
    } catch {
      fs.copyFileSync(blob, pointer); // no symlinks here (as huggingface_hub does on such systems)
    }
  }

  if (!listed.has('config.json')) fail(`${repo}: no config.json at revision ${revision} on ${endpoint}`);
  await fetchFile('config.json');
  if (listed.has('model.safetensors')) await fetchFile('model.safetensors');
  else if (listed.has(INDEX)) {
    await fetchFile(INDEX);
    for (const shard of shardsOf(path.join(snapshot, INDEX))) await fetchFile(shard);
  } else {
    fail(
      `${repo}: no model.safetensors or ${INDEX} at revision ${revision} (pytorch_model.bin is not supported)`,
    );
  }
  for (const file of OPTIONAL) if (listed.has(file)) await fetchFile(file);
  if (revision !== sha) {
    const ref = path.join(repoDir, 'refs', revision);
    fs.mkdirSync(path.dirname(ref), { recursive: true });
    fs.writeFileSync(ref, sha);
  }
  return snapshot;
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(1);

/** An onProgress callback: a bar redrawn in place on a TTY, else one line per finished file. */
export function progressBar(stream: NodeJS.WriteStream): (p: Progress) => void {
  const started = new Map<string, number>();
  let drawn = 0;
  return ({ file, received, total, done }) => {
    const now = Date.now();
    if (!started.has(file)) started.set(file, now);
    const rate = `${mb((received / Math.max(now - started.get(file)!, 1)) * 1000)} MB/s`;
    if (!stream.isTTY) {
      if (done) stream.write(`${file}  ${mb(received)} MB  ${rate}\n`);
      return;
    }
    if (!done && now - drawn < 100) return;
    drawn = now;
    const width = 30;
    const fraction = total ? Math.min(received / total, 1) : 0;
    const bar = total ? `[${'#'.repeat(Math.round(fraction * width)).padEnd(width)}] ` : '';
    const size = total
      ? `${mb(received)}/${mb(total)} MB ${Math.floor(fraction * 100)}%`
      : `${mb(received)} MB`;
    stream.write(`\r${file}  ${bar}${size}  ${rate}\x1b[K${done ? '\n' : ''}`);
  };
}
