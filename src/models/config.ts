// Model configuration: config.json of the Hugging Face layout (model_type "mamba" and "mamba2",
// field names and defaults as transformers' MambaConfig / Mamba2Config) and of the original
// mamba_ssm layout (d_model, n_layer, ssm_cfg, pad_vocab_size_multiple), read into one typed form.
// Hybrid mamba_ssm models (attention layers, MLPs via d_intermediate) are refused.

import { fail } from '../core/errors.ts';

interface CommonConfig {
  vocabSize: number;
  hiddenSize: number; // d
  numLayers: number;
  stateSize: number; // n
  expand: number;
  intermediateSize: number; // dInner
  convKernel: number;
  useBias: boolean;
  useConvBias: boolean;
  layerNormEpsilon: number;
  residualInFp32: boolean;
  tieWordEmbeddings: boolean;
  timeStepMin: number;
  timeStepMax: number;
  timeStepFloor: number;
  initializerRange: number;
  bosTokenId: number | null;
  eosTokenId: number | null;
  padTokenId: number | null;
}

export interface MambaConfig extends CommonConfig {
  family: 'mamba';
  timeStepRank: number; // R, the rank of Δ's projection
  timeStepScale: number;
  timeStepInitScheme: 'random' | 'constant';
  /**
   * The SSM inside the block (config.json `ssm_layer`, ours): "s6", the selective scan (absent
   * means s6), or "s4d", the Mamba paper's "Mamba architecture with an S4 layer": a time-invariant
   * S4D layer (src/models/s4dMixer.ts) in place of x_proj, dt_proj and the scan. Checkpoints
   * with s4d have their own parameters (log_dt, B, C): transformers cannot load them.
   */
  ssmLayer?: 's6' | 's4d';
}

export interface Mamba2Config extends CommonConfig {
  family: 'mamba2';
  numHeads: number; // h
  headDim: number; // p
  nGroups: number; // g
  chunkSize: number; // q
  normBeforeGate: boolean;
  timeStepLimit: [number, number];
}

export type ModelConfig = MambaConfig | Mamba2Config;

type Json = Record<string, unknown>;

/** Typed field reader that names config.json and the field in every error. */
class Fields {
  constructor(
    private readonly json: Json,
    readonly file: string,
  ) {}

  private get(key: string): unknown {
    return this.json[key];
  }

  number(key: string, fallback?: number): number {
    const value = this.get(key) ?? fallback;
    if (typeof value !== 'number' || Number.isNaN(value)) {
      return fail(`${this.file}: field "${key}" must be a number, got ${JSON.stringify(value) ?? 'nothing'}`);
    }
    return value;
  }

  int(key: string, fallback?: number, min = 1): number {
    const value = this.number(key, fallback);
    if (!Number.isInteger(value) || value < min) {
      fail(`${this.file}: field "${key}" must be an integer >= ${min}, got ${value}`);
    }
    return value;
  }

  bool(key: string, fallback: boolean): boolean {
    const value = this.get(key) ?? fallback;
    if (typeof value !== 'boolean') fail(`${this.file}: field "${key}" must be true or false`);
    return value;
  }

  tokenId(key: string, fallback: number | null): number | null {
    const value = this.get(key) ?? fallback;
    const id = Array.isArray(value) ? value[0] : value; // eos_token_id may be a list
    return typeof id === 'number' ? id : null;
  }

  string(key: string, fallback: string): string {
    const value = this.get(key) ?? fallback;
    if (typeof value !== 'string') fail(`${this.file}: field "${key}" must be a string`);
    return value;
  }
}

function common(f: Fields, d: { vocab: number; hidden: number; layers: number; state: number }) {
  const hiddenSize = f.int('hidden_size', d.hidden);
  const expand = f.number('expand', 2);
  return {
    vocabSize: f.int('vocab_size', d.vocab),
    hiddenSize,
    numLayers: f.int('num_hidden_layers', d.layers),
    stateSize: f.int('state_size', d.state),
    expand,
    intermediateSize: f.int('intermediate_size', Math.trunc(expand * hiddenSize)),
    convKernel: f.int('conv_kernel', 4),
    useBias: f.bool('use_bias', false),
    useConvBias: f.bool('use_conv_bias', true),
    layerNormEpsilon: f.number('layer_norm_epsilon', 1e-5),
    residualInFp32: f.bool('residual_in_fp32', true),
    timeStepMin: f.number('time_step_min', 0.001),
    timeStepMax: f.number('time_step_max', 0.1),
    timeStepFloor: f.number('time_step_floor', 1e-4),
    initializerRange: f.number('initializer_range', 0.1),
  };
}

function timeStepRank(json: Json, f: Fields, hiddenSize: number): number {
  return json.time_step_rank === 'auto' || json.time_step_rank === undefined
    ? Math.ceil(hiddenSize / 16)
    : f.int('time_step_rank');
}

