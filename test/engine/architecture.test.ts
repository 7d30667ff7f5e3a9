import { describe, expect, it } from 'vitest';
import {
  ARCHITECTURES,
  allWeights,
  architectureModules,
  moduleNumLayers,
  layerOfTensor,
  layerWeights,
  numLayers,
  resolveArchitecture,
  type ArchitectureDef,
} from '../../src/main/engine/architecture';
import { EngineError } from '../../src/main/engine/errors';

// Trimmed from the config.json files these models ship on the Hugging Face Hub.
const CONFIGS: Record<string, Record<string, unknown>> = {
  'meta-llama/Llama-3.2-1B': {
    architectures: ['LlamaForCausalLM'],
    bos_token_id: 128000,
    eos_token_id: 128001,
    hidden_act: 'silu',
    hidden_size: 2048,
    intermediate_size: 8192,
    model_type: 'llama',
    num_attention_heads: 32,
    num_hidden_layers: 16,
    num_key_value_heads: 8,
    rope_theta: 500000.0,
    tie_word_embeddings: true,
    torch_dtype: 'bfloat16',
    vocab_size: 128256,
  },
  'mistralai/Mistral-7B-v0.1': {
    architectures: ['MistralForCausalLM'],
    hidden_size: 4096,
    intermediate_size: 14336,
    model_type: 'mistral',
    num_attention_heads: 32,
    num_hidden_layers: 32,
    num_key_value_heads: 8,
    sliding_window: 4096,
    tie_word_embeddings: false,
    torch_dtype: 'bfloat16',
    vocab_size: 32000,
  },
  'Qwen/Qwen2.5-0.5B': {
    architectures: ['Qwen2ForCausalLM'],
    hidden_size: 896,
    intermediate_size: 4864,
    max_window_layers: 24,
    model_type: 'qwen2',
    num_attention_heads: 14,
    num_hidden_layers: 24,
    num_key_value_heads: 2,
    tie_word_embeddings: true,
    torch_dtype: 'bfloat16',
    use_sliding_window: false,
    vocab_size: 151936,
  },
  'Qwen/Qwen3-0.6B': {
    architectures: ['Qwen3ForCausalLM'],
    head_dim: 128,
    hidden_size: 1024,
    model_type: 'qwen3',
    num_attention_heads: 16,
    num_hidden_layers: 28,
    num_key_value_heads: 8,
    tie_word_embeddings: true,
    torch_dtype: 'bfloat16',
    vocab_size: 151936,
  },
  'google/gemma-2b': {
    architectures: ['GemmaForCausalLM'],
    head_dim: 256,
    hidden_act: 'gelu',
    hidden_size: 2048,
    model_type: 'gemma',
    num_attention_heads: 8,
    num_hidden_layers: 18,
    num_key_value_heads: 1,
    torch_dtype: 'bfloat16',
    vocab_size: 256000,
  },
  'google/gemma-2-2b': {
    architectures: ['Gemma2ForCausalLM'],
    attn_logit_softcapping: 50.0,
    final_logit_softcapping: 30.0,
    hidden_size: 2304,
    model_type: 'gemma2',
    num_attention_heads: 8,
    num_hidden_layers: 26,
    num_key_value_heads: 4,
    query_pre_attn_scalar: 256,
    sliding_window: 4096,
    torch_dtype: 'float32',
    vocab_size: 256000,
  },
  'microsoft/Phi-3-mini-4k-instruct': {
    _name_or_path: 'Phi-3-mini-4k-instruct',
    architectures: ['Phi3ForCausalLM'],
    auto_map: { AutoConfig: 'configuration_phi3.Phi3Config', AutoModelForCausalLM: 'modeling_phi3.Phi3ForCausalLM' },
    hidden_size: 3072,
    model_type: 'phi3',
    num_attention_heads: 32,
    num_hidden_layers: 32,
    num_key_value_heads: 32,
    tie_word_embeddings: false,
    torch_dtype: 'bfloat16',
    vocab_size: 32064,
  },
  'openai-community/gpt2': {
    activation_function: 'gelu_new',
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    n_ctx: 1024,
    n_embd: 768,
    n_head: 12,
    n_layer: 12,
    n_positions: 1024,
    vocab_size: 50257,
  },
  'mistralai/Mixtral-8x7B-v0.1': {
    architectures: ['MixtralForCausalLM'],
    hidden_size: 4096,
    intermediate_size: 14336,
    model_type: 'mixtral',
    num_attention_heads: 32,
    num_experts_per_tok: 2,
    num_hidden_layers: 32,
    num_key_value_heads: 8,
    num_local_experts: 8,
    torch_dtype: 'bfloat16',
    vocab_size: 32000,
  },
  'Qwen/Qwen3-30B-A3B': {
    architectures: ['Qwen3MoeForCausalLM'],
    hidden_size: 2048,
    model_type: 'qwen3_moe',
    moe_intermediate_size: 768,
    num_experts: 128,
    num_experts_per_tok: 8,
    num_hidden_layers: 48,
    torch_dtype: 'bfloat16',
    vocab_size: 151936,
  },
  'google/gemma-3-1b-it': {
    architectures: ['Gemma3ForCausalLM'],
    hidden_size: 1152,
    model_type: 'gemma3_text',
    num_attention_heads: 4,
    num_hidden_layers: 26,
    num_key_value_heads: 1,
    sliding_window: 512,
    torch_dtype: 'bfloat16',
    vocab_size: 262144,
  },
  'CohereForAI/c4ai-command-r-v01': {
    architectures: ['CohereForCausalLM'],
    hidden_size: 8192,
    logit_scale: 0.0625,
    model_type: 'cohere',
    num_hidden_layers: 40,
    use_qk_norm: false,
    vocab_size: 256000,
  },
  'CohereForAI/c4ai-command-r7b-12-2024': {
    architectures: ['Cohere2ForCausalLM'],
    hidden_size: 4096,
    model_type: 'cohere2',
    num_hidden_layers: 32,
    sliding_window: 4096,
    vocab_size: 256000,
  },
  'bigcode/starcoder2-3b': {
    architectures: ['Starcoder2ForCausalLM'],
    hidden_size: 3072,
    model_type: 'starcoder2',
    num_hidden_layers: 30,
    use_bias: true,
    vocab_size: 49152,
  },
  'allenai/OLMo-2-1124-7B': {
    architectures: ['Olmo2ForCausalLM'],
    hidden_size: 4096,
    model_type: 'olmo2',
    num_hidden_layers: 32,
    vocab_size: 100352,
  },
  'ibm-granite/granite-3.1-2b-instruct': {
    architectures: ['GraniteForCausalLM'],
    attention_bias: false,
    hidden_size: 2048,
    model_type: 'granite',
    num_hidden_layers: 40,
    tie_word_embeddings: true,
    vocab_size: 49155,
  },
  'LGAI-EXAONE/EXAONE-3.5-2.4B-Instruct': {
    architectures: ['ExaoneForCausalLM'],
    hidden_size: 2560,
    model_type: 'exaone',
    num_attention_heads: 32,
    num_key_value_heads: 8,
    num_layers: 30,
    vocab_size: 102400,
  },
  'stabilityai/stablelm-2-1_6b': {
    architectures: ['StableLmForCausalLM'],
    hidden_size: 2048,
    model_type: 'stablelm',
    num_hidden_layers: 24,
    use_qkv_bias: true,
    vocab_size: 100352,
  },
  'stabilityai/stablelm-3b-4e1t': {
    architectures: ['StableLMEpochForCausalLM'],
    auto_map: { AutoConfig: 'configuration_stablelm_epoch.StableLMEpochConfig', AutoModelForCausalLM: 'modeling_stablelm_epoch.StableLMEpochForCausalLM' },
    hidden_size: 2560,
    model_type: 'stablelm_epoch',
    num_hidden_layers: 32,
    vocab_size: 50304,
  },
  'internlm/internlm2_5-7b-chat': {
    architectures: ['InternLM2ForCausalLM'],
    auto_map: { AutoConfig: 'configuration_internlm2.InternLM2Config', AutoModelForCausalLM: 'modeling_internlm2.InternLM2ForCausalLM' },
    hidden_size: 4096,
    model_type: 'internlm2',
    num_hidden_layers: 32,
    vocab_size: 92544,
  },
  'THUDM/GLM-4-9B-0414': {
    architectures: ['Glm4ForCausalLM'],
    attention_bias: true,
    hidden_size: 4096,
    model_type: 'glm4',
    num_hidden_layers: 40,
    vocab_size: 151552,
  },
  'tiiuae/falcon-40b': {
    architectures: ['FalconForCausalLM'],
    hidden_size: 8192,
    model_type: 'falcon',
    new_decoder_architecture: true,
    num_attention_heads: 128,
    num_hidden_layers: 60,
    num_kv_heads: 8,
    vocab_size: 65024,
  },
  'EleutherAI/pythia-160m': {
    architectures: ['GPTNeoXForCausalLM'],
    hidden_size: 768,
    model_type: 'gpt_neox',
    num_attention_heads: 12,
    num_hidden_layers: 12,
    rotary_pct: 0.25,
    vocab_size: 50304,
  },
};

