// What `generate` and `chat` share: the options for the model (folder or Hugging Face repo id),
// sampling and stopping, loading the model with its tokenizer and EOS ids, and state snapshot files.

import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../core/errors.ts';
import type { GenerateOptions } from '../generate/generate.ts';
import { decodeSnapshot, encodeSnapshot, type Snapshot } from '../generate/snapshot.ts';
import { builtinModelDir } from '../io/builtinModel.ts';
import { loadModel } from '../io/hf.ts';
import { progressBar, resolveModel } from '../io/hub.ts';
import { readJsonFile } from '../io/json.ts';
import { Tokenizer } from '../io/tokenizer.ts';
import type { CausalLM } from '../models/causalLM.ts';
import { intOption, makeBackend, type OptionSpec, type Values } from './args.ts';

export const sessionOptions: OptionSpec = {
  model: { type: 'string' },
  backend: { type: 'string' },
  offline: { type: 'boolean' },
  'max-new-tokens': { type: 'string' },
  greedy: { type: 'boolean' },
  temperature: { type: 'string' },
  'top-k': { type: 'string' },
  'top-p': { type: 'string' },
  'min-p': { type: 'string' },
  'repetition-penalty': { type: 'string' },
  seed: { type: 'string' },
  stop: { type: 'string', multiple: true },
  'ignore-eos': { type: 'boolean' },
  'prefill-chunk': { type: 'string' },
  'state-in': { type: 'string' },
  'state-out': { type: 'string' },
  stats: { type: 'boolean' },
};

export interface Session {
  dir: string;
  model: CausalLM;
  tokenizer: Tokenizer | null;
  eosTokenIds: number[];
}

/** EOS ids: generation_config.json, else config.json, else the tokenizer's eos token. */
function eosIds(dir: string, model: CausalLM, tokenizer: Tokenizer | null): number[] {
  const file = join(dir, 'generation_config.json');
  const fromFile = existsSync(file)
    ? (readJsonFile(file) as Record<string, unknown>).eos_token_id
    : undefined;
  const ids = fromFile ?? model.config.eosTokenId ?? tokenizer?.eosTokenId ?? [];
  return (Array.isArray(ids) ? ids : [ids]).filter((id): id is number => typeof id === 'number');
}

export async function openSession(command: string, values: Values): Promise<Session> {
  const spec = values.model ?? builtinModelDir();
  if (typeof spec !== 'string' || spec === '')
    fail(`${command}: --model is required (a folder or ORG/NAME): this installation has no built-in model`);
  const dir = await resolveModel(spec, {
    download: !values.offline,
    onProgress: progressBar(process.stderr),
  });
  const model = loadModel(dir, await makeBackend(command, values.backend));
  const tokenizer = existsSync(join(dir, 'tokenizer.json')) ? Tokenizer.fromDir(dir) : null;
  return { dir, model, tokenizer, eosTokenIds: eosIds(dir, model, tokenizer) };
}

function numberOption(command: string, values: Values, name: string): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (typeof raw !== 'string' || raw.trim() === '' || Number.isNaN(value)) {
    fail(`${command}: --${name} must be a number, got "${raw}"`);
  }
  return value;
}

/** Sampling and stopping options from the command line (checked again, in full, by the sampler). */
export function generateOptions(command: string, values: Values, session: Session): GenerateOptions {
  return {
    maxNewTokens: intOption(command, values, 'max-new-tokens', 64),
    greedy: values.greedy === true,
    temperature: numberOption(command, values, 'temperature'),
    topK: numberOption(command, values, 'top-k'),
    topP: numberOption(command, values, 'top-p'),
    minP: numberOption(command, values, 'min-p'),
    repetitionPenalty: numberOption(command, values, 'repetition-penalty'),
    seed: numberOption(command, values, 'seed'),
    stop: (values.stop as string[] | undefined) ?? [],
    eosTokenIds: values['ignore-eos'] ? [] : session.eosTokenIds,
    prefillChunk: intOption(command, values, 'prefill-chunk', 512, 1),
  };
}

/** Reads --state-in, refusing a snapshot of another model. */
export function readSnapshot(file: string, session: Session): Snapshot {
  if (!existsSync(file)) fail(`${file}: file not found`);
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(file));
  } catch (error) {
    fail(`${file}: cannot read (${(error as Error).message})`);
  }
  const snapshot = decodeSnapshot(bytes, file);
  if (snapshot.model !== session.model.fingerprint) {
    fail(
      `${file}: this state snapshot belongs to another model (${snapshot.model}, not ${session.model.fingerprint})`,
    );
  }
  return snapshot;
}

/** Writes --state-out atomically (write, then rename). */
export function writeSnapshot(file: string, snapshot: Snapshot): void {
  try {
    writeFileSync(`${file}.tmp`, encodeSnapshot(snapshot));
    renameSync(`${file}.tmp`, file);
  } catch (error) {
    fail(`${file}: write failed (${(error as Error).message})`);
  }
}

export function printStats(stats: {
  promptTokens: number;
  prefillSeconds: number;
  newTokens: number;
  decodeSeconds: number;
  stateBytes: number;
}): void {
  const rate = (tokens: number, seconds: number) => (seconds > 0 ? (tokens / seconds).toFixed(1) : '-');
  process.stderr.write(
    `prefill: ${stats.promptTokens} tokens, ${stats.prefillSeconds.toFixed(3)} s, ${rate(stats.promptTokens, stats.prefillSeconds)} tokens/s; ` +
      `decode: ${stats.newTokens} tokens, ${stats.decodeSeconds.toFixed(3)} s, ${rate(stats.newTokens, stats.decodeSeconds)} tokens/s; ` +
      `state: ${stats.stateBytes} bytes per sequence\n`,
  );
}
