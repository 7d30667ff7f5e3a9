/**
 * The model families Alloy can merge, as data. Tensor names, their order, and the `isEmbed`,
 * `optional`, `tiedNames` and `aliases` flags follow mergekit's JSON definitions
 * (mergekit/_data/architectures/*.json). The order matters: it is the order a merge plans tensors
 * in, and so which output shard each tensor lands in.
 */
import type { ArchitectureDef, ArchitectureModule, WeightInfo } from './types';

/** The placeholder a layer template uses for the layer number. */
export const LAYER_INDEX = '${layer_index}';

type Flags = Omit<WeightInfo, 'name'>;

/** `[name, flags?]` rows, so a table reads like the list of tensors it is. */
type Row = string | [string, Flags];

function weights(rows: Row[]): WeightInfo[] {
  return rows.map((row) => (typeof row === 'string' ? { name: row } : { name: row[0], ...row[1] }));
}

/**
 * Layer templates `PREFIX.${layer_index}.SUFFIX` (a row may carry flags, as `optional`); with
 * `aliasPrefix`, each also answers to `ALIASPREFIX.${layer_index}.SUFFIX`.
 */
function layers(prefix: string, suffixes: Row[], aliasPrefix?: string): WeightInfo[] {
  return weights(suffixes).map(({ name: suffix, ...flags }) => ({
    name: `${prefix}.${LAYER_INDEX}.${suffix}`,
    ...flags,
    ...(aliasPrefix !== undefined ? { aliases: [`${aliasPrefix}.${LAYER_INDEX}.${suffix}`] } : {}),
  }));
}

/** `[name, { optional: true }]`: a tensor some checkpoints of the family lack (a bias, say). */
function optional(name: string): Row {
  return [name, { optional: true }];
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
function decoder(modelType: string, architectures: string[], layer: Row[], post: Row[] = ['model.norm.weight', TIED_LM_HEAD]): ArchitectureDef {
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

/** Phi-2 as transformers ships it (`model_type: phi`). Its LM head's bias is one value per token: a 1-D vocabulary tensor. */
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
  ], [['lm_head.bias', { isEmbed: true }], ['lm_head.weight', { isEmbed: true }], 'model.final_layernorm.bias', 'model.final_layernorm.weight']);

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
  postWeights: weights([['lm_head.linear.bias', { isEmbed: true }], ['lm_head.linear.weight', { isEmbed: true }], 'lm_head.ln.bias', 'lm_head.ln.weight']),
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

/** lm_head that is optional but never read from the embeddings (Cohere ties it; mergekit lists no tied name). */
const OPTIONAL_LM_HEAD: Row = ['lm_head.weight', { isEmbed: true, optional: true }];
/** A required, untied lm_head. */
const LM_HEAD: Row = ['lm_head.weight', { isEmbed: true }];

/**
 * Mixtral as transformers 5 lays it out: each layer's experts fused into two 3-D tensors
 * (`gate_up_proj` [experts, 2·intermediate, hidden], `down_proj` [experts, hidden, intermediate])
 * and the router `mlp.gate`. Checkpoints in the older per-expert layout
 * (`block_sparse_moe.experts.N.w1.weight`) are converted on load, by mergekit and by Alloy
 * (`model/checkpoint-conversion.ts`).
 */
const mixtral = decoder('mixtral', ['MixtralForCausalLM'], [
    'input_layernorm.weight',
    'self_attn.q_proj.weight',
    'self_attn.k_proj.weight',
    'self_attn.v_proj.weight',
    'self_attn.o_proj.weight',
    'post_attention_layernorm.weight',
    'mlp.experts.gate_up_proj',
    'mlp.experts.down_proj',
    'mlp.gate.weight',
  ]);

/** Qwen3-MoE, with the same fused experts as Mixtral (per-expert checkpoints converted on load the same way). */
const qwen3Moe = decoder('qwen3_moe', ['Qwen3MoeForCausalLM'], [
    'input_layernorm.weight',
    'mlp.experts.down_proj',
    'mlp.experts.gate_up_proj',
    'mlp.gate.weight',
    'post_attention_layernorm.weight',
    'self_attn.k_norm.weight',
    'self_attn.k_proj.weight',
    'self_attn.q_norm.weight',
    'self_attn.q_proj.weight',
    'self_attn.v_proj.weight',
    'self_attn.o_proj.weight',
  ]);

/** Gemma 3's text-only model (`gemma3_text`, as gemma-3-1b ships); the multimodal Gemma3ForConditionalGeneration is not this. */
const gemma3 = decoder('gemma3_text', ['Gemma3ForCausalLM'], [
    'input_layernorm.weight',
    'self_attn.q_proj.weight',
    'self_attn.q_norm.weight',
    'self_attn.k_proj.weight',
    'self_attn.k_norm.weight',
    'self_attn.v_proj.weight',
    'self_attn.o_proj.weight',
    'post_attention_layernorm.weight',
    'pre_feedforward_layernorm.weight',
    'mlp.up_proj.weight',
    'mlp.gate_proj.weight',
    'mlp.down_proj.weight',
    'post_feedforward_layernorm.weight',
  ]);