const EXPECTED: Record<string, { modelType: string; layers: number }> = {
  'meta-llama/Llama-3.2-1B': { modelType: 'llama', layers: 16 },
  'mistralai/Mistral-7B-v0.1': { modelType: 'mistral', layers: 32 },
  'Qwen/Qwen2.5-0.5B': { modelType: 'qwen2', layers: 24 },
  'Qwen/Qwen3-0.6B': { modelType: 'qwen3', layers: 28 },
  'google/gemma-2b': { modelType: 'gemma', layers: 18 },
  'google/gemma-2-2b': { modelType: 'gemma2', layers: 26 },
  'microsoft/Phi-3-mini-4k-instruct': { modelType: 'phi3', layers: 32 },
  'openai-community/gpt2': { modelType: 'gpt2', layers: 12 },
  'mistralai/Mixtral-8x7B-v0.1': { modelType: 'mixtral', layers: 32 },
  'Qwen/Qwen3-30B-A3B': { modelType: 'qwen3_moe', layers: 48 },
  'google/gemma-3-1b-it': { modelType: 'gemma3_text', layers: 26 },
  'CohereForAI/c4ai-command-r-v01': { modelType: 'cohere', layers: 40 },
  'CohereForAI/c4ai-command-r7b-12-2024': { modelType: 'cohere2', layers: 32 },
  'bigcode/starcoder2-3b': { modelType: 'starcoder2', layers: 30 },
  'allenai/OLMo-2-1124-7B': { modelType: 'olmo2', layers: 32 },
  'ibm-granite/granite-3.1-2b-instruct': { modelType: 'granite', layers: 40 },
  'LGAI-EXAONE/EXAONE-3.5-2.4B-Instruct': { modelType: 'exaone', layers: 30 },
  'stabilityai/stablelm-2-1_6b': { modelType: 'stablelm', layers: 24 },
  'stabilityai/stablelm-3b-4e1t': { modelType: 'stablelm_epoch', layers: 32 },
  'internlm/internlm2_5-7b-chat': { modelType: 'internlm2', layers: 32 },
  'THUDM/GLM-4-9B-0414': { modelType: 'glm4', layers: 40 },
  'tiiuae/falcon-40b': { modelType: 'falcon', layers: 60 },
  'EleutherAI/pythia-160m': { modelType: 'gpt_neox', layers: 12 },
};