function parseHfMamba(json: Json, f: Fields): MambaConfig {
  const c = common(f, { vocab: 50280, hidden: 768, layers: 32, state: 16 });
  const scheme = f.string('time_step_init_scheme', 'random');
  if (scheme !== 'random' && scheme !== 'constant')
    fail(`${f.file}: unknown time_step_init_scheme "${scheme}"`);
  const ssmLayer = f.string('ssm_layer', 's6');
  if (ssmLayer !== 's6' && ssmLayer !== 's4d')
    fail(`${f.file}: unknown ssm_layer "${ssmLayer}" (expected "s6" or "s4d")`);
  return {
    family: 'mamba',
    ...c,
    tieWordEmbeddings: f.bool('tie_word_embeddings', true),
    timeStepRank: timeStepRank(json, f, c.hiddenSize),
    timeStepScale: f.number('time_step_scale', 1),
    timeStepInitScheme: scheme,
    ...(ssmLayer === 's4d' ? { ssmLayer } : {}),
    bosTokenId: f.tokenId('bos_token_id', 0),
    eosTokenId: f.tokenId('eos_token_id', 0),
    padTokenId: f.tokenId('pad_token_id', 0),
  };
}

function parseHfMamba2(json: Json, f: Fields): Mamba2Config {
  const c = common(f, { vocab: 32768, hidden: 4096, layers: 64, state: 128 });
  const limit = json.time_step_limit ?? [0, Number.POSITIVE_INFINITY];
  if (!Array.isArray(limit) || limit.length !== 2 || limit.some((v) => typeof v !== 'number')) {
    fail(`${f.file}: field "time_step_limit" must be a pair of numbers`);
  }
  if (json.rms_norm === false) fail(`${f.file}: rms_norm false (ungated norm) is not supported`);
  return {
    family: 'mamba2',
    ...c,
    tieWordEmbeddings: f.bool('tie_word_embeddings', false),
    numHeads: f.int('num_heads', 128),
    headDim: f.int('head_dim', 64),
    nGroups: f.int('n_groups', 8),
    chunkSize: f.int('chunk_size', 256),
    normBeforeGate: f.bool('norm_before_gate', false),
    timeStepLimit: [limit[0], limit[1]],
    bosTokenId: f.tokenId('bos_token_id', 0),
    eosTokenId: f.tokenId('eos_token_id', 2),
    padTokenId: f.tokenId('pad_token_id', 1),
  };
}

/** The original mamba_ssm config.json: {d_model, n_layer, vocab_size, ssm_cfg: {layer, ...}, ...}. */
function parseMambaSsm(json: Json, file: string): ModelConfig {
  const f = new Fields(json, file);
  const ssm = (json.ssm_cfg ?? {}) as Json;
  if (typeof ssm !== 'object' || Array.isArray(ssm)) fail(`${file}: field "ssm_cfg" must be an object`);
  const s = new Fields(ssm, `${file} (ssm_cfg)`);
  if (Array.isArray(json.attn_layer_idx) && json.attn_layer_idx.length > 0) {
    fail(`${file}: hybrid models with attention layers (attn_layer_idx) are not supported`);
  }
  if ((json.d_intermediate ?? 0) !== 0)
    fail(`${file}: models with MLP layers (d_intermediate > 0) are not supported`);
  const hiddenSize = f.int('d_model');
  const multiple = f.int('pad_vocab_size_multiple', 8);
  const vocabSize = Math.ceil(f.int('vocab_size') / multiple) * multiple;
  const expand = s.number('expand', 2);
  const dtLimit = ssm.dt_limit ?? [0, Number.POSITIVE_INFINITY];
  if (!Array.isArray(dtLimit) || dtLimit.length !== 2 || dtLimit.some((v) => typeof v !== 'number')) {
    fail(`${file}: field "ssm_cfg.dt_limit" must be a pair of numbers`);
  }
  const base = {
    vocabSize,
    hiddenSize,
    numLayers: f.int('n_layer'),
    expand,
    intermediateSize: Math.trunc(expand * hiddenSize),
    convKernel: s.int('d_conv', 4),
    useBias: s.bool('bias', false),
    useConvBias: s.bool('conv_bias', true),
    layerNormEpsilon: f.number('norm_epsilon', 1e-5),
    residualInFp32: f.bool('residual_in_fp32', true),
    tieWordEmbeddings: f.bool('tie_embeddings', true),
    timeStepMin: s.number('dt_min', 0.001),
    timeStepMax: s.number('dt_max', 0.1),
    timeStepFloor: s.number('dt_init_floor', 1e-4),
    initializerRange: f.number('initializer_range', 0.02),
    bosTokenId: null,
    eosTokenId: null,
    padTokenId: null,
  };
  if (f.bool('rms_norm', true) === false)
    fail(`${file}: LayerNorm models (rms_norm false) are not supported`);
  const layer = s.string('layer', 'Mamba1');
  if (layer === 'Mamba1') {
    return {
      family: 'mamba',
      ...base,
      stateSize: s.int('d_state', 16),
      timeStepRank:
        ssm.dt_rank === undefined || ssm.dt_rank === 'auto' ? Math.ceil(hiddenSize / 16) : s.int('dt_rank'),
      timeStepScale: s.number('dt_scale', 1),
      timeStepInitScheme: s.string('dt_init', 'random') === 'constant' ? 'constant' : 'random',
    };
  }
  if (layer === 'Mamba2') {
    const headDim = s.int('headdim', 64);
    if (base.intermediateSize % headDim !== 0) {
      fail(`${file}: ssm_cfg.headdim ${headDim} does not divide expand × d_model = ${base.intermediateSize}`);
    }
    if (ssm.D_has_hdim === true) fail(`${file}: D_has_hdim true is not supported`);
    return {
      family: 'mamba2',
      ...base,
      stateSize: s.int('d_state', 128),
      numHeads: base.intermediateSize / headDim,
      headDim,
      nGroups: s.int('ngroups', 1),
      chunkSize: s.int('chunk_size', 256),
      normBeforeGate: s.bool('norm_before_gate', false),
      timeStepLimit: [dtLimit[0], dtLimit[1]],
    };
  }
  return fail(`${file}: unknown ssm_cfg.layer "${layer}" (expected Mamba1 or Mamba2)`);
}

