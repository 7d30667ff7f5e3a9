import type { FakeHub } from './fake-hub';
import { buildSafetensors, llamaConfig, llamaTensors, parameterCount, pseudoRandomBytes, shardedSafetensors } from './tiny-model';

/**
 * The repos the download tests and the committed Python-made cache fixture
 * (test/fixtures/hf-cache) are built from. Everything is deterministic, so commits and blob
 * names are the same in every run.
 */
export const TINY_LLAMA = 'alloy-test/tiny-llama';
export const TINY_MISTRAL = 'alloy-test/tiny-mistral';

export const TINY_LLAMA_SHAPE = { layers: 2, hidden: 8, vocab: 32 };
export const TINY_LLAMA_PARAMETERS = parameterCount(llamaTensors(2, 8, 32, 'F32'));
export const TINY_MISTRAL_PARAMETERS = parameterCount(llamaTensors(1, 16, 64, 'BF16'));

export function tinyLlamaFiles(): Record<string, Buffer | string> {
  return {
    '.gitattributes': '*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n',
    'README.md': '# tiny llama\n\nA model for tests.\n',
    'config.json': llamaConfig(2, 8, 32, 'float32'),
    'generation_config.json': JSON.stringify({ bos_token_id: 1, eos_token_id: 2 }),
    ...shardedSafetensors(llamaTensors(2, 8, 32, 'F32'), 2, 'tiny-llama'),
    'pytorch_model.bin': pseudoRandomBytes(3000, 'tiny-llama-bin'),
    'tokenizer.json': JSON.stringify({ version: '1.0', model: { type: 'BPE', vocab: {} } }),
    'tokenizer_config.json': JSON.stringify({ model_max_length: 128 }),
    'special_tokens_map.json': JSON.stringify({ bos_token: '<s>' }),
    'onnx/model.onnx': pseudoRandomBytes(500, 'onnx'),
  };
}

/** The second commit of tiny-llama: only config.json changes, so both revisions share every shard. */
export function tinyLlamaUpdate(): Record<string, string> {
  return { 'config.json': llamaConfig(2, 8, 32, 'float32').replace('"vocab_size": 32', '"vocab_size": 32,\n  "rope_theta": 10000') };
}

export function tinyMistralFiles(): Record<string, Buffer | string> {
  return {
    'config.json': llamaConfig(1, 16, 64, 'bfloat16').replace(/LlamaForCausalLM/, 'MistralForCausalLM').replace('"llama"', '"mistral"'),
    'model.safetensors': buildSafetensors(llamaTensors(1, 16, 64, 'BF16'), 'tiny-mistral'),
  };
}

/** Adds both repos; returns their commits (tiny-llama: the first, then the second on main). */
export function addFixtureRepos(hub: FakeHub): { llamaFirst: string; llamaMain: string; mistralMain: string } {
  const llamaFirst = hub.addRepo(TINY_LLAMA, tinyLlamaFiles());
  const llamaMain = hub.pushCommit(TINY_LLAMA, tinyLlamaUpdate());
  const mistralMain = hub.addRepo(TINY_MISTRAL, tinyMistralFiles());
  return { llamaFirst, llamaMain, mistralMain };
}
