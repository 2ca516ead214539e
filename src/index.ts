// Public API of mamba-ts: re-exports only.

export type { Backend, SelectiveScanArgs, SsdArgs } from './backends/backend.ts';
export { CpuBackend } from './backends/cpu/cpuBackend.ts';
export { MambaError } from './core/errors.ts';
export type { DType, Shape, Tensor } from './core/tensor.ts';
export {
  type GenerateOptions,
  type GenerationResult,
  generate,
  type Piece,
  type TextCodec,
} from './generate/generate.ts';
export { argmax, Sampler, type SamplingOptions } from './generate/sampling.ts';
export { decodeSnapshot, encodeSnapshot, type Snapshot } from './generate/snapshot.ts';
export { StreamDecoder } from './generate/streamDecoder.ts';
export { loadModel, readConfig } from './io/hf.ts';
export { resolveModel } from './io/hub.ts';
export { type NpyArray, readNpy, writeNpy } from './io/npy.ts';
export { Checkpoint, SafetensorsFile, writeSafetensors } from './io/safetensors.ts';
export { Tokenizer } from './io/tokenizer.ts';
export { CausalLM, type ForwardResult } from './models/causalLM.ts';
export type { Mamba2Config, MambaConfig, ModelConfig } from './models/config.ts';
export { parseConfig, toHfConfigJson } from './models/config.ts';
export { initParameters } from './models/init.ts';
export { presetConfig } from './models/presets.ts';
export type { LayerState, ModelState } from './models/state.ts';
