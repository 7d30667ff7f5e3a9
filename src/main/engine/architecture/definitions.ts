/**
 * The model families Alloy can merge, as data. Tensor names, their order, and the `isEmbed`,
 * `optional`, `tiedNames` and `aliases` flags follow mergekit's JSON definitions
 * (mergekit/_data/architectures/*.json). The order matters: it is the order a merge plans tensors
 * in, and so which output shard each tensor lands in.
 */
import type { ArchitectureDef, WeightInfo } from './types';

/** The placeholder a layer template uses for the layer number. */
export const LAYER_INDEX = '${layer_index}';

type Flags = Omit<WeightInfo, 'name'>;

/** `[name, flags?]` rows, so a table reads like the list of tensors it is. */
type Row = string | [string, Flags];

function weights(rows: Row[]): WeightInfo[] {
  return rows.map((row) => (typeof row === 'string' ? { name: row } : { name: row[0], ...row[1] }));
}

/**
 * Layer templates `PREFIX.${layer_index}.SUFFIX`; with `aliasPrefix`, each also answers to
 * `ALIASPREFIX.${layer_index}.SUFFIX`.
 */
function layers(prefix: string, suffixes: string[], aliasPrefix?: string): WeightInfo[] {
  return suffixes.map((suffix) => ({
    name: `${prefix}.${LAYER_INDEX}.${suffix}`,
    ...(aliasPrefix !== undefined ? { aliases: [`${aliasPrefix}.${LAYER_INDEX}.${suffix}`] } : {}),
  }));
}

const EMBED_TOKENS = 'model.embed_tokens.weight';
/** lm_head in models that may tie it to the input embeddings. */
const TIED_LM_HEAD: Row = ['lm_head.weight', { isEmbed: true, optional: true, tiedNames: [EMBED_TOKENS] }];

/** llama's layer, also mistral's and gemma's. */
const LLAMA_LAYER = [
  'input_layernorm.weight',
  'self_attn.q_proj.weight',
  'self_attn.k_proj.weight',
  'self_attn.v_proj.weight',
  'self_attn.o_proj.weight',
  'post_attention_layernorm.weight',
  'mlp.up_proj.weight',
  'mlp.gate_proj.weight',
  'mlp.down_proj.weight',
];

/** A `model.layers.N` decoder as transformers lays most of them out: embeddings, layers, norm and head. */
function decoder(modelType: string, architectures: string[], layer: string[], post: Row[] = ['model.norm.weight', TIED_LM_HEAD]): ArchitectureDef {
  return {
    modelType,
    architectures,
    preWeights: weights([[EMBED_TOKENS, { isEmbed: true }]]),
    layerWeights: layers('model.layers', layer),
    postWeights: weights(post),
    numLayersKey: 'num_hidden_layers',
  };
}

const llama = decoder('llama', ['LlamaForCausalLM', 'LLaMaForCausalLM'], LLAMA_LAYER);

const mistral = decoder('mistral', ['MistralForCausalLM'], LLAMA_LAYER);

const qwen2 = decoder('qwen2', ['Qwen2ForCausalLM'], [
    'input_layernorm.weight',
    'mlp.down_proj.weight',
    'mlp.gate_proj.weight',
    'mlp.up_proj.weight',
    'post_attention_layernorm.weight',
    'self_attn.k_proj.bias',
    'self_attn.k_proj.weight',
    'self_attn.o_proj.weight',
    'self_attn.q_proj.bias',
    'self_attn.q_proj.weight',
    'self_attn.v_proj.bias',
    'self_attn.v_proj.weight',
  ]);

const qwen3 = decoder('qwen3', ['Qwen3ForCausalLM'], [
    'input_layernorm.weight',
    'mlp.down_proj.weight',
    'mlp.gate_proj.weight',
    'mlp.up_proj.weight',
    'post_attention_layernorm.weight',
    'self_attn.k_norm.weight',
    'self_attn.k_proj.weight',
    'self_attn.q_norm.weight',
    'self_attn.q_proj.weight',
    'self_attn.v_proj.weight',
    'self_attn.o_proj.weight',
  ]);

/** Gemma always ties its LM head to the embeddings: mergekit's definition has no lm_head at all. */
const gemma = decoder('gemma', ['GemmaForCausalLM'], LLAMA_LAYER, ['model.norm.weight']);