/** Command-R: one norm per layer (attention and MLP run in parallel), optional q/k norms. */
const cohere = decoder('cohere', ['CohereForCausalLM'], [
    'input_layernorm.weight',
    'mlp.down_proj.weight',
    'mlp.gate_proj.weight',
    'mlp.up_proj.weight',
    'self_attn.q_norm.weight',
    'self_attn.q_proj.weight',
    'self_attn.k_norm.weight',
    'self_attn.k_proj.weight',
    'self_attn.v_proj.weight',
    'self_attn.o_proj.weight',
  ], ['model.norm.weight', OPTIONAL_LM_HEAD]);

const cohere2 = decoder('cohere2', ['Cohere2ForCausalLM'], [
    'self_attn.q_proj.weight',
    'self_attn.k_proj.weight',
    'self_attn.v_proj.weight',
    'self_attn.o_proj.weight',
    'mlp.gate_proj.weight',
    'mlp.up_proj.weight',
    'mlp.down_proj.weight',
    'input_layernorm.weight',
  ], ['model.norm.weight', OPTIONAL_LM_HEAD]);

/** StarCoder2: LayerNorms and projections with biases; lm_head listed before the final norm. */
const starcoder2 = decoder('starcoder2', ['Starcoder2ForCausalLM'], [
    'input_layernorm.bias',
    'input_layernorm.weight',
    'self_attn.q_proj.bias',
    'self_attn.q_proj.weight',
    'self_attn.k_proj.bias',
    'self_attn.k_proj.weight',
    'self_attn.v_proj.bias',
    'self_attn.v_proj.weight',
    'self_attn.o_proj.bias',
    'self_attn.o_proj.weight',
    'post_attention_layernorm.bias',
    'post_attention_layernorm.weight',
    'mlp.c_fc.bias',
    'mlp.c_fc.weight',
    'mlp.c_proj.bias',
    'mlp.c_proj.weight',
  ], [TIED_LM_HEAD, 'model.norm.bias', 'model.norm.weight']);

/** OLMo 2: norms after attention and MLP (no input norm), q/k norms. */
const olmo2 = decoder('olmo2', ['Olmo2ForCausalLM'], [
    'self_attn.q_proj.weight',
    'self_attn.q_norm.weight',
    'self_attn.k_proj.weight',
    'self_attn.k_norm.weight',
    'self_attn.v_proj.weight',
    'self_attn.o_proj.weight',
    'post_attention_layernorm.weight',
    'mlp.up_proj.weight',
    'mlp.gate_proj.weight',
    'mlp.down_proj.weight',
    'post_feedforward_layernorm.weight',
  ]);

/** IBM Granite: llama's tensors, every projection bias optional. */
const granite = decoder('granite', ['GraniteForCausalLM'], [
    'input_layernorm.weight',
    'self_attn.q_proj.weight',
    optional('self_attn.q_proj.bias'),
    'self_attn.k_proj.weight',
    optional('self_attn.k_proj.bias'),
    'self_attn.v_proj.weight',
    optional('self_attn.v_proj.bias'),
    'self_attn.o_proj.weight',
    optional('self_attn.o_proj.bias'),
    'post_attention_layernorm.weight',
    'mlp.gate_proj.weight',
    optional('mlp.gate_proj.bias'),
    'mlp.up_proj.weight',
    optional('mlp.up_proj.bias'),
    'mlp.down_proj.weight',
    optional('mlp.down_proj.bias'),
  ]);

/** GLM-4 (0414): fused gate_up_proj, four norms a layer, optional q/k/v biases. */
const glm4 = decoder('glm4', ['Glm4ForCausalLM'], [
    'input_layernorm.weight',
    'mlp.down_proj.weight',
    'mlp.gate_up_proj.weight',
    'post_attention_layernorm.weight',
    'post_mlp_layernorm.weight',
    'post_self_attn_layernorm.weight',
    'self_attn.q_proj.weight',
    optional('self_attn.q_proj.bias'),
    'self_attn.k_proj.weight',
    optional('self_attn.k_proj.bias'),
    'self_attn.v_proj.weight',
    optional('self_attn.v_proj.bias'),
    'self_attn.o_proj.weight',
  ]);

/** Arcee (AFM): llama without a gate projection. */
const arcee = decoder('arcee', ['ArceeForCausalLM'], [
    'input_layernorm.weight',
    'mlp.down_proj.weight',
    'mlp.up_proj.weight',
    'post_attention_layernorm.weight',
    'self_attn.k_proj.weight',
    'self_attn.o_proj.weight',
    'self_attn.q_proj.weight',
    'self_attn.v_proj.weight',
  ]);

/** Upstage's Solar (remote code). mergekit's lm_head falls back to `model.lm_head.weight`, not the embeddings. */
const solar = decoder('solar', ['SolarForCausalLM'], [
    'input_layernorm.weight',
    'self_attn.k_proj.weight',
    'self_attn.q_proj.weight',
    'self_attn.v_proj.weight',
    'self_attn.o_proj.weight',
    'post_attention_layernorm.weight',
    'mlp.gate_proj.weight',
    'mlp.up_proj.weight',
    'mlp.down_proj.weight',
  ], ['model.norm.weight', ['lm_head.weight', { isEmbed: true, optional: true, tiedNames: ['model.lm_head.weight'] }]]);