/** Reads a parsed config.json (file names errors) into a ModelConfig, checking it for consistency. */
export function parseConfig(json: unknown, file: string): ModelConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json))
    fail(`${file}: expected a JSON object`);
  const obj = json as Json;
  const f = new Fields(obj, file);
  let config: ModelConfig;
  if (obj.model_type === 'mamba') config = parseHfMamba(obj, f);
  else if (obj.model_type === 'mamba2') config = parseHfMamba2(obj, f);
  else if (obj.model_type === undefined && obj.d_model !== undefined) config = parseMambaSsm(obj, file);
  else {
    return fail(
      `${file}: unsupported model_type ${JSON.stringify(obj.model_type) ?? '(none)'} (expected "mamba" or "mamba2")`,
    );
  }
  checkConfig(config, file);
  return config;
}

function checkConfig(c: ModelConfig, file: string): void {
  if (c.family === 'mamba2') {
    if (c.numHeads * c.headDim !== c.intermediateSize) {
      fail(
        `${file}: num_heads ${c.numHeads} × head_dim ${c.headDim} must equal the intermediate size ${c.intermediateSize} (expand × hidden_size)`,
      );
    }
    if (c.numHeads % c.nGroups !== 0)
      fail(`${file}: num_heads ${c.numHeads} is not a multiple of n_groups ${c.nGroups}`);
  }
}

/** The HF config.json that describes `c` (what save_pretrained would write for the fields we use). */
export function toHfConfigJson(c: ModelConfig): Json {
  const shared = {
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    num_hidden_layers: c.numLayers,
    state_size: c.stateSize,
    expand: c.expand,
    conv_kernel: c.convKernel,
    use_bias: c.useBias,
    use_conv_bias: c.useConvBias,
    hidden_act: 'silu',
    layer_norm_epsilon: c.layerNormEpsilon,
    residual_in_fp32: c.residualInFp32,
    tie_word_embeddings: c.tieWordEmbeddings,
    time_step_min: c.timeStepMin,
    time_step_max: c.timeStepMax,
    time_step_floor: c.timeStepFloor,
    initializer_range: c.initializerRange,
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenId,
    pad_token_id: c.padTokenId,
    dtype: 'float32',
    use_cache: true,
  };
  if (c.family === 'mamba') {
    return {
      architectures: ['MambaForCausalLM'],
      model_type: 'mamba',
      ...shared,
      intermediate_size: c.intermediateSize,
      time_step_rank: c.timeStepRank,
      time_step_scale: c.timeStepScale,
      time_step_init_scheme: c.timeStepInitScheme,
      ...(c.ssmLayer === 's4d' ? { ssm_layer: c.ssmLayer } : {}),
    };
  }
  return {
    architectures: ['Mamba2ForCausalLM'],
    model_type: 'mamba2',
    ...shared,
    num_heads: c.numHeads,
    head_dim: c.headDim,
    n_groups: c.nGroups,
    chunk_size: c.chunkSize,
    norm_before_gate: c.normBeforeGate,
    rms_norm: true,
    time_step_limit: c.timeStepLimit.map((v) => (Number.isFinite(v) ? v : { __float__: String(v) })),
  };
}