function resolve(id: string): ArchitectureDef {
  return resolveArchitecture(CONFIGS[id]!, `/models/${id}/config.json`);
}

function thrown(fn: () => unknown): EngineError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(EngineError);
    return error as EngineError;
  }
  throw new Error('expected an EngineError');
}

describe('resolveArchitecture', () => {
  for (const [id, expected] of Object.entries(EXPECTED)) {
    it(`finds ${expected.modelType} for ${id} and reads its ${expected.layers} layers`, () => {
      const def = resolve(id);
      expect(def.modelType).toBe(expected.modelType);
      expect(numLayers(def, CONFIGS[id]!, `/models/${id}/config.json`)).toBe(expected.layers);
    });
  }

  it('matches by class name even when model_type says otherwise, as mergekit does with one candidate', () => {
    const def = resolveArchitecture({ architectures: ['LlamaForCausalLM'], model_type: 'mistral', num_hidden_layers: 2 }, 'c.json');
    expect(def.modelType).toBe('llama');
    expect(resolveArchitecture({ architectures: ['LLaMaForCausalLM'], model_type: 'llama' }, 'c.json').modelType).toBe('llama');
  });

  it('tells the two PhiForCausalLM definitions apart by model_type', () => {
    const phi2 = resolveArchitecture({ architectures: ['PhiForCausalLM'], model_type: 'phi', num_hidden_layers: 32 }, 'c.json');
    expect(phi2.modelType).toBe('phi');
    expect(phi2.preWeights[0]!.name).toBe('model.embed_tokens.weight');
    const old = resolveArchitecture({ architectures: ['PhiForCausalLM'], model_type: 'phi-msft', n_layer: 32 }, 'c.json');
    expect(old.modelType).toBe('phi-msft');
    expect(numLayers(old, { n_layer: 32 }, 'c.json')).toBe(32);
    const err = thrown(() => resolveArchitecture({ architectures: ['PhiForCausalLM'], model_type: 'phi3' }, '/m/config.json'));
    expect(err.message).toContain('/m/config.json');
    expect(err.message).toContain('"phi" and "phi-msft"');
  });

  it('falls back to model_type without architectures, or for an unknown causal-LM class', () => {
    expect(resolveArchitecture({ model_type: 'qwen2', num_hidden_layers: 4 }, 'c.json').modelType).toBe('qwen2');
    expect(resolveArchitecture({ architectures: [], model_type: 'gemma2' }, 'c.json').modelType).toBe('gemma2');
    expect(resolveArchitecture({ architectures: ['MyLlamaForCausalLM'], model_type: 'llama' }, 'c.json').modelType).toBe('llama');
  });

  it('refuses an unknown class that is not a causal LM, even with a known model_type', () => {
    const err = thrown(() => resolveArchitecture({ architectures: ['MistralForSequenceClassification'], model_type: 'mistral' }, '/m/config.json'));
    expect(err.message).toContain('MistralForSequenceClassification');
  });

  it('names the file, the architecture and every known one when the architecture is unknown', () => {
    const err = thrown(() => resolveArchitecture({ architectures: ['RwkvForCausalLM'], model_type: 'rwkv', num_hidden_layers: 24 }, '/models/rwkv/config.json'));
    expect(err.message).toContain('/models/rwkv/config.json');
    expect(err.message).toContain('"RwkvForCausalLM"');
    expect(err.message).toContain('model_type "rwkv"');
    for (const def of ARCHITECTURES) for (const a of def.architectures) expect(err.message).toContain(a);
    expect(err.location).toEqual({ file: '/models/rwkv/config.json', key: 'architectures' });

    const none = thrown(() => resolveArchitecture({}, '/x/config.json'));
    expect(none.message).toContain('no "architectures" entry, no model_type');
  });

  it('refuses a config naming several classes, as mergekit does', () => {
    const err = thrown(() => resolveArchitecture({ architectures: ['LlamaForCausalLM', 'MistralForCausalLM'], model_type: 'llama' }, '/m/config.json'));
    expect(err.message).toContain('/m/config.json');
    expect(err.message).toContain('names 2 classes');
  });
});