/** StableLM 2 as transformers ships it (`stablelm`): LayerNorms with biases, optional q/k/v biases. */
const stablelm = decoder('stablelm', ['StableLmForCausalLM'], [
    'input_layernorm.weight',
    'input_layernorm.bias',
    'mlp.down_proj.weight',
    'mlp.gate_proj.weight',
    'mlp.up_proj.weight',
    'post_attention_layernorm.weight',
    'post_attention_layernorm.bias',
    'self_attn.q_proj.weight',
    optional('self_attn.q_proj.bias'),
    'self_attn.k_proj.weight',
    optional('self_attn.k_proj.bias'),
    'self_attn.v_proj.weight',
    optional('self_attn.v_proj.bias'),
    'self_attn.o_proj.weight',
  ], ['model.norm.weight', 'model.norm.bias', LM_HEAD]);

/** The original StableLM remote-code checkpoints (`stablelm_epoch`, StableLM-3B-4E1T). Its final norm has no bias listed. */
const stablelmEpoch = decoder('stablelm_epoch', ['StableLMEpochForCausalLM'], [
    'input_layernorm.weight',
    'input_layernorm.bias',
    'self_attn.q_proj.weight',
    'self_attn.k_proj.weight',
    'self_attn.v_proj.weight',
    'self_attn.o_proj.weight',
    'post_attention_layernorm.weight',
    'post_attention_layernorm.bias',
    'mlp.up_proj.weight',
    'mlp.gate_proj.weight',
    'mlp.down_proj.weight',
  ], ['model.norm.weight', LM_HEAD]);

/** InternLM2 (remote code): fused wqkv, its own names, `output` as the LM head. */
const internlm2: ArchitectureDef = {
  modelType: 'internlm2',
  architectures: ['InternLM2ForCausalLM'],
  preWeights: weights([['model.tok_embeddings.weight', { isEmbed: true }]]),
  layerWeights: layers('model.layers', [
    'attention_norm.weight',
    'ffn_norm.weight',
    'attention.wqkv.weight',
    'attention.wo.weight',
    'feed_forward.w1.weight',
    'feed_forward.w2.weight',
    'feed_forward.w3.weight',
  ]),
  postWeights: weights(['model.norm.weight', ['output.weight', { isEmbed: true, optional: true, tiedNames: ['model.tok_embeddings.weight'] }]]),
  numLayersKey: 'num_hidden_layers',
};

/** EXAONE 3 in its checkpoint names (`transformer.h.N`), which transformers renames on load but mergekit reads as stored. */
const exaone: ArchitectureDef = {
  modelType: 'exaone',
  architectures: ['ExaoneForCausalLM'],
  preWeights: weights([['transformer.wte.weight', { isEmbed: true }]]),
  layerWeights: layers('transformer.h', [
    'ln_1.weight',
    'attn.attention.q_proj.weight',
    'attn.attention.k_proj.weight',
    'attn.attention.v_proj.weight',
    'attn.attention.out_proj.weight',
    'ln_2.weight',
    'mlp.c_fc_0.weight',
    'mlp.c_fc_1.weight',
    'mlp.c_proj.weight',
  ]),
  postWeights: weights(['transformer.ln_f.weight', LM_HEAD]),
  numLayersKey: 'num_hidden_layers',
  numLayersAliases: ['num_layers'],
};

/** Falcon with the new decoder layout (40B, 180B, Falcon-11B): separate attention and MLP norms, no linear biases. */
const falcon: ArchitectureDef = {
  modelType: 'falcon',
  architectures: ['FalconForCausalLM'],
  preWeights: weights([['transformer.word_embeddings.weight', { isEmbed: true }]]),
  layerWeights: layers('transformer.h', [
    'ln_attn.bias',
    'ln_attn.weight',
    'ln_mlp.bias',
    'ln_mlp.weight',
    'mlp.dense_4h_to_h.weight',
    'mlp.dense_h_to_4h.weight',
    'self_attention.dense.weight',
    'self_attention.query_key_value.weight',
  ]),
  postWeights: weights(['transformer.ln_f.weight', 'transformer.ln_f.bias', LM_HEAD]),
  numLayersKey: 'num_hidden_layers',
};

/**
 * GPT-NeoX (Pythia) as its checkpoints were saved: each layer also stores the attention mask
 * (`attention.bias`), `attention.masked_bias` and the rotary `inv_freq` buffers, and mergekit requires them.
 */
const gptNeox: ArchitectureDef = {
  modelType: 'gpt_neox',
  architectures: ['GPTNeoXForCausalLM'],
  preWeights: weights([['gpt_neox.embed_in.weight', { isEmbed: true }]]),
  layerWeights: layers('gpt_neox.layers', [
    'attention.dense.weight',
    'attention.dense.bias',
    'attention.query_key_value.weight',
    'attention.query_key_value.bias',
    'input_layernorm.weight',
    'input_layernorm.bias',
    'mlp.dense_4h_to_h.weight',
    'mlp.dense_4h_to_h.bias',
    'mlp.dense_h_to_4h.weight',
    'mlp.dense_h_to_4h.bias',
    'post_attention_layernorm.weight',
    'post_attention_layernorm.bias',
    'attention.bias',
    'attention.masked_bias',
    'attention.rotary_emb.inv_freq',
  ]),
  postWeights: weights(['gpt_neox.final_layer_norm.bias', 'gpt_neox.final_layer_norm.weight', ['embed_out.weight', { isEmbed: true }]]),
  numLayersKey: 'num_hidden_layers',
};