const gemma2 = decoder('gemma2', ['Gemma2ForCausalLM'], [
    'input_layernorm.weight',
    'self_attn.q_proj.weight',
    'self_attn.k_proj.weight',
    'self_attn.v_proj.weight',
    'self_attn.o_proj.weight',
    'post_attention_layernorm.weight',
    'pre_feedforward_layernorm.weight',
    'mlp.up_proj.weight',
    'mlp.gate_proj.weight',
    'mlp.down_proj.weight',
    'post_feedforward_layernorm.weight',
  ]);

/** Phi-3 keeps a separate, required lm_head, and mergekit lists it before the final norm. */
const phi3 = decoder('phi3', ['Phi3ForCausalLM'], [
    'input_layernorm.weight',
    'post_attention_layernorm.weight',
    'self_attn.o_proj.weight',
    'self_attn.qkv_proj.weight',
    'mlp.gate_up_proj.weight',
    'mlp.down_proj.weight',
  ], [['lm_head.weight', { isEmbed: true }], 'model.norm.weight']);

/** Phi-2 as transformers ships it (`model_type: phi`). */
const phi = decoder('phi', ['PhiForCausalLM'], [
    'input_layernorm.bias',
    'input_layernorm.weight',
    'self_attn.dense.bias',
    'self_attn.dense.weight',
    'self_attn.q_proj.bias',
    'self_attn.q_proj.weight',
    'self_attn.k_proj.bias',
    'self_attn.k_proj.weight',
    'self_attn.v_proj.bias',
    'self_attn.v_proj.weight',
    'mlp.fc1.bias',
    'mlp.fc1.weight',
    'mlp.fc2.bias',
    'mlp.fc2.weight',
  ], ['lm_head.bias', ['lm_head.weight', { isEmbed: true }], 'model.final_layernorm.bias', 'model.final_layernorm.weight']);

/** Phi-2's original remote-code checkpoints (`model_type: phi-msft`), same class name as `phi`. */
const phiMsft: ArchitectureDef = {
  modelType: 'phi-msft',
  architectures: ['PhiForCausalLM'],
  preWeights: weights([['transformer.embd.wte.weight', { isEmbed: true }]]),
  layerWeights: layers('transformer.h', [
    'ln.bias',
    'ln.weight',
    'mixer.out_proj.bias',
    'mixer.out_proj.weight',
    'mixer.Wqkv.bias',
    'mixer.Wqkv.weight',
    'mlp.fc1.bias',
    'mlp.fc1.weight',
    'mlp.fc2.bias',
    'mlp.fc2.weight',
  ]),
  postWeights: weights(['lm_head.linear.bias', ['lm_head.linear.weight', { isEmbed: true }], 'lm_head.ln.bias', 'lm_head.ln.weight']),
  numLayersKey: 'n_layer',
};

/** GPT-2 checkpoints exist with and without the `transformer.` prefix; both are accepted. */
const gpt2: ArchitectureDef = {
  modelType: 'gpt2',
  architectures: ['GPT2LMHeadModel'],
  preWeights: weights([
    ['transformer.wte.weight', { isEmbed: true, aliases: ['wte.weight'] }],
    ['transformer.wpe.weight', { aliases: ['wpe.weight'] }],
  ]),
  layerWeights: layers(
    'transformer.h',
    [
      'attn.c_attn.weight',
      'attn.c_attn.bias',
      'attn.c_proj.weight',
      'attn.c_proj.bias',
      'ln_1.weight',
      'ln_1.bias',
      'ln_2.weight',
      'ln_2.bias',
      'mlp.c_proj.weight',
      'mlp.c_proj.bias',
      'mlp.c_fc.weight',
      'mlp.c_fc.bias',
    ],
    'h',
  ),
  postWeights: weights([
    ['transformer.ln_f.weight', { aliases: ['ln_f.weight'] }],
    ['transformer.ln_f.bias', { aliases: ['ln_f.bias'] }],
    ['lm_head.weight', { isEmbed: true, optional: true, tiedNames: ['transformer.wte.weight', 'wte.weight'] }],
  ]),
  numLayersKey: 'n_layer',
};

/** Every definition, in no significant order: lookup is by class name, then by `model_type`. */
export const ARCHITECTURES: readonly ArchitectureDef[] = [llama, mistral, qwen2, qwen3, gemma, gemma2, phi3, phi, phiMsft, gpt2];