describe('numLayers', () => {
  it('explains a missing or bad layer count', () => {
    const llama = resolve('meta-llama/Llama-3.2-1B');
    const missing = thrown(() => numLayers(llama, { model_type: 'llama' }, '/m/config.json'));
    expect(missing.message).toContain('/m/config.json');
    expect(missing.message).toContain('"num_hidden_layers" is missing');
    const bad = thrown(() => numLayers(llama, { num_hidden_layers: '16' }, '/m/config.json'));
    expect(bad.message).toContain('is "16", not a layer count');
  });

  it('reads the layer count under a key transformers maps onto it (EXAONE\'s num_layers), the main key first', () => {
    const exaone = resolve('LGAI-EXAONE/EXAONE-3.5-2.4B-Instruct');
    expect(exaone.numLayersKey).toBe('num_hidden_layers');
    expect(numLayers(exaone, { num_layers: 30 }, 'c.json')).toBe(30);
    expect(numLayers(exaone, { num_hidden_layers: 4, num_layers: 30 }, 'c.json')).toBe(4);
    const missing = thrown(() => numLayers(exaone, {}, '/m/config.json'));
    expect(missing.message).toContain('"num_hidden_layers" is missing');
    // Other families do not read num_layers.
    expect(() => numLayers(resolve('meta-llama/Llama-3.2-1B'), { num_layers: 30 }, 'c.json')).toThrow(EngineError);
  });

  it('follows dotted keys into nested configs', () => {
    const nested: ArchitectureDef = { ...resolve('meta-llama/Llama-3.2-1B'), numLayersKey: 'text_config.num_hidden_layers' };
    expect(numLayers(nested, { text_config: { num_hidden_layers: 7 } }, 'c.json')).toBe(7);
  });
});