/**
 * Gemma 3 with vision (Gemma3ForConditionalGeneration, gemma-3-4b and up): three modules under the
 * Hub checkpoints' names. The text decoder is gemma3_text's under `language_model.`; the projector
 * has no layers; the vision tower is SigLIP's encoder under `vision_tower.vision_model.`.
 */
const GEMMA3_TEXT_MODULE: ArchitectureModule = {
  name: 'text_decoder',
  weightPrefix: 'language_model.',
  preWeights: gemma3.preWeights,
  layerWeights: gemma3.layerWeights,
  postWeights: gemma3.postWeights,
  numLayersKey: 'text_config.num_hidden_layers',
};
const gemma3Vision: ArchitectureDef = {
  modelType: 'gemma3',
  architectures: ['Gemma3ForConditionalGeneration'],
  ...prefixedModule(GEMMA3_TEXT_MODULE),
  numLayersKey: 'text_config.num_hidden_layers',
  modules: [
    GEMMA3_TEXT_MODULE,
    {
      name: 'multi_modal_projector',
      weightPrefix: 'multi_modal_projector.',
      preWeights: weights(['mm_input_projection_weight', 'mm_soft_emb_norm.weight']),
      layerWeights: [],
      postWeights: [],
      fixedLayers: 0,
    },
    {
      name: 'vision_tower',
      weightPrefix: 'vision_tower.vision_model.',
      preWeights: weights(['embeddings.patch_embedding.bias', 'embeddings.patch_embedding.weight', 'embeddings.position_embedding.weight']),
      layerWeights: layers('encoder.layers', [
        'layer_norm1.bias',
        'layer_norm1.weight',
        'layer_norm2.bias',
        'layer_norm2.weight',
        'mlp.fc1.bias',
        'mlp.fc1.weight',
        'mlp.fc2.bias',
        'mlp.fc2.weight',
        'self_attn.k_proj.bias',
        'self_attn.k_proj.weight',
        'self_attn.out_proj.bias',
        'self_attn.out_proj.weight',
        'self_attn.q_proj.bias',
        'self_attn.q_proj.weight',
        'self_attn.v_proj.bias',
        'self_attn.v_proj.weight',
      ]),
      postWeights: weights(['post_layernorm.bias', 'post_layernorm.weight']),
      numLayersKey: 'vision_config.num_hidden_layers',
    },
  ],
};

/** GPT-BigCode (StarCoder, SantaCoder): GPT-2's tensors with multi-query attention; the head tied to `transformer.wte`. */
const gptBigcode: ArchitectureDef = {
  modelType: 'gpt_bigcode',
  architectures: ['GPTBigCodeForCausalLM'],
  preWeights: weights([['transformer.wte.weight', { isEmbed: true }], 'transformer.wpe.weight']),
  layerWeights: layers('transformer.h', [
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
  ]),
  postWeights: weights(['transformer.ln_f.weight', 'transformer.ln_f.bias', ['lm_head.weight', { isEmbed: true, optional: true, tiedNames: ['transformer.wte.weight'] }]]),
  numLayersKey: 'n_layer',
};

/** Baichuan (remote code): llama with q, k, v fused into `W_pack`; a required head. */
const baichuan = decoder('baichuan', ['BaichuanForCausalLM'], [
  'input_layernorm.weight',
  'self_attn.W_pack.weight',
  'self_attn.o_proj.weight',
  'post_attention_layernorm.weight',
  'mlp.gate_proj.weight',
  'mlp.down_proj.weight',
  'mlp.up_proj.weight',
], ['model.norm.weight', LM_HEAD]);

/** Qwen (v1, remote code QWenLMHeadModel): GPT-2-like names, fused c_attn with a bias, a two-input w1/w2 MLP. */
const qwen1: ArchitectureDef = {
  modelType: 'qwen',
  architectures: ['QWenLMHeadModel'],
  preWeights: weights([['transformer.wte.weight', { isEmbed: true }]]),
  layerWeights: layers('transformer.h', [
    'attn.c_attn.bias',
    'attn.c_attn.weight',
    'attn.c_proj.weight',
    'ln_1.weight',
    'ln_2.weight',
    'mlp.c_proj.weight',
    'mlp.w1.weight',
    'mlp.w2.weight',
  ]),
  postWeights: weights(['transformer.ln_f.weight', LM_HEAD]),
  numLayersKey: 'num_hidden_layers',
};

/** JAIS (remote code): GPT-2 names with a SwiGLU MLP (c_fc, c_fc2) and stored ALiBi slopes; no LM head (tied). */
const jais: ArchitectureDef = {
  modelType: 'jais',
  architectures: ['JAISLMHeadModel'],
  preWeights: weights([['transformer.wte.weight', { isEmbed: true }], 'transformer.relative_pe.slopes']),
  layerWeights: layers('transformer.h', [
    'attn.c_attn.weight',
    'attn.c_attn.bias',
    'attn.c_proj.weight',
    'attn.c_proj.bias',
    'ln_1.weight',
    'ln_1.bias',
    'ln_2.weight',
    'ln_2.bias',
    'mlp.c_fc.weight',
    'mlp.c_fc.bias',
    'mlp.c_fc2.weight',
    'mlp.c_fc2.bias',
    'mlp.c_proj.weight',
    'mlp.c_proj.bias',
  ]),
  postWeights: weights(['transformer.ln_f.weight', 'transformer.ln_f.bias']),
  numLayersKey: 'n_layer',
};

/**
 * ChatGLM (remote code ChatGLMModel: ChatGLM2/3, GLM-4-9B-chat): fused query_key_value with a bias, the
 * rotary inv_freq stored, `transformer.output_layer` as the head. mergekit reads the layer count from
 * `num_hidden_layers`, as Alloy does (these checkpoints' configs also name it `num_layers`).
 */
const chatglm: ArchitectureDef = {
  modelType: 'chatglm',
  architectures: ['ChatGLMModel'],
  preWeights: weights([['transformer.embedding.word_embeddings.weight', { isEmbed: true }], 'transformer.rotary_pos_emb.inv_freq']),
  layerWeights: layers('transformer.encoder.layers', [
    'input_layernorm.weight',
    'mlp.dense_4h_to_h.weight',
    'mlp.dense_h_to_4h.weight',
    'post_attention_layernorm.weight',
    'self_attention.dense.weight',
    'self_attention.query_key_value.bias',
    'self_attention.query_key_value.weight',
  ]),
  postWeights: weights(['transformer.encoder.final_layernorm.weight', ['transformer.output_layer.weight', { isEmbed: true }]]),
  numLayersKey: 'num_hidden_layers',
};

/** Apertus: llama-like with q/k norms, no gate projection, and the xIELU activation's parameters stored per layer. */
const apertus = decoder('apertus', ['ApertusForCausalLM'], [
  'attention_layernorm.weight',
  'feedforward_layernorm.weight',
  'mlp.act_fn.alpha_n',
  'mlp.act_fn.alpha_p',
  'mlp.act_fn.beta',
  'mlp.act_fn.eps',
  'mlp.down_proj.weight',
  'mlp.up_proj.weight',
  'self_attn.k_norm.weight',
  'self_attn.k_proj.weight',
  'self_attn.q_norm.weight',
  'self_attn.q_proj.weight',
  'self_attn.v_proj.weight',
  'self_attn.o_proj.weight',
]);

/**
 * LFM2: convolution and attention layers in one template (each kind's tensors optional); the final norm
 * is `model.embedding_norm`, listed first; the head optional with no tied fallback.
 */
const lfm2: ArchitectureDef = {
  modelType: 'lfm2',
  architectures: ['Lfm2ForCausalLM'],
  preWeights: weights([[EMBED_TOKENS, { isEmbed: true }], 'model.embedding_norm.weight']),
  layerWeights: layers('model.layers', [
    'feed_forward.w1.weight',
    'feed_forward.w2.weight',
    'feed_forward.w3.weight',
    'ffn_norm.weight',
    'operator_norm.weight',
    optional('conv.conv.weight'),
    optional('conv.in_proj.weight'),
    optional('conv.out_proj.weight'),
    optional('self_attn.k_layernorm.weight'),
    optional('self_attn.k_proj.weight'),
    optional('self_attn.out_proj.weight'),
    optional('self_attn.q_layernorm.weight'),
    optional('self_attn.q_proj.weight'),
    optional('self_attn.v_proj.weight'),
  ]),
  postWeights: weights([OPTIONAL_LM_HEAD]),
  numLayersKey: 'num_hidden_layers',
};

/** Phi-3-small (remote code): LayerNorms and linears with biases, fused query_key_value; the head before the final norm. */
const phi3Small = decoder('phi3small', ['Phi3SmallForCausalLM'], [
  'input_layernorm.weight',
  'input_layernorm.bias',
  'post_attention_layernorm.weight',
  'post_attention_layernorm.bias',
  'self_attn.dense.weight',
  'self_attn.dense.bias',
  'self_attn.query_key_value.weight',
  'self_attn.query_key_value.bias',
  'mlp.up_proj.weight',
  'mlp.up_proj.bias',
  'mlp.down_proj.weight',
  'mlp.down_proj.bias',
], [TIED_LM_HEAD, 'model.final_layernorm.weight', 'model.final_layernorm.bias']);

/**
 * GLM-4.5 (glm4_moe) as mergekit 0.1.5 defines it: the dense MLP only. Its mixture-of-experts layers
 * (after `first_k_dense_replace`) lack `mlp.down_proj.weight`, so mergekit, and Alloy, refuse them.
 */