describe('layer templates', () => {
  it('fills in the layer index, in mergekit order (llama)', () => {
    const ws = layerWeights(resolve('meta-llama/Llama-3.2-1B'), 3);
    expect(ws.map((w) => w.name)).toEqual([
      'model.layers.3.input_layernorm.weight',
      'model.layers.3.self_attn.q_proj.weight',
      'model.layers.3.self_attn.k_proj.weight',
      'model.layers.3.self_attn.v_proj.weight',
      'model.layers.3.self_attn.o_proj.weight',
      'model.layers.3.post_attention_layernorm.weight',
      'model.layers.3.mlp.up_proj.weight',
      'model.layers.3.mlp.gate_proj.weight',
      'model.layers.3.mlp.down_proj.weight',
    ]);
  });

  it('keeps qwen2 biases and qwen3 q/k norms in their places', () => {
    const q2 = layerWeights(resolve('Qwen/Qwen2.5-0.5B'), 0).map((w) => w.name);
    expect(q2).toHaveLength(12);
    expect(q2[5]).toBe('model.layers.0.self_attn.k_proj.bias');
    const q3 = layerWeights(resolve('Qwen/Qwen3-0.6B'), 27).map((w) => w.name);
    expect(q3).toContain('model.layers.27.self_attn.q_norm.weight');
    expect(q3[q3.length - 1]).toBe('model.layers.27.self_attn.o_proj.weight');
  });

  it('substitutes aliases too (gpt2)', () => {
    const ws = layerWeights(resolve('openai-community/gpt2'), 11);
    expect(ws[0]).toEqual({ name: 'transformer.h.11.attn.c_attn.weight', aliases: ['h.11.attn.c_attn.weight'] });
    expect(ws).toHaveLength(12);
    // The template itself is untouched.
    expect(resolve('openai-community/gpt2').layerWeights[0]!.name).toBe('transformer.h.${layer_index}.attn.c_attn.weight');
  });

  it('marks embeddings and the tied, optional lm_head as mergekit does', () => {
    const llama = resolve('meta-llama/Llama-3.2-1B');
    expect(llama.preWeights).toEqual([{ name: 'model.embed_tokens.weight', isEmbed: true }]);
    expect(llama.postWeights).toEqual([
      { name: 'model.norm.weight' },
      { name: 'lm_head.weight', isEmbed: true, optional: true, tiedNames: ['model.embed_tokens.weight'] },
    ]);
    // Gemma has no lm_head; Phi-3's is required and comes before the final norm.
    expect(resolve('google/gemma-2b').postWeights.map((w) => w.name)).toEqual(['model.norm.weight']);
    expect(resolve('microsoft/Phi-3-mini-4k-instruct').postWeights).toEqual([{ name: 'lm_head.weight', isEmbed: true }, { name: 'model.norm.weight' }]);
    const gpt2 = resolve('openai-community/gpt2');
    expect(gpt2.preWeights[0]).toEqual({ name: 'transformer.wte.weight', isEmbed: true, aliases: ['wte.weight'] });
    expect(gpt2.postWeights[2]).toEqual({ name: 'lm_head.weight', isEmbed: true, optional: true, tiedNames: ['transformer.wte.weight', 'wte.weight'] });
  });

  it('names the fused experts of Mixtral and Qwen3-MoE as transformers 5 holds them', () => {
    const mixtral = layerWeights(resolve('mistralai/Mixtral-8x7B-v0.1'), 31).map((w) => w.name);
    expect(mixtral.slice(-3)).toEqual(['model.layers.31.mlp.experts.gate_up_proj', 'model.layers.31.mlp.experts.down_proj', 'model.layers.31.mlp.gate.weight']);
    expect(mixtral.some((n) => n.includes('block_sparse_moe'))).toBe(false);
    const qwen = layerWeights(resolve('Qwen/Qwen3-30B-A3B'), 0).map((w) => w.name);
    expect(qwen.slice(1, 4)).toEqual(['model.layers.0.mlp.experts.down_proj', 'model.layers.0.mlp.experts.gate_up_proj', 'model.layers.0.mlp.gate.weight']);
  });

  it('keeps optional biases optional (granite, glm4, stablelm) and the rest required', () => {
    const granite = layerWeights(resolve('ibm-granite/granite-3.1-2b-instruct'), 2);
    expect(granite).toHaveLength(16);
    expect(granite.filter((w) => w.optional).map((w) => w.name.replace('model.layers.2.', ''))).toEqual([
      'self_attn.q_proj.bias',
      'self_attn.k_proj.bias',
      'self_attn.v_proj.bias',
      'self_attn.o_proj.bias',
      'mlp.gate_proj.bias',
      'mlp.up_proj.bias',
      'mlp.down_proj.bias',
    ]);
    expect(granite.filter((w) => !w.optional).every((w) => w.name.endsWith('.weight'))).toBe(true);
    expect(layerWeights(resolve('THUDM/GLM-4-9B-0414'), 0).filter((w) => w.optional)).toHaveLength(3);
    const stablelm = resolve('stabilityai/stablelm-2-1_6b');
    expect(layerWeights(stablelm, 0).filter((w) => w.optional).map((w) => w.name)).toEqual([
      'model.layers.0.self_attn.q_proj.bias',
      'model.layers.0.self_attn.k_proj.bias',
      'model.layers.0.self_attn.v_proj.bias',
    ]);
    expect(stablelm.postWeights.map((w) => w.name)).toEqual(['model.norm.weight', 'model.norm.bias', 'lm_head.weight']);
  });

  it('has each family\'s own heads: tied, untied-optional, required, or under another name', () => {
    // Cohere ties its head without naming the embeddings as a fallback; Gemma 3 falls back to them.
    expect(resolve('CohereForAI/c4ai-command-r-v01').postWeights[1]).toEqual({ name: 'lm_head.weight', isEmbed: true, optional: true });
    expect(resolve('CohereForAI/c4ai-command-r7b-12-2024').postWeights[1]).toEqual({ name: 'lm_head.weight', isEmbed: true, optional: true });
    expect(resolve('google/gemma-3-1b-it').postWeights[1]).toEqual({ name: 'lm_head.weight', isEmbed: true, optional: true, tiedNames: ['model.embed_tokens.weight'] });
    // StarCoder2 lists its head before the final norm.
    expect(resolve('bigcode/starcoder2-3b').postWeights.map((w) => w.name)).toEqual(['lm_head.weight', 'model.norm.bias', 'model.norm.weight']);
    expect(resolve('internlm/internlm2_5-7b-chat').postWeights[1]).toEqual({ name: 'output.weight', isEmbed: true, optional: true, tiedNames: ['model.tok_embeddings.weight'] });
    expect(resolve('tiiuae/falcon-40b').postWeights[2]).toEqual({ name: 'lm_head.weight', isEmbed: true });
    const neox = resolve('EleutherAI/pythia-160m');
    expect(neox.preWeights).toEqual([{ name: 'gpt_neox.embed_in.weight', isEmbed: true }]);
    expect(neox.postWeights[2]).toEqual({ name: 'embed_out.weight', isEmbed: true });
    expect(layerWeights(neox, 3).slice(-3).map((w) => w.name)).toEqual([
      'gpt_neox.layers.3.attention.bias',
      'gpt_neox.layers.3.attention.masked_bias',
      'gpt_neox.layers.3.attention.rotary_emb.inv_freq',
    ]);
    const exaone = resolve('LGAI-EXAONE/EXAONE-3.5-2.4B-Instruct');
    expect(exaone.preWeights[0]!.name).toBe('transformer.wte.weight');
    expect(layerWeights(exaone, 1)[4]!.name).toBe('transformer.h.1.attn.attention.out_proj.weight');
    const solar = resolveArchitecture({ architectures: ['SolarForCausalLM'], model_type: 'solar', num_hidden_layers: 64 }, 'c.json');
    expect(solar.postWeights[1]!.tiedNames).toEqual(['model.lm_head.weight']);
  });

  it('gives every class name one definition, except PhiForCausalLM', () => {
    const owners = new Map<string, string[]>();
    for (const def of ARCHITECTURES) for (const a of def.architectures) owners.set(a, [...(owners.get(a) ?? []), def.modelType]);
    expect([...owners].filter(([, types]) => types.length > 1)).toEqual([['PhiForCausalLM', ['phi', 'phi-msft']]]);
    expect(owners.size).toBe(46);
  });

  it('lists every weight of a model in merge order', () => {
    const gemma2 = resolve('google/gemma-2-2b');
    const all = allWeights(gemma2, 2).map((w) => w.name);
    expect(all).toHaveLength(1 + 2 * 11 + 2);
    expect(all[0]).toBe('model.embed_tokens.weight');
    expect(all[1]).toBe('model.layers.0.input_layernorm.weight');
    expect(all[12]).toBe('model.layers.1.input_layernorm.weight');
    expect(all.slice(-2)).toEqual(['model.norm.weight', 'lm_head.weight']);
  });
});