const glm4Moe = decoder('glm4_moe', ['Glm4MoeForCausalLM'], [
  'input_layernorm.weight',
  'mlp.down_proj.weight',
  'mlp.gate_proj.weight',
  'mlp.up_proj.weight',
  'post_attention_layernorm.weight',
  optional('self_attn.q_norm.weight'),
  optional('self_attn.k_norm.weight'),
  'self_attn.q_proj.weight',
  optional('self_attn.q_proj.bias'),
  'self_attn.k_proj.weight',
  optional('self_attn.k_proj.bias'),
  'self_attn.v_proj.weight',
  optional('self_attn.v_proj.bias'),
  'self_attn.o_proj.weight',
]);

/**
 * Granite 4.0 hybrid (granitemoehybrid): Mamba-2 and attention layers in one template (each kind's
 * tensors optional), experts and a shared MLP in every layer, under the checkpoints' names
 * (`block_sparse_moe.input_linear`, `output_linear`, `router.layer`).
 */
const graniteMoeHybrid = decoder('granitemoehybrid', ['GraniteMoeHybridForCausalLM'], [
  'input_layernorm.weight',
  'shared_mlp.input_linear.weight',
  'shared_mlp.output_linear.weight',
  'block_sparse_moe.input_linear.weight',
  'block_sparse_moe.router.layer.weight',
  'block_sparse_moe.output_linear.weight',
  'post_attention_layernorm.weight',
  optional('self_attn.k_proj.weight'),
  optional('self_attn.o_proj.weight'),
  optional('self_attn.q_proj.weight'),
  optional('self_attn.v_proj.weight'),
  optional('mamba.A_log'),
  optional('mamba.conv1d.bias'),
  optional('mamba.conv1d.weight'),
  optional('mamba.D'),
  optional('mamba.dt_bias'),
  optional('mamba.in_proj.weight'),
  optional('mamba.norm.weight'),
  optional('mamba.out_proj.weight'),
]);

/** Mamba (state-space, no attention): `backbone.` names, the head tied to the embeddings. */
const mamba: ArchitectureDef = {
  modelType: 'mamba',
  architectures: ['MambaForCausalLM'],
  preWeights: weights([['backbone.embeddings.weight', { isEmbed: true }]]),
  layerWeights: layers('backbone.layers', [
    'mixer.A_log',
    'mixer.conv1d.bias',
    'mixer.conv1d.weight',
    'mixer.D',
    'mixer.dt_proj.bias',
    'mixer.dt_proj.weight',
    'mixer.in_proj.weight',
    'mixer.out_proj.weight',
    'mixer.x_proj.weight',
    'norm.weight',
  ]),
  postWeights: weights(['backbone.norm_f.weight', ['lm_head.weight', { isEmbed: true, optional: true, tiedNames: ['backbone.embeddings.weight'] }]]),
  numLayersKey: 'num_hidden_layers',
};

/** A llama with a classification head (`score`, not a vocabulary tensor) instead of lm_head. */
const llamaSequenceClassification = decoder('llama', ['LlamaForSequenceClassification'], LLAMA_LAYER, ['model.norm.weight', 'score.weight', optional('score.bias')]);

/**
 * A multimodal definition: the text decoder first (its tensors, prefixed, are the definition's own, as
 * for Gemma 3), then the other modules in mergekit's order.
 */
function multimodal(modelType: string, architectures: string[], modules: ArchitectureModule[]): ArchitectureDef {
  const text = modules[0]!;
  return {
    modelType,
    architectures,
    ...prefixedModule(text),
    numLayersKey: text.numLayersKey!,
    ...(text.numLayersAliases ? { numLayersAliases: text.numLayersAliases } : {}),
    modules,
  };
}

/** A module with no layers of its own (a projector): `fixedLayers` 0. */
function projector(weightPrefix: string | undefined, pre: Row[]): ArchitectureModule {
  return { name: 'multi_modal_projector', ...(weightPrefix !== undefined ? { weightPrefix } : {}), preWeights: weights(pre), layerWeights: [], postWeights: [], fixedLayers: 0 };
}

/** Qwen2's decoder layer (q/k/v biases), as Qwen2-VL and Qwen2.5-VL store it. */
const QWEN2_LAYER: Row[] = [
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
];

/**
 * Qwen2-VL and Qwen2.5-VL under the Hub checkpoints' names (`model.layers`, `visual.`; transformers 5
 * renames them on load). The projector's two "layers" are the same four tensors (mergekit's definition
 * lists `visual.merger.mlp.0/2` without a layer index, with two fixed layers); each is written once.
 */
function qwenVl(modelType: string, architecture: string, textLayersKey: string, mergerNorm: Row[], visionLayer: Row[]): ArchitectureDef {
  return multimodal(modelType, [architecture], [
    {
      name: 'text_decoder',
      preWeights: weights([[EMBED_TOKENS, { isEmbed: true }]]),
      layerWeights: layers('model.layers', QWEN2_LAYER),
      postWeights: weights(['model.norm.weight', TIED_LM_HEAD]),
      numLayersKey: textLayersKey,
      // Qwen2.5-VL's config.json on the Hub is flat: transformers moves num_hidden_layers into text_config.
      ...(textLayersKey !== 'num_hidden_layers' ? { numLayersAliases: ['num_hidden_layers'] } : {}),
    },
    {
      name: 'multi_modal_projector',
      preWeights: weights(mergerNorm),
      layerWeights: weights(['visual.merger.mlp.0.weight', 'visual.merger.mlp.0.bias', 'visual.merger.mlp.2.weight', 'visual.merger.mlp.2.bias']),
      postWeights: [],
      fixedLayers: 2,
    },
    {
      name: 'vision_tower',
      preWeights: weights(['visual.patch_embed.proj.weight']),
      layerWeights: layers('visual.blocks', visionLayer),
      postWeights: [],
      numLayersKey: 'vision_config.depth',
    },
  ]);
}

const qwen2Vl = qwenVl('qwen2_vl', 'Qwen2VLForConditionalGeneration', 'num_hidden_layers', ['visual.merger.ln_q.weight', 'visual.merger.ln_q.bias'], [
  'norm1.weight',
  'norm1.bias',
  'norm2.weight',
  'norm2.bias',
  'attn.qkv.weight',
  'attn.qkv.bias',
  'attn.proj.weight',
  'attn.proj.bias',
  'mlp.fc1.weight',
  'mlp.fc1.bias',
  'mlp.fc2.weight',
  'mlp.fc2.bias',
]);

const qwen25Vl = qwenVl('qwen2_5_vl', 'Qwen2_5_VLForConditionalGeneration', 'text_config.num_hidden_layers', ['visual.merger.ln_q.weight'], [
  'attn.proj.bias',
  'attn.proj.weight',
  'attn.qkv.bias',
  'attn.qkv.weight',
  'mlp.down_proj.bias',
  'mlp.down_proj.weight',
  'mlp.gate_proj.bias',
  'mlp.gate_proj.weight',
  'mlp.up_proj.bias',
  'mlp.up_proj.weight',
  'norm1.weight',
  'norm2.weight',
]);

/** Qwen3-VL (dense and MoE) under transformers 5's names, which its checkpoints use: three deepstack mergers as the projector's fixed layers. */
function qwen3Vl(modelType: string, architecture: string, textLayer: Row[]): ArchitectureDef {
  const text = 'model.language_model.';
  return multimodal(modelType, [architecture], [
    {
      name: 'text_decoder',
      preWeights: weights([[`${text}embed_tokens.weight`, { isEmbed: true }]]),
      layerWeights: layers(`${text}layers`, textLayer),
      postWeights: weights([`${text}norm.weight`, ['lm_head.weight', { isEmbed: true, optional: true, tiedNames: [`${text}embed_tokens.weight`] }]]),
      numLayersKey: 'text_config.num_hidden_layers',
    },
    {
      name: 'multi_modal_projector',
      preWeights: weights(['norm.weight', 'norm.bias', 'linear_fc1.weight', 'linear_fc1.bias', 'linear_fc2.weight', 'linear_fc2.bias'].map((n) => `model.visual.merger.${n}`)),
      layerWeights: layers('model.visual.deepstack_merger_list', ['norm.weight', 'norm.bias', 'linear_fc1.weight', 'linear_fc1.bias', 'linear_fc2.weight', 'linear_fc2.bias']),
      postWeights: [],
      fixedLayers: 3,
    },
    {
      name: 'vision_tower',
      preWeights: weights(['model.visual.patch_embed.proj.weight', 'model.visual.patch_embed.proj.bias', 'model.visual.pos_embed.weight']),
      layerWeights: layers('model.visual.blocks', [
        'norm1.weight',
        'norm1.bias',
        'norm2.weight',
        'norm2.bias',
        'attn.qkv.weight',
        'attn.qkv.bias',
        'attn.proj.weight',
        'attn.proj.bias',
        'mlp.linear_fc1.weight',
        'mlp.linear_fc1.bias',
        'mlp.linear_fc2.weight',
        'mlp.linear_fc2.bias',
      ]),
      postWeights: [],
      numLayersKey: 'vision_config.depth',
    },
  ]);
}

const qwen3VlDense = qwen3Vl('qwen3_vl', 'Qwen3VLForConditionalGeneration', [
  'input_layernorm.weight',
  'mlp.down_proj.weight',
  'mlp.gate_proj.weight',
  'mlp.up_proj.weight',
  'post_attention_layernorm.weight',
  'self_attn.k_norm.weight',
  'self_attn.k_proj.weight',
  'self_attn.o_proj.weight',
  'self_attn.q_norm.weight',
  'self_attn.q_proj.weight',
  'self_attn.v_proj.weight',
]);

const qwen3VlMoe = qwen3Vl('qwen3_vl_moe', 'Qwen3VLMoeForConditionalGeneration', [
  'input_layernorm.weight',
  'mlp.experts.down_proj',
  'mlp.experts.gate_up_proj',
  'mlp.gate.weight',
  'post_attention_layernorm.weight',
  'self_attn.k_norm.weight',
  'self_attn.k_proj.weight',
  'self_attn.q_norm.weight',
  'self_attn.q_proj.weight',
  'self_attn.v_proj.weight',
  'self_attn.o_proj.weight',
]);