describe('layerOfTensor', () => {
  it('finds the layer of templated and other in-layer tensors', () => {
    const llama = resolve('meta-llama/Llama-3.2-1B');
    expect(layerOfTensor(llama, 'model.layers.12.mlp.down_proj.weight')).toBe(12);
    expect(layerOfTensor(llama, 'model.layers.0.self_attn.rotary_emb.inv_freq')).toBe(0);
    expect(layerOfTensor(llama, 'model.embed_tokens.weight')).toBeUndefined();
    expect(layerOfTensor(llama, 'model.norm.weight')).toBeUndefined();
    expect(layerOfTensor(llama, 'lm_head.weight')).toBeUndefined();
    expect(layerOfTensor(llama, 'model.layers.x.weight')).toBeUndefined();
  });

  it('finds layers under transformer.h (falcon, exaone) and gpt_neox.layers', () => {
    expect(layerOfTensor(resolve('tiiuae/falcon-40b'), 'transformer.h.59.ln_mlp.bias')).toBe(59);
    expect(layerOfTensor(resolve('LGAI-EXAONE/EXAONE-3.5-2.4B-Instruct'), 'transformer.h.2.mlp.c_fc_0.weight')).toBe(2);
    expect(layerOfTensor(resolve('EleutherAI/pythia-160m'), 'gpt_neox.layers.11.attention.masked_bias')).toBe(11);
    expect(layerOfTensor(resolve('EleutherAI/pythia-160m'), 'embed_out.weight')).toBeUndefined();
  });

  it('knows both gpt2 spellings', () => {
    const gpt2 = resolve('openai-community/gpt2');
    expect(layerOfTensor(gpt2, 'transformer.h.7.mlp.c_fc.bias')).toBe(7);
    expect(layerOfTensor(gpt2, 'h.10.ln_1.weight')).toBe(10);
    expect(layerOfTensor(gpt2, 'transformer.wpe.weight')).toBeUndefined();
  });

  it('inverts layerWeights for every family', () => {
    for (const def of ARCHITECTURES) {
      for (const w of layerWeights(def, 5)) expect(layerOfTensor(def, w.name)).toBe(5);
      for (const w of [...def.preWeights, ...def.postWeights]) expect(layerOfTensor(def, w.name)).toBeUndefined();
    }
  });
});