/** Mistral 3 (Mistral Small 3.1 and later): a mistral decoder under `language_model.`, a Pixtral vision tower. */
const mistral3: ArchitectureDef = multimodal('mistral3', ['Mistral3ForConditionalGeneration'], [
  { name: 'text_decoder', weightPrefix: 'language_model.', preWeights: mistral.preWeights, layerWeights: mistral.layerWeights, postWeights: mistral.postWeights, numLayersKey: 'text_config.num_hidden_layers' },
  projector('multi_modal_projector.', ['linear_1.weight', 'linear_2.weight', 'norm.weight', 'patch_merger.merging_layer.weight']),
  {
    name: 'vision_tower',
    weightPrefix: 'vision_tower.',
    preWeights: weights(['patch_conv.weight', 'ln_pre.weight']),
    layerWeights: layers('transformer.layers', [
      'ffn_norm.weight',
      'feed_forward.down_proj.weight',
      'feed_forward.gate_proj.weight',
      'feed_forward.up_proj.weight',
      'attention_norm.weight',
      'attention.k_proj.weight',
      'attention.o_proj.weight',
      'attention.q_proj.weight',
      'attention.v_proj.weight',
    ]),
    postWeights: [],
    numLayersKey: 'vision_config.num_hidden_layers',
  },
]);

/** Llama 4: dense and mixture-of-experts layers in one template (each kind's tensors optional), a vision model and a one-tensor projector. */
const llama4: ArchitectureDef = multimodal('llama4', ['Llama4ForConditionalGeneration'], [
  {
    name: 'text_decoder',
    weightPrefix: 'language_model.',
    preWeights: weights([[EMBED_TOKENS, { isEmbed: true }]]),
    layerWeights: layers('model.layers', [
      'input_layernorm.weight',
      'self_attn.q_proj.weight',
      'self_attn.k_proj.weight',
      'self_attn.v_proj.weight',
      'self_attn.o_proj.weight',
      'post_attention_layernorm.weight',
      optional('feed_forward.shared_expert.down_proj.weight'),
      optional('feed_forward.shared_expert.gate_proj.weight'),
      optional('feed_forward.shared_expert.up_proj.weight'),
      optional('feed_forward.experts.down_proj'),
      optional('feed_forward.experts.gate_up_proj'),
      optional('feed_forward.router.weight'),
      optional('feed_forward.down_proj.weight'),
      optional('feed_forward.gate_proj.weight'),
      optional('feed_forward.up_proj.weight'),
    ]),
    postWeights: weights(['model.norm.weight', TIED_LM_HEAD]),
    numLayersKey: 'text_config.num_hidden_layers',
  },
  projector('multi_modal_projector.', ['linear_1.weight']),
  {
    name: 'vision_model',
    weightPrefix: 'vision_model.',
    preWeights: weights(['class_embedding', 'patch_embedding.linear.weight', 'positional_embedding_vlm', 'layernorm_pre.bias', 'layernorm_pre.weight']),
    layerWeights: layers('model.layers', [
      'input_layernorm.weight',
      'input_layernorm.bias',
      'mlp.fc1.weight',
      'mlp.fc1.bias',
      'mlp.fc2.weight',
      'mlp.fc2.bias',
      'post_attention_layernorm.weight',
      'post_attention_layernorm.bias',
      'self_attn.k_proj.weight',
      'self_attn.k_proj.bias',
      'self_attn.o_proj.weight',
      'self_attn.o_proj.bias',
      'self_attn.q_proj.weight',
      'self_attn.q_proj.bias',
      'self_attn.v_proj.weight',
      'self_attn.v_proj.bias',
    ]),
    postWeights: weights(['layernorm_post.weight', 'layernorm_post.bias', 'vision_adapter.mlp.fc1.weight', 'vision_adapter.mlp.fc2.weight']),
    numLayersKey: 'vision_config.num_hidden_layers',
  },
]);

/** A module's tensors under their checkpoint names: the prefix put before each name, alias and tied name (mergekit's _prefix_weight). */
export function prefixedModule(module: ArchitectureModule): Pick<ArchitectureModule, 'preWeights' | 'layerWeights' | 'postWeights'> {
  const prefix = module.weightPrefix ?? '';
  const one = (w: WeightInfo): WeightInfo => ({
    ...w,
    name: prefix + w.name,
    ...(w.aliases ? { aliases: w.aliases.map((a) => prefix + a) } : {}),
    ...(w.tiedNames ? { tiedNames: w.tiedNames.map((t) => prefix + t) } : {}),
  });
  return { preWeights: module.preWeights.map(one), layerWeights: module.layerWeights.map(one), postWeights: module.postWeights.map(one) };
}

/** Every definition, in no significant order: lookup is by class name, then by `model_type`. */
export const ARCHITECTURES: readonly ArchitectureDef[] = [
  llama, mistral, qwen2, qwen3, gemma, gemma2, phi3, phi, phiMsft, gpt2,
  mixtral, qwen3Moe, gemma3, cohere, cohere2, starcoder2, olmo2, granite, glm4, arcee, solar,
  stablelm, stablelmEpoch, internlm2, exaone, falcon, gptNeox, gemma3Vision,
  qwen2Vl, qwen25Vl, qwen3VlDense, qwen3VlMoe, mistral3, llama4,
  gptBigcode, baichuan, qwen1, jais, chatglm, apertus, lfm2, phi3Small, glm4Moe, graniteMoeHybrid, mamba, llamaSequenceClassification,
];