describe('vision-language families', () => {
  const config = (architecture: string, model_type: string, extra: Record<string, unknown>) => ({ architectures: [architecture], model_type, ...extra });

  it('reads Qwen2.5-VL\'s text layer count from text_config, or from a flat Hub config as transformers does', () => {
    const def = resolveArchitecture(config('Qwen2_5_VLForConditionalGeneration', 'qwen2_5_vl', {}), 'c.json');
    const [text, projector, vision] = architectureModules(def);
    expect(moduleNumLayers(def, text!, { text_config: { num_hidden_layers: 28 }, num_hidden_layers: 3 }, 'c.json')).toBe(28);
    expect(moduleNumLayers(def, text!, { num_hidden_layers: 28, vision_config: { depth: 32 } }, 'c.json')).toBe(28);
    expect(moduleNumLayers(def, projector!, {}, 'c.json')).toBe(2);
    expect(moduleNumLayers(def, vision!, { vision_config: { depth: 32 } }, 'c.json')).toBe(32);
    // Qwen2-VL's definition reads the top-level key (transformers 4's flat config).
    const qwen2 = resolveArchitecture(config('Qwen2VLForConditionalGeneration', 'qwen2_vl', {}), 'c.json');
    expect(moduleNumLayers(qwen2, architectureModules(qwen2)[0]!, { num_hidden_layers: 28 }, 'c.json')).toBe(28);
  });

  it('names each module\'s tensors as the Hub checkpoints store them', () => {
    const names = (architecture: string, type: string) => architectureModules(resolveArchitecture(config(architecture, type, {}), 'c.json'));
    const qwen25 = names('Qwen2_5_VLForConditionalGeneration', 'qwen2_5_vl');
    expect(qwen25.map((m) => m.name)).toEqual(['text_decoder', 'multi_modal_projector', 'vision_tower']);
    expect(qwen25[0]!.preWeights[0]).toEqual({ name: 'model.embed_tokens.weight', isEmbed: true });
    // The projector's two fixed layers list the same four tensors (no layer index), as mergekit's definition does.
    expect(qwen25[1]!.layerWeights.map((w) => w.name)).toEqual(['visual.merger.mlp.0.weight', 'visual.merger.mlp.0.bias', 'visual.merger.mlp.2.weight', 'visual.merger.mlp.2.bias']);
    const qwen3 = names('Qwen3VLForConditionalGeneration', 'qwen3_vl');
    expect(qwen3[0]!.postWeights[1]).toEqual({ name: 'lm_head.weight', isEmbed: true, optional: true, tiedNames: ['model.language_model.embed_tokens.weight'] });
    expect(qwen3[1]!.fixedLayers).toBe(3);
    const mistral3 = names('Mistral3ForConditionalGeneration', 'mistral3');
    expect(mistral3[0]!.postWeights[1]).toEqual({ name: 'language_model.lm_head.weight', isEmbed: true, optional: true, tiedNames: ['language_model.model.embed_tokens.weight'] });
    expect(mistral3[2]!.layerWeights[0]!.name).toBe('vision_tower.transformer.layers.${layer_index}.ffn_norm.weight');
    const llama4 = names('Llama4ForConditionalGeneration', 'llama4');
    expect(llama4.map((m) => m.name)).toEqual(['text_decoder', 'multi_modal_projector', 'vision_model']);
    expect(llama4[0]!.layerWeights.filter((w) => w.optional)).toHaveLength(9);
  });
});

describe('text families added from mergekit 0.1.5', () => {
  const def = (architecture: string, model_type: string) => resolveArchitecture({ architectures: [architecture], model_type }, 'c.json');

  it('tells a llama with a classification head from the causal llama by its class', () => {
    const cls = def('LlamaForSequenceClassification', 'llama');
    expect(cls.postWeights).toEqual([{ name: 'model.norm.weight' }, { name: 'score.weight' }, { name: 'score.bias', optional: true }]);
    expect(def('LlamaForCausalLM', 'llama').postWeights[1]!.name).toBe('lm_head.weight');
    // An unknown causal class of model_type llama still falls back to the causal definition.
    expect(def('LlamaForSomethingForCausalLM', 'llama').architectures).toContain('LlamaForCausalLM');
  });

  it('has each family\'s heads and layer-count keys', () => {
    expect(def('JAISLMHeadModel', 'jais').postWeights.map((w) => w.name)).toEqual(['transformer.ln_f.weight', 'transformer.ln_f.bias']);
    expect(def('JAISLMHeadModel', 'jais').numLayersKey).toBe('n_layer');
    expect(def('ChatGLMModel', 'chatglm').postWeights[1]).toEqual({ name: 'transformer.output_layer.weight', isEmbed: true });
    expect(def('MambaForCausalLM', 'mamba').postWeights[1]).toEqual({ name: 'lm_head.weight', isEmbed: true, optional: true, tiedNames: ['backbone.embeddings.weight'] });
    expect(def('Lfm2ForCausalLM', 'lfm2').postWeights).toEqual([{ name: 'lm_head.weight', isEmbed: true, optional: true }]);
    expect(def('GPTBigCodeForCausalLM', 'gpt_bigcode').numLayersKey).toBe('n_layer');
    expect(layerWeights(def('GraniteMoeHybridForCausalLM', 'granitemoehybrid'), 0).filter((w) => !w.optional).map((w) => w.name)).toContain(
      'model.layers.0.block_sparse_moe.router.layer.weight',
    );
  });
});
