"""Builds tiny models and runs real mergekit on recipes, writing the goldens Alloy's tests compare
against (test/fixtures/golden). Needs Python with `pip install mergekit`; CI only reads the output.

    python tools/oracle/make_goldens.py            # from the repository root
"""
import json
import os
import shutil
import subprocess
import sys

import torch
from safetensors.torch import save_file

ROOT = os.path.join("test", "fixtures", "golden")
MODELS = os.path.join(ROOT, "models")
RECIPES = os.path.join(ROOT, "recipes")
OUTPUTS = os.path.join(ROOT, "outputs")
MERGEKIT = os.environ.get("MERGEKIT_YAML", shutil.which("mergekit-yaml") or "mergekit-yaml")

HIDDEN, INTER, HEADS, KV, VOCAB = 16, 32, 4, 2, 48


def llama_names(layers, qwen=False, vocab=VOCAB):
    names = [("model.embed_tokens.weight", (vocab, HIDDEN))]
    kv = HIDDEN // HEADS * KV
    for i in range(layers):
        p = f"model.layers.{i}"
        names += [
            (f"{p}.input_layernorm.weight", (HIDDEN,)),
            (f"{p}.self_attn.q_proj.weight", (HIDDEN, HIDDEN)),
            (f"{p}.self_attn.k_proj.weight", (kv, HIDDEN)),
            (f"{p}.self_attn.v_proj.weight", (kv, HIDDEN)),
            (f"{p}.self_attn.o_proj.weight", (HIDDEN, HIDDEN)),
            (f"{p}.post_attention_layernorm.weight", (HIDDEN,)),
            (f"{p}.mlp.up_proj.weight", (INTER, HIDDEN)),
            (f"{p}.mlp.gate_proj.weight", (INTER, HIDDEN)),
            (f"{p}.mlp.down_proj.weight", (HIDDEN, INTER)),
        ]
        if qwen:
            names += [(f"{p}.self_attn.q_proj.bias", (HIDDEN,)), (f"{p}.self_attn.k_proj.bias", (kv,)), (f"{p}.self_attn.v_proj.bias", (kv,))]
    names += [("model.norm.weight", (HIDDEN,)), ("lm_head.weight", (vocab, HIDDEN))]
    return names


def config(layers, dtype, qwen=False, vocab=VOCAB):
    c = {
        "architectures": ["Qwen2ForCausalLM" if qwen else "LlamaForCausalLM"],
        "model_type": "qwen2" if qwen else "llama",
        "hidden_size": HIDDEN, "intermediate_size": INTER, "num_hidden_layers": layers,
        "num_attention_heads": HEADS, "num_key_value_heads": KV, "vocab_size": vocab,
        "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "hidden_act": "silu",
        "tie_word_embeddings": False, "torch_dtype": dtype,
    }
    return c


def make_model(name, seed, base_seed=None, layers=4, dtype=torch.float32, qwen=False, delta=0.05, vocab=VOCAB):
    out = os.path.join(MODELS, name)
    os.makedirs(out, exist_ok=True)
    tensors = {}
    for i, (tname, shape) in enumerate(llama_names(layers, qwen, vocab)):
        g = torch.Generator().manual_seed((base_seed if base_seed is not None else seed) * 1000 + i)
        w = torch.randn(shape, generator=g) * 0.2
        if tname.endswith("norm.weight"):
            w = w * 0.1 + 1
        if base_seed is not None:
            g2 = torch.Generator().manual_seed(seed * 7919 + i)
            w = w + torch.randn(shape, generator=g2) * delta
        tensors[tname] = w.to(dtype).contiguous()
    names = list(tensors)
    half = len(names) // 2
    shards = [names[:half], names[half:]]
    weight_map = {}
    for k, group in enumerate(shards):
        file = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file({n: tensors[n] for n in group}, os.path.join(out, file), metadata={"format": "pt"})
        weight_map.update({n: file for n in group})
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config(layers, "float32" if dtype == torch.float32 else "bfloat16", qwen, vocab), f, indent=2)


def models():
    make_model("llama-base", 1)
    for s in range(2, 9):
        make_model(f"llama-ft{s - 1}", s, base_seed=1)
    make_model("llama-bf16-base", 1, dtype=torch.bfloat16)
    make_model("llama-bf16-ft1", 2, base_seed=1, dtype=torch.bfloat16)
    make_model("llama-bf16-ft2", 3, base_seed=1, dtype=torch.bfloat16)
    make_model("llama6-a", 11, layers=6)
    make_model("llama6-b", 12, base_seed=11, layers=6)
    make_model("qwen-base", 21, qwen=True)
    make_model("qwen-ft1", 22, base_seed=21, qwen=True)
    make_model("qwen-ft2", 23, base_seed=21, qwen=True)
    # Near-identical to the base, so nearswap at a small t swaps a real share of weights.
    make_model("llama-near", 31, base_seed=1, delta=0.0005)
    extra_models()


def save_tokenizer(out, tokens, added):
    """A WordLevel tokenizer with `tokens` in id order, then `added` special tokens, saved by transformers."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(tokens)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    if added:
        fast.add_special_tokens({"additional_special_tokens": added})
    fast.save_pretrained(out)


TOK_BASE = ["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(37)]
# The chat model: w8 and w9 gone, w3 and w4 swapped, one new word; two new special tokens after.
TOK_CHAT = ["<unk>", "<s>", "</s>"] + [f"w{i}" for i in (0, 1, 2, 4, 3, 5, 6, 7)] + [f"w{i}" for i in range(10, 37)] + ["chatword"]


def extra_models():
    """Models added after the first goldens; made by --only runs too when missing."""
    if not os.path.exists(os.path.join(MODELS, "llama-tok-base")):
        make_model("llama-tok-base", 41, base_seed=1, vocab=len(TOK_BASE))
        save_tokenizer(os.path.join(MODELS, "llama-tok-base"), TOK_BASE, [])
        make_model("llama-tok-chat", 42, base_seed=1, vocab=len(TOK_CHAT) + 2)
        save_tokenizer(os.path.join(MODELS, "llama-tok-chat"), TOK_CHAT, ["<|im_start|>", "<|im_end|>"])
    if not os.path.exists(os.path.join(MODELS, "llama-vocab56")):
        # A fine-tune with 8 more token rows, as a model with added tokens has.
        make_model("llama-vocab56", 9, base_seed=1, vocab=56)
    arch_models()
    phi_tok_models()
    for name in PER_EXPERT_MODELS:
        if not os.path.exists(os.path.join(MODELS, name.replace("-ft", "-experts-ft"))):
            per_expert_model(name)


# Fused MoE models saved again in the per-expert layout most Hub checkpoints have (as transformers 4 wrote
# them): same weights, one tensor per expert. For each family, the name of gate, up and down in one expert,
# and Mixtral's block_sparse_moe (renamed mlp by transformers on load).
PER_EXPERT_MODELS = {
    "mixtral-ft1": (("w1", "w3", "w2"), ".block_sparse_moe."),
    "qwen3moe-ft1": (("gate_proj", "up_proj", "down_proj"), ".mlp."),
    "qwen3moe-ft2": (("gate_proj", "up_proj", "down_proj"), ".mlp."),
}


def per_expert_model(name):
    from safetensors.torch import load_file

    (gate, up, down), block = PER_EXPERT_MODELS[name]
    src = os.path.join(MODELS, name)
    out = os.path.join(MODELS, name.replace("-ft", "-experts-ft"))
    os.makedirs(out, exist_ok=True)
    tensors = {}
    for tname, t in load_file(os.path.join(src, "model.safetensors")).items():
        prefix = tname.split(".mlp.")[0] + block
        if tname.endswith(".mlp.experts.gate_up_proj"):
            half = t.shape[1] // 2
            for e in range(t.shape[0]):
                tensors[f"{prefix}experts.{e}.{gate}.weight"] = t[e, :half].contiguous()
                tensors[f"{prefix}experts.{e}.{up}.weight"] = t[e, half:].contiguous()
        elif tname.endswith(".mlp.experts.down_proj"):
            for e in range(t.shape[0]):
                tensors[f"{prefix}experts.{e}.{down}.weight"] = t[e].contiguous()
        elif tname.endswith(".mlp.gate.weight"):
            tensors[prefix + "gate.weight"] = t
        else:
            tensors[tname] = t
    save_file(tensors, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    shutil.copy(os.path.join(src, "config.json"), os.path.join(out, "config.json"))


# Tiny models of other families: (config.json fields beyond TINY, None to leave one out; seed; with a base model for slerp/ties).
# Their tensor names and shapes are those of transformers' own model for the config (as save_pretrained
# writes them), so mergekit and Alloy both read what a real checkpoint of that family holds.
TINY = {"hidden_size": HIDDEN, "intermediate_size": INTER, "num_hidden_layers": 2, "num_attention_heads": HEADS, "num_key_value_heads": KV,
        "head_dim": HIDDEN // HEADS, "vocab_size": VOCAB, "max_position_embeddings": 64, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
        "tie_word_embeddings": False, "torch_dtype": "float32"}
ARCH_MODELS = {
    "mixtral": ({"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 2}, 101, True),
    "qwen3moe": ({"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 8,
                  "decoder_sparse_step": 1, "mlp_only_layers": []}, 111, True),
    # Gemma 3 ties its LM head (lm_head.weight is absent): the optional head is skipped by both.
    "gemma3": ({"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "tie_word_embeddings": True, "sliding_window": 16,
                "query_pre_attn_scalar": 4}, 121, True),
    "cohere": ({"architectures": ["CohereForCausalLM"], "model_type": "cohere", "tie_word_embeddings": True, "use_qk_norm": True}, 131, False),
    "cohere2": ({"architectures": ["Cohere2ForCausalLM"], "model_type": "cohere2", "tie_word_embeddings": True, "sliding_window": 16}, 141, False),
    "starcoder2": ({"architectures": ["Starcoder2ForCausalLM"], "model_type": "starcoder2", "use_bias": True}, 151, False),
    "olmo2": ({"architectures": ["Olmo2ForCausalLM"], "model_type": "olmo2"}, 161, False),
    "granite": ({"architectures": ["GraniteForCausalLM"], "model_type": "granite", "attention_bias": True, "mlp_bias": False}, 171, False),
    "glm4": ({"architectures": ["Glm4ForCausalLM"], "model_type": "glm4", "attention_bias": True}, 181, False),
    "arcee": ({"architectures": ["ArceeForCausalLM"], "model_type": "arcee"}, 191, False),
    "stablelm": ({"architectures": ["StableLmForCausalLM"], "model_type": "stablelm", "use_qkv_bias": True}, 201, False),
    "exaone": ({"architectures": ["ExaoneForCausalLM"], "model_type": "exaone"}, 211, False),
    "falcon": ({"architectures": ["FalconForCausalLM"], "model_type": "falcon", "new_decoder_architecture": True, "num_kv_heads": KV, "bias": False,
                "parallel_attn": True, "ffn_hidden_size": INTER, "head_dim": None, "num_key_value_heads": None, "intermediate_size": None}, 221, False),
    "gptneox": ({"architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox", "use_parallel_residual": True, "rotary_pct": 0.5}, 231, False),
    "gptbigcode": ({"architectures": ["GPTBigCodeForCausalLM"], "model_type": "gpt_bigcode", "n_embd": HIDDEN, "n_layer": 2, "n_head": HEADS, "n_inner": INTER,
                    "n_positions": 64, "multi_query": True, "num_hidden_layers": None, "intermediate_size": None, "num_key_value_heads": None, "head_dim": None}, 351, False),
    "apertus": ({"architectures": ["ApertusForCausalLM"], "model_type": "apertus"}, 361, False),
    # LFM2: a short-convolution layer and an attention layer; the head tied to the embeddings (absent).
    "lfm2": ({"architectures": ["Lfm2ForCausalLM"], "model_type": "lfm2", "layer_types": ["conv", "full_attention"], "conv_L_cache": 3, "block_ff_dim": INTER,
              "block_auto_adjust_ff_dim": False, "tie_word_embeddings": True}, 371, False),
    # mergekit's glm4_moe definition lists only the dense MLP: the tiny model's layers are all dense (first_k_dense_replace).
    "glm4moe": ({"architectures": ["Glm4MoeForCausalLM"], "model_type": "glm4_moe", "first_k_dense_replace": 2, "n_routed_experts": 4, "num_experts_per_tok": 2,
                 "moe_intermediate_size": 8, "use_qk_norm": True, "attention_bias": True, "partial_rotary_factor": 0.5}, 381, False),
    # Granite 4.0 hybrid: a Mamba-2 layer and an attention layer, each with experts and a shared MLP (checkpoint names, see GRANITE_HYBRID_NAMES).
    "granitehybrid": ({"architectures": ["GraniteMoeHybridForCausalLM"], "model_type": "granitemoehybrid", "layer_types": ["mamba", "attention"], "num_local_experts": 4,
                       "num_experts_per_tok": 2, "shared_intermediate_size": INTER, "mamba_n_heads": 4, "mamba_d_head": 8, "mamba_d_state": 8, "mamba_n_groups": 1,
                       "mamba_expand": 2, "mamba_d_conv": 4}, 391, False),
    "mamba": ({"architectures": ["MambaForCausalLM"], "model_type": "mamba", "state_size": 8, "expand": 2, "conv_kernel": 4, "time_step_rank": 4}, 401, False),
    "llama-seqcls": ({"architectures": ["LlamaForSequenceClassification"], "model_type": "llama", "num_labels": 3}, 411, False),
}
# Granite 4.0's checkpoints keep the MoE names transformers 5 renames on load.
GRANITE_HYBRID_NAMES = [(".block_sparse_moe.router.weight", ".block_sparse_moe.router.layer.weight"),
                        (".block_sparse_moe.experts.gate_up_proj", ".block_sparse_moe.input_linear.weight"),
                        (".block_sparse_moe.experts.down_proj", ".block_sparse_moe.output_linear.weight")]


def remote_shapes(pre, layer, post, layers=2):
    """A remote-code family's tensors, written out: `layer` names carry {i}."""
    return pre + [(n.format(i=i), shape) for i in range(layers) for n, shape in layer] + post


_QKV = 3 * HIDDEN
# Remote-code families whose tensors are not a llama's: (config.json fields beyond TINY, seed, tensors as the Hub's checkpoints name them).
REMOTE_SHAPED = {
    "baichuan": ({"architectures": ["BaichuanForCausalLM"], "model_type": "baichuan"}, 421, remote_shapes(
        [("model.embed_tokens.weight", (VOCAB, HIDDEN))],
        [("model.layers.{i}.input_layernorm.weight", (HIDDEN,)), ("model.layers.{i}.self_attn.W_pack.weight", (_QKV, HIDDEN)),
         ("model.layers.{i}.self_attn.o_proj.weight", (HIDDEN, HIDDEN)), ("model.layers.{i}.post_attention_layernorm.weight", (HIDDEN,)),
         ("model.layers.{i}.mlp.gate_proj.weight", (INTER, HIDDEN)), ("model.layers.{i}.mlp.down_proj.weight", (HIDDEN, INTER)),
         ("model.layers.{i}.mlp.up_proj.weight", (INTER, HIDDEN))],
        [("model.norm.weight", (HIDDEN,)), ("lm_head.weight", (VOCAB, HIDDEN))])),
    "qwen1": ({"architectures": ["QWenLMHeadModel"], "model_type": "qwen"}, 431, remote_shapes(
        [("transformer.wte.weight", (VOCAB, HIDDEN))],
        [("transformer.h.{i}.ln_1.weight", (HIDDEN,)), ("transformer.h.{i}.attn.c_attn.weight", (_QKV, HIDDEN)), ("transformer.h.{i}.attn.c_attn.bias", (_QKV,)),
         ("transformer.h.{i}.attn.c_proj.weight", (HIDDEN, HIDDEN)), ("transformer.h.{i}.ln_2.weight", (HIDDEN,)),
         ("transformer.h.{i}.mlp.w1.weight", (INTER // 2, HIDDEN)), ("transformer.h.{i}.mlp.w2.weight", (INTER // 2, HIDDEN)),
         ("transformer.h.{i}.mlp.c_proj.weight", (HIDDEN, INTER // 2))],
        [("transformer.ln_f.weight", (HIDDEN,)), ("lm_head.weight", (VOCAB, HIDDEN))])),
    # JAIS: GPT-2's Conv1D layout ([in, out]), a SwiGLU MLP (c_fc, c_fc2), ALiBi slopes as a stored tensor; the head is tied (no lm_head).
    "jais": ({"architectures": ["JAISLMHeadModel"], "model_type": "jais", "n_layer": 2, "num_hidden_layers": None}, 441, remote_shapes(
        [("transformer.wte.weight", (VOCAB, HIDDEN)), ("transformer.relative_pe.slopes", (HEADS,))],
        [("transformer.h.{i}.attn.c_attn.weight", (HIDDEN, _QKV)), ("transformer.h.{i}.attn.c_attn.bias", (_QKV,)),
         ("transformer.h.{i}.attn.c_proj.weight", (HIDDEN, HIDDEN)), ("transformer.h.{i}.attn.c_proj.bias", (HIDDEN,)),
         ("transformer.h.{i}.ln_1.weight", (HIDDEN,)), ("transformer.h.{i}.ln_1.bias", (HIDDEN,)), ("transformer.h.{i}.ln_2.weight", (HIDDEN,)),
         ("transformer.h.{i}.ln_2.bias", (HIDDEN,)), ("transformer.h.{i}.mlp.c_fc.weight", (HIDDEN, INTER)), ("transformer.h.{i}.mlp.c_fc.bias", (INTER,)),
         ("transformer.h.{i}.mlp.c_fc2.weight", (HIDDEN, INTER)), ("transformer.h.{i}.mlp.c_fc2.bias", (INTER,)),
         ("transformer.h.{i}.mlp.c_proj.weight", (INTER, HIDDEN)), ("transformer.h.{i}.mlp.c_proj.bias", (HIDDEN,))],
        [("transformer.ln_f.weight", (HIDDEN,)), ("transformer.ln_f.bias", (HIDDEN,))])),
    # ChatGLM (2, 3, GLM-4-9B-chat): multi-query fused query_key_value with a bias, SwiGLU dense_h_to_4h, its own output_layer.
    "chatglm": ({"architectures": ["ChatGLMModel"], "model_type": "chatglm"}, 451, remote_shapes(
        [("transformer.embedding.word_embeddings.weight", (VOCAB, HIDDEN)), ("transformer.rotary_pos_emb.inv_freq", (HIDDEN // HEADS // 4,))],
        [("transformer.encoder.layers.{i}.input_layernorm.weight", (HIDDEN,)), ("transformer.encoder.layers.{i}.mlp.dense_4h_to_h.weight", (HIDDEN, INTER)),
         ("transformer.encoder.layers.{i}.mlp.dense_h_to_4h.weight", (2 * INTER, HIDDEN)), ("transformer.encoder.layers.{i}.post_attention_layernorm.weight", (HIDDEN,)),
         ("transformer.encoder.layers.{i}.self_attention.dense.weight", (HIDDEN, HIDDEN)),
         ("transformer.encoder.layers.{i}.self_attention.query_key_value.bias", (HIDDEN + 2 * HIDDEN // HEADS * KV,)),
         ("transformer.encoder.layers.{i}.self_attention.query_key_value.weight", (HIDDEN + 2 * HIDDEN // HEADS * KV, HIDDEN))],
        [("transformer.encoder.final_layernorm.weight", (HIDDEN,)), ("transformer.output_layer.weight", (VOCAB, HIDDEN))])),
    # Phi-3-small: LayerNorms and linears with biases, fused query_key_value, gegelu up_proj.
    "phi3small": ({"architectures": ["Phi3SmallForCausalLM"], "model_type": "phi3small"}, 461, remote_shapes(
        [("model.embed_tokens.weight", (VOCAB, HIDDEN))],
        [(f"model.layers.{{i}}.{n}", shape) for n, shape in (
            ("input_layernorm.weight", (HIDDEN,)), ("input_layernorm.bias", (HIDDEN,)), ("post_attention_layernorm.weight", (HIDDEN,)),
            ("post_attention_layernorm.bias", (HIDDEN,)), ("self_attn.dense.weight", (HIDDEN, HIDDEN)), ("self_attn.dense.bias", (HIDDEN,)),
            ("self_attn.query_key_value.weight", (HIDDEN + 2 * HIDDEN // HEADS * KV, HIDDEN)), ("self_attn.query_key_value.bias", (HIDDEN + 2 * HIDDEN // HEADS * KV,)),
            ("mlp.up_proj.weight", (2 * INTER, HIDDEN)), ("mlp.up_proj.bias", (2 * INTER,)), ("mlp.down_proj.weight", (HIDDEN, INTER)), ("mlp.down_proj.bias", (HIDDEN,)))],
        [("lm_head.weight", (VOCAB, HIDDEN)), ("model.final_layernorm.weight", (HIDDEN,)), ("model.final_layernorm.bias", (HIDDEN,))])),
}
# Remote-code families (no class in transformers): a llama's tensors renamed, and a configuration_*.py
# of a few lines so that AutoConfig loads the config (mergekit runs with --trust-remote-code).
REMOTE_MODELS = {
    "solar": ({"architectures": ["SolarForCausalLM"], "model_type": "solar"}, 241, []),
    "stablelm-epoch": ({"architectures": ["StableLMEpochForCausalLM"], "model_type": "stablelm_epoch", "norm_eps": 1e-5}, 251,
                       [(".rms_norm_bias", "")]),
    "internlm2": ({"architectures": ["InternLM2ForCausalLM"], "model_type": "internlm2", "bias": False}, 261,
                  [("model.embed_tokens.", "model.tok_embeddings."), ("lm_head.", "output."), (".input_layernorm.", ".attention_norm."),
                   (".post_attention_layernorm.", ".ffn_norm."), (".self_attn.o_proj.", ".attention.wo."), (".mlp.gate_proj.", ".feed_forward.w1."),
                   (".mlp.down_proj.", ".feed_forward.w2."), (".mlp.up_proj.", ".feed_forward.w3.")]),
}
REMOTE_CONFIG = """from transformers import PretrainedConfig


class TinyConfig(PretrainedConfig):
    model_type = "{model_type}"
"""
# EXAONE checkpoints keep their original names, which transformers renames on load (conversion_mapping.py).
EXAONE_NAMES = [("model.embed_tokens.", "transformer.wte."), ("model.layers.", "transformer.h."), ("model.norm.", "transformer.ln_f."),
                (".self_attn.o_proj.", ".attn.attention.out_proj."), (".self_attn.", ".attn.attention."), (".input_layernorm.", ".ln_1."),
                (".post_attention_layernorm.", ".ln_2."), (".mlp.gate_proj.", ".mlp.c_fc_0."), (".mlp.up_proj.", ".mlp.c_fc_1."), (".mlp.down_proj.", ".mlp.c_proj.")]


def arch_tensor_shapes(fields):
    """The tensors transformers' model for this config holds, in its order, as a checkpoint stores them."""
    from transformers import AutoConfig, AutoModelForCausalLM

    kwargs = {k: v for k, v in fields.items() if k not in ("architectures", "model_type", "torch_dtype")}
    auto = AutoModelForCausalLM
    if fields["architectures"][0].endswith("ForSequenceClassification"):
        from transformers import AutoModelForSequenceClassification as auto
    with torch.device("meta"):
        model = auto.from_config(AutoConfig.for_model(fields["model_type"], **kwargs))
    shapes = [(name, tuple(t.shape)) for name, t in model.state_dict().items()]
    if fields["model_type"] == "granitemoehybrid":
        renamed = []
        for n, shape in shapes:
            for old, new in GRANITE_HYBRID_NAMES:
                n = n.replace(old, new)
            renamed.append((n, shape))
        shapes = renamed
    if fields.get("tie_word_embeddings"):
        shapes = [(n, s) for n, s in shapes if n != "lm_head.weight"]
    if fields["model_type"] == "exaone":
        renamed = []
        for n, s in shapes:
            for old, new in EXAONE_NAMES:
                n = n.replace(old, new)
            renamed.append((n, s))
        shapes = renamed
    if fields["model_type"] == "gpt_neox":
        # transformers calls the head lm_head; GPT-NeoX checkpoints (Pythia) store it as embed_out.
        shapes = [("embed_out.weight" if n == "lm_head.weight" else n, s) for n, s in shapes]
        # Pythia's checkpoints also store each layer's causal mask, masked_bias and rotary inv_freq buffers.
        layers = fields["num_hidden_layers"]
        extra = [(f"gpt_neox.layers.{i}.attention.{n}", s) for i in range(layers) for n, s in (("bias", (1, 1, 8, 8)), ("masked_bias", ()), ("rotary_emb.inv_freq", (1,)))]
        shapes += extra
    return shapes


def remote_tensor_shapes(arch, fields):
    """A llama's tensors under the remote family's names (InternLM2 fuses q, k, v into wqkv)."""
    llama = {**fields, "architectures": ["LlamaForCausalLM"], "model_type": "llama"}
    shapes = []
    for n, shape in arch_tensor_shapes(llama):
        if arch == "internlm2" and (".k_proj." in n or ".v_proj." in n):
            continue
        if arch == "internlm2" and ".q_proj." in n:
            n, shape = n.replace(".self_attn.q_proj.", ".attention.wqkv."), (shape[0] + 2 * HIDDEN // HEADS * KV, shape[1])
        for old, new in REMOTE_MODELS[arch][2]:
            n = n.replace(old, new)
        shapes.append((n, shape))
        if arch == "stablelm-epoch" and n.endswith("layernorm.weight"):
            shapes.append((n[: -len("weight")] + "bias", shape))
    return shapes


def buffer_value(name, shape):
    if name.endswith("attention.bias"):
        return torch.tril(torch.ones(shape))
    if name.endswith("masked_bias"):
        return torch.tensor(-1e9)
    return torch.tensor([1.0])


def make_arch_model(name, fields, seed, base_seed=None, shapes=None):
    out = os.path.join(MODELS, name)
    os.makedirs(out, exist_ok=True)
    tensors = {}
    for i, (tname, shape) in enumerate(shapes or arch_tensor_shapes(fields)):
        if tname.endswith(("attention.bias", "masked_bias", "inv_freq")) and "gpt_neox" in tname:
            tensors[tname] = buffer_value(tname, shape)
            continue
        g = torch.Generator().manual_seed((base_seed if base_seed is not None else seed) * 1000 + i)
        w = torch.randn(shape, generator=g) * 0.2
        if "norm" in tname or ".ln_" in tname:
            w = w * 0.1 + (0 if tname.endswith("bias") else 1)
        if base_seed is not None:
            g2 = torch.Generator().manual_seed(seed * 7919 + i)
            w = w + torch.randn(shape, generator=g2) * 0.05
        tensors[tname] = w.contiguous()
    save_file(tensors, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(fields, f, indent=2)


# Gemma 3 with vision (Gemma3ForConditionalGeneration): three modules (text decoder, projector, SigLIP vision
# tower). Shapes come from transformers' model for the config; names are the Hub checkpoints' (google/gemma-3-4b-it:
# language_model.model.*, vision_tower.vision_model.*, multi_modal_projector.*), which transformers renames on load.
GEMMA3VL = {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3", "mm_tokens_per_image": 4,
            "boi_token_index": 3, "eoi_token_index": 4, "image_token_index": 5, "torch_dtype": "float32",
            "text_config": {**{k: v for k, v in TINY.items() if k not in ("torch_dtype",)}, "model_type": "gemma3_text", "tie_word_embeddings": True,
                            "sliding_window": 16, "query_pre_attn_scalar": 4},
            "vision_config": {"model_type": "siglip_vision_model", "hidden_size": HIDDEN, "intermediate_size": INTER, "num_hidden_layers": 2,
                              "num_attention_heads": HEADS, "image_size": 28, "patch_size": 14, "vision_use_head": False}}
GEMMA3VL_NAMES = [("model.language_model.", "language_model.model."), ("model.vision_tower.", "vision_tower.vision_model."),
                  ("model.multi_modal_projector.", "multi_modal_projector.")]


def gemma3vl_shapes():
    from transformers import AutoConfig, Gemma3ForConditionalGeneration

    kwargs = {k: v for k, v in GEMMA3VL.items() if k not in ("architectures", "model_type", "torch_dtype")}
    with torch.device("meta"):
        model = Gemma3ForConditionalGeneration(AutoConfig.for_model("gemma3", **kwargs))
    shapes = []
    for n, t in model.state_dict().items():
        if n == "lm_head.weight":
            continue  # tied to the embeddings, as the Hub's checkpoints leave it out
        for old, new in GEMMA3VL_NAMES:
            if n.startswith(old):
                n = new + n[len(old):]
        shapes.append((n, tuple(t.shape)))
    return shapes


def gemma3vl_models():
    if os.path.exists(os.path.join(MODELS, "gemma3vl-ft1")):
        return
    shapes = gemma3vl_shapes()
    make_arch_model("gemma3vl-base", GEMMA3VL, 271, shapes=shapes)
    make_arch_model("gemma3vl-ft1", GEMMA3VL, 272, base_seed=271, shapes=shapes)
    make_arch_model("gemma3vl-ft2", GEMMA3VL, 273, base_seed=271, shapes=shapes)


# Other vision-language families, as tiny models: (config.json as the Hub's checkpoints write it, the transformers
# class, renames from transformers 5's state_dict names to the checkpoints' names, seed). Qwen2-VL and Qwen2.5-VL
# configs are flat (the text model's keys at the top, transformers moves them into text_config on load).
_VL_TEXT = {k: v for k, v in TINY.items() if k != "torch_dtype"}
_QWEN_VISION = {"depth": 2, "hidden_size": HIDDEN, "num_heads": 2, "patch_size": 2, "spatial_merge_size": 2, "temporal_patch_size": 2, "in_channels": 3}
_QWEN3_VISION = {**_QWEN_VISION, "depth": 3, "intermediate_size": INTER, "out_hidden_size": HIDDEN, "num_position_embeddings": 16, "deepstack_visual_indexes": [0, 1, 2]}
_QWEN_NAMES = [("model.language_model.", "model."), ("model.visual.", "visual.")]
VL_MODELS = {
    "qwen2vl": ({"architectures": ["Qwen2VLForConditionalGeneration"], "model_type": "qwen2_vl", **_VL_TEXT, "rope_scaling": {"type": "mrope", "mrope_section": [1, 1]},
                 "vision_config": {**_QWEN_VISION, "embed_dim": HIDDEN, "mlp_ratio": 2}}, "Qwen2VLForConditionalGeneration", _QWEN_NAMES, 291),
    "qwen25vl": ({"architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl", **_VL_TEXT, "rope_scaling": {"type": "mrope", "mrope_section": [1, 1]},
                  "vision_config": {**_QWEN_VISION, "intermediate_size": INTER, "out_hidden_size": HIDDEN, "fullatt_block_indexes": [1], "window_size": 8}},
                 "Qwen2_5_VLForConditionalGeneration", _QWEN_NAMES, 301),
    "qwen3vl": ({"architectures": ["Qwen3VLForConditionalGeneration"], "model_type": "qwen3_vl",
                 "text_config": {**_VL_TEXT, "model_type": "qwen3_vl_text", "rope_scaling": {"rope_type": "default", "mrope_section": [1, 1]}},
                 "vision_config": {**_QWEN3_VISION, "model_type": "qwen3_vl"}}, "Qwen3VLForConditionalGeneration", [], 311),
    "qwen3vlmoe": ({"architectures": ["Qwen3VLMoeForConditionalGeneration"], "model_type": "qwen3_vl_moe",
                    "text_config": {**_VL_TEXT, "model_type": "qwen3_vl_moe_text", "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 8,
                                    "decoder_sparse_step": 1, "mlp_only_layers": [], "rope_scaling": {"rope_type": "default", "mrope_section": [1, 1]}},
                    "vision_config": {**_QWEN3_VISION, "model_type": "qwen3_vl_moe"}}, "Qwen3VLMoeForConditionalGeneration", [], 321),
    "mistral3": ({"architectures": ["Mistral3ForConditionalGeneration"], "model_type": "mistral3", "spatial_merge_size": 2,
                  "text_config": {**_VL_TEXT, "model_type": "mistral"},
                  "vision_config": {"model_type": "pixtral", "hidden_size": HIDDEN, "intermediate_size": INTER, "num_hidden_layers": 2, "num_attention_heads": 2,
                                    "head_dim": 8, "image_size": 28, "patch_size": 14}}, "Mistral3ForConditionalGeneration",
                 [("model.language_model.", "language_model.model."), ("model.vision_tower.", "vision_tower."),
                  ("model.multi_modal_projector.", "multi_modal_projector."), ("lm_head.", "language_model.lm_head.")], 331),
    # Layer 1 is a mixture of experts (fused experts, router, shared expert), layer 0 a dense MLP.
    "llama4": ({"architectures": ["Llama4ForConditionalGeneration"], "model_type": "llama4",
                "text_config": {**_VL_TEXT, "model_type": "llama4_text", "intermediate_size_mlp": INTER, "num_local_experts": 2, "num_experts_per_tok": 1,
                                "interleave_moe_layer_step": 2, "attention_chunk_size": 16, "no_rope_layers": [1, 1]},
                "vision_config": {"model_type": "llama4_vision_model", "hidden_size": HIDDEN, "intermediate_size": INTER, "num_hidden_layers": 2,
                                  "num_attention_heads": 2, "image_size": 28, "patch_size": 14, "vision_output_dim": HIDDEN, "projector_input_dim": HIDDEN,
                                  "projector_output_dim": HIDDEN, "pixel_shuffle_ratio": 0.5}}, "Llama4ForConditionalGeneration", [], 341),
}


def vl_shapes(fields, cls, renames):
    import transformers
    from transformers import AutoConfig

    kwargs = {k: v for k, v in fields.items() if k not in ("architectures", "model_type", "torch_dtype")}
    with torch.device("meta"):
        model = getattr(transformers, cls)(AutoConfig.for_model(fields["model_type"], **kwargs))
    shapes = []
    for n, t in model.state_dict().items():
        for old, new in renames:
            if n.startswith(old):
                n = new + n[len(old):]
                break
        shapes.append((n, tuple(t.shape)))
    return shapes


def vl_models():
    for arch, (fields, cls, renames, seed) in VL_MODELS.items():
        if os.path.exists(os.path.join(MODELS, f"{arch}-ft1")):
            continue
        fields = {**fields, "torch_dtype": "float32"}
        shapes = vl_shapes(fields, cls, renames)
        make_arch_model(f"{arch}-ft1", fields, seed + 1, base_seed=seed, shapes=shapes)
        make_arch_model(f"{arch}-ft2", fields, seed + 2, base_seed=seed, shapes=shapes)


def arch_models():
    for arch, (extra, seed, with_base) in ARCH_MODELS.items():
        if os.path.exists(os.path.join(MODELS, f"{arch}-ft1")):
            continue
        fields = {k: v for k, v in {**TINY, **extra}.items() if v is not None}
        if arch == "exaone":
            # EXAONE's config.json names the layer count num_layers (transformers maps it to num_hidden_layers).
            fields["num_layers"] = fields.pop("num_hidden_layers")
        if with_base:
            make_arch_model(f"{arch}-base", fields, seed)
        make_arch_model(f"{arch}-ft1", fields, seed + 1, base_seed=seed)
        make_arch_model(f"{arch}-ft2", fields, seed + 2, base_seed=seed)
    for arch, (extra, seed, shapes) in REMOTE_SHAPED.items():
        if os.path.exists(os.path.join(MODELS, f"{arch}-ft1")):
            continue
        fields = {k: v for k, v in {**TINY, **extra, "auto_map": {"AutoConfig": "configuration_tiny.TinyConfig"}}.items() if v is not None}
        for k, s in ((1, seed + 1), (2, seed + 2)):
            make_arch_model(f"{arch}-ft{k}", fields, s, base_seed=seed, shapes=shapes)
            with open(os.path.join(MODELS, f"{arch}-ft{k}", "configuration_tiny.py"), "w") as f:
                f.write(REMOTE_CONFIG.format(model_type=extra["model_type"]))
    for arch, (extra, seed, _) in REMOTE_MODELS.items():
        if os.path.exists(os.path.join(MODELS, f"{arch}-ft1")):
            continue
        fields = {**TINY, **extra, "auto_map": {"AutoConfig": "configuration_tiny.TinyConfig"}}
        shapes = remote_tensor_shapes(arch, {k: v for k, v in TINY.items()})
        for k, s in ((1, seed + 1), (2, seed + 2)):
            make_arch_model(f"{arch}-ft{k}", fields, s, base_seed=seed, shapes=shapes)
            with open(os.path.join(MODELS, f"{arch}-ft{k}", "configuration_tiny.py"), "w") as f:
                f.write(REMOTE_CONFIG.format(model_type=extra["model_type"]))


# Phi-2 (PhiForCausalLM) with the two tokenizers of llama-tok-base/-chat: its LM head has a bias, a 1-D
# tensor with one value per token, which mergekit re-indexes to the output vocabulary like the embeddings.
PHI = {**TINY, "architectures": ["PhiForCausalLM"], "model_type": "phi", "partial_rotary_factor": 0.5, "num_key_value_heads": HEADS}


def phi_tok_models():
    if os.path.exists(os.path.join(MODELS, "phi-tok-chat")):
        return
    for name, seed, tokens, added in (("phi-tok-base", 281, TOK_BASE, []), ("phi-tok-chat", 282, TOK_CHAT, ["<|im_start|>", "<|im_end|>"])):
        fields = {**PHI, "vocab_size": len(tokens) + len(added)}
        make_arch_model(name, fields, seed, base_seed=280)
        save_tokenizer(os.path.join(MODELS, name), tokens, added)


def lora():
    """A PEFT LoRA adapter for llama-base (q_proj, v_proj, down_proj; r 4, alpha 8), random A and B."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = os.path.join(ROOT, "loras", "llama-lora")
    if os.path.exists(out):
        return
    torch.manual_seed(5)
    model = AutoModelForCausalLM.from_pretrained(os.path.join(MODELS, "llama-base"), torch_dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], lora_dropout=0.0, init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(out)
    os.remove(os.path.join(out, "README.md"))


M = "../models/"


def tok_recipe(tokenizer):
    return f"""merge_method: linear
base_model: {M}llama-tok-base
models:
  - model: {M}llama-tok-base
    parameters: {{weight: 0.5}}
  - model: {M}llama-tok-chat
    parameters: {{weight: 0.5}}
{tokenizer}
dtype: float32
"""


# Cases mergekit-yaml cannot run as it is under transformers 5, run through a script that mends that first.
RUNNERS = {"qwen2vl-linear-f32": os.path.join("tools", "oracle", "mergekit_qwen2vl.py")}
# mergekit flags a case needs beyond the common ones; recorded in cases.json for Alloy's run too.
EXTRA_ARGS = {"linear-vocab-truncate-f32": ["--unsafe-truncate-embeddings"]}
def karcher_of_three(dtype):
    """karcher of llama-ft1..3 computing in `dtype`."""
    return f"""merge_method: karcher
models:
  - model: {M}llama-ft1
  - model: {M}llama-ft2
  - model: {M}llama-ft3
dtype: {dtype}
"""


def nearswap(base, other, t, dtype):
    """A nearswap of `other` into `base`."""
    return f"""merge_method: nearswap
base_model: {M}{base}
models:
  - model: {M}{base}
  - model: {M}{other}
parameters:
  t: {t}
dtype: {dtype}
"""


def excalibur(attn, mlp, dtype):
    """Excalibur-7b's slerp shape: t gradients for self_attn and mlp with a fallback, over two models' layers 0-4."""
    return f"""slices:
  - sources:
      - model: {M}llama-base
        layer_range: [0, 4]
      - model: {M}llama-ft1
        layer_range: [0, 4]
merge_method: slerp
base_model: {M}llama-base
parameters:
  t:
    - filter: self_attn
      value: {attn}
    - filter: mlp
      value: {mlp}
    - value: 0.5
dtype: {dtype}
"""


CASES = {
    # name: (recipe, bar, method, notes). Bars: "exact" (every bit), "bf16-1ulp", and "f32-reduction":
    # within 4 ulps of the tensor's largest magnitude, for methods whose whole-tensor norms torch sums in
    # f32 in an order set by the CPU's vector width (Alloy sums them in f64).
    "linear-f32": (f"""merge_method: linear
models:
  - model: {M}llama-ft1
    parameters: {{weight: 0.5}}
  - model: {M}llama-ft2
    parameters: {{weight: 0.3}}
  - model: {M}llama-ft3
    parameters: {{weight: 0.2}}
dtype: float32
""", "exact", "linear", "three models, normalize (default true)"),
    "linear-nonorm-f32": (f"""merge_method: linear
parameters:
  normalize: false
models:
  - model: {M}llama-ft1
    parameters: {{weight: 0.7}}
  - model: {M}llama-ft2
    parameters: {{weight: 0.6}}
dtype: float32
""", "exact", "linear", "normalize false"),
    "linear-gradient-f32": (f"""merge_method: linear
models:
  - model: {M}llama-ft1
    parameters:
      weight:
        - filter: self_attn
          value: [0.1, 0.9]
        - value: 0.5
  - model: {M}llama-ft2
    parameters:
      weight: [1.0, 0.2, 0.6]
dtype: float32
""", "exact", "linear", "per-model weight gradients with a filter"),
    "linear-bf16": (f"""merge_method: linear
models:
  - model: {M}llama-bf16-ft1
    parameters: {{weight: 0.6}}
  - model: {M}llama-bf16-ft2
    parameters: {{weight: 0.4}}
""", "exact", "linear", "bf16 inputs, no dtype: mergekit computes in bf16"),
    "slerp-excalibur-f32": (excalibur("[0, 0.5, 0.3, 0.7, 1]", "[1, 0.5, 0.7, 0.3, 0]", "float32"), "f32-reduction", "slerp", "Excalibur-7b shape: t gradients by self_attn / mlp filter with a fallback"),
    "slerp-per-slice-f32": (f"""merge_method: slerp
base_model: {M}llama-base
parameters:
  t: [0.0, 0.6, 0.8, 0.4]
slices:
  - sources:
      - model: {M}llama-base
        layer_range: [0, 2]
      - model: {M}llama-ft2
        layer_range: [0, 2]
    parameters:
      t: [0.0, 0.2]
  - sources:
      - model: {M}llama-base
        layer_range: [2, 4]
      - model: {M}llama-ft2
        layer_range: [2, 4]
    t: [0.6, 0.7]
dtype: float32
""", "f32-reduction", "slerp", "Lamarck shape: t set per slice under parameters, and written directly on a slice (mergekit ignores that key)"),
    "slerp-bf16": (f"""merge_method: slerp
base_model: {M}llama-bf16-base
models:
  - model: {M}llama-bf16-base
  - model: {M}llama-bf16-ft1
parameters:
  t: 0.3
""", "exact", "slerp", "bf16 inputs: the bf16 steps hide acos/sin's last-ulp differences"),
    "nearswap-small-t-f32": (nearswap("llama-base", "llama-near", 0.0001, "float32"), "exact", "nearswap", "QuartetAnemoi t"),
    "nearswap-half-f32": (f"""merge_method: nearswap
base_model: {M}llama-base
models:
  - model: {M}llama-base
  - model: {M}llama-ft1
parameters:
  t: 0.05
dtype: float32
""", "exact", "nearswap", "larger t"),
    "passthrough-overlap-f32": (f"""merge_method: passthrough
slices:
  - sources:
      - model: {M}llama6-a
        layer_range: [0, 4]
  - sources:
      - model: {M}llama6-b
        layer_range: [2, 6]
dtype: float32
""", "exact", "passthrough", "frankenmerge with overlapping layer ranges: 8 layers out"),
    "qwen-linear-f32": (f"""merge_method: linear
models:
  - model: {M}qwen-ft1
    parameters: {{weight: 1.0}}
  - model: {M}qwen-ft2
    parameters: {{weight: 1.0}}
dtype: float32
""", "exact", "linear", "qwen2 with q/k/v biases"),
    "qwen-slerp-f32": (f"""merge_method: slerp
base_model: {M}qwen-base
models:
  - model: {M}qwen-base
  - model: {M}qwen-ft1
parameters:
  t: [0.2, 0.8]
dtype: float32
""", "f32-reduction", "slerp", "qwen2"),
}


def ta(method, params, models=("llama-ft1", "llama-ft2", "llama-ft3"), base="llama-base", per_model=None, dtype="dtype: float32\n"):
    lines = [f"merge_method: {method}", f"base_model: {M}{base}", "models:", f"  - model: {M}{base}"]
    for i, m in enumerate(models):
        pm = (per_model or {}).get(i, "weight: 0.5, density: 0.5")
        lines += [f"  - model: {M}{m}", f"    parameters: {{{pm}}}"]
    if params:
        lines += ["parameters:"] + [f"  {k}: {v}" for k, v in params.items()]
    return "\n".join(lines) + "\n" + dtype


CASES.update({
    "task-arithmetic-f32": (ta("task_arithmetic", {}, per_model={0: "weight: 0.5", 1: "weight: 0.3", 2: "weight: 0.8"}), "exact", "task_arithmetic", ""),
    "ties-f32": (ta("ties", {}), "exact", "ties", "density 0.5, normalize default"),
    "ties-nonorm-f32": (ta("ties", {"normalize": "false"}), "exact", "ties", "normalize false"),
    "ties-bf16": (ta("ties", {}, models=("llama-bf16-ft1", "llama-bf16-ft2"), base="llama-bf16-base", dtype="dtype: bfloat16\n"), "exact", "ties", "bf16 steps; many |delta| tie at the trim threshold in bf16, and the ones kept are those torch's unstable sort puts first"),
    "breadcrumbs-bf16": (ta("breadcrumbs", {"gamma": 0.05}, models=("llama-bf16-ft1", "llama-bf16-ft2"), base="llama-bf16-base", dtype="dtype: bfloat16\n"), "exact", "breadcrumbs",
        "bf16 steps; ties at both ends of the kept window, taken in the order of torch's ascending sort"),
    "dare-linear-d1-f32": (ta("dare_linear", {}, per_model={i: "weight: 0.4, density: 1.0" for i in range(3)}), "exact", "dare_linear", "density 1: no pruning"),
    "dare-ties-d1-f32": (ta("dare_ties", {}, per_model={i: "weight: 0.4, density: 1.0" for i in range(3)}), "exact", "dare_ties", "density 1: no pruning"),
    "dare-ties-f32": (ta("dare_ties", {}), "stats", "dare_ties", "density 0.5"),
    "dare-linear-rescale-f32": (ta("dare_linear", {}, models=("llama-ft1",), per_model={0: "weight: 1.0, density: 0.3"}), "stats", "dare_linear",
        "one model, density 0.3: kept entries are the delta times 1/0.3"),
    "breadcrumbs-f32": (ta("breadcrumbs", {"gamma": 0.01}), "exact", "breadcrumbs", ""),
    "breadcrumbs-ties-f32": (ta("breadcrumbs_ties", {"gamma": 0.01}), "exact", "breadcrumbs_ties", ""),
    "della-d1-f32": (ta("della", {"epsilon": 0.0, "lambda": 1.0}, per_model={i: "weight: 0.5, density: 1.0" for i in range(3)}), "exact", "della", "density 1"),
    "della-f32": (ta("della", {"epsilon": 0.1, "lambda": 1.0}), "stats", "della", "density 0.5"),
    "della-linear-f32": (ta("della_linear", {"epsilon": 0.1, "lambda": 1.0}), "stats", "della_linear", ""),
    "sce-f32": (ta("sce", {"select_topk": 0.5}, per_model={i: "weight: 1.0" for i in range(3)}), "f32-reduction", "sce", "mean squares are whole-tensor sums"),
    "lora-linear-f32": (f"""merge_method: linear
models:
  - model: {M}llama-base+../loras/llama-lora
    parameters: {{weight: 0.6}}
  - model: {M}llama-ft1
    parameters: {{weight: 0.4}}
dtype: float32
""", "exact", "linear", "a base+LoRA reference: the adapter is merged into the model first"),
    "lora-linear-bf16": (f"""merge_method: linear
models:
  - model: {M}llama-bf16-base+../loras/llama-lora
    parameters: {{weight: 0.6}}
  - model: {M}llama-bf16-ft1
    parameters: {{weight: 0.4}}
dtype: bfloat16
""", "exact", "linear", "a bf16 base+LoRA: PEFT keeps the adapter in f32 and adds its delta to the bf16 weight in f32, rounding once"),
    "linear-vocab-truncate-f32": (f"""merge_method: linear
models:
  - model: {M}llama-base
    parameters: {{weight: 0.5}}
  - model: {M}llama-vocab56
    parameters: {{weight: 0.5}}
dtype: float32
""", "exact", "linear", "vocabularies of 48 and 56 rows: mergekit keeps the common 48"),
    "tok-base-f32": (tok_recipe("tokenizer_source: base"), "exact", "linear", "vocabularies differ: the chat model's rows re-indexed to the base's tokens"),
    "tok-union-f32": (tok_recipe("tokenizer_source: union"), "exact", "linear", "union vocabulary: base tokens, then the new word, then the new special tokens"),
    "tok-model-f32": (tok_recipe(f"tokenizer_source: {M}llama-tok-chat"), "exact", "linear", "the chat model's tokenizer"),
    "tok-chat-template-f32": (tok_recipe("tokenizer_source: base\nchat_template: \"{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}\""), "exact", "linear", "a literal chat template, saved as chat_template.jinja"),
    "tok-config-f32": (tok_recipe(f"""tokenizer:
  source: union
  pad_to_multiple_of: 16
  tokens:
    "<|im_start|>":
      source: {M}llama-tok-chat
      force: true
    w1:
      source:
        kind: zero
    w5:
      source:
        kind: model_token
        model: {M}llama-tok-chat
        token: w6"""), "exact", "linear", "tokens: forced, zero and model_token sources; padded to a multiple of 16"),
    "linear-bf16-out-f32": (f"""merge_method: linear
models:
  - model: {M}llama-ft1
    parameters: {{weight: 0.3}}
  - model: {M}llama-ft2
    parameters: {{weight: 0.7}}
dtype: bfloat16
out_dtype: float32
""", "exact", "linear", "f32 models merged in bf16, written as f32: the result is rounded to bf16 first"),
    "linear-mixed-dtypes": (f"""merge_method: linear
models:
  - model: {M}llama-bf16-ft1
    parameters: {{weight: 0.5}}
  - model: {M}llama-ft1
    parameters: {{weight: 0.5}}
""", "exact", "linear", "a bf16 and an f32 model with no dtype: promoted to f32, and written as f32"),
    "tok-zero-forced-f32": (tok_recipe("""tokenizer:
  source: base
  tokens:
    w5:
      source:
        kind: zero
      force: true"""), "exact", "linear", "a token forced to a zero embedding (a default row with no source)"),
    "passthrough-tok-f32": (f"""merge_method: passthrough
slices:
  - sources:
      - model: {M}llama-tok-base
        layer_range: [0, 2]
  - sources:
      - model: {M}llama-tok-chat
        layer_range: [2, 4]
tokenizer_source: {M}llama-tok-chat
dtype: float32
""", "exact", "passthrough", "passthrough slices with another model's tokenizer: the embeddings re-indexed, not copied"),
    "phi-tok-union-f32": (tok_recipe("tokenizer_source: union").replace("llama-tok-", "phi-tok-"), "exact", "linear",
        "phi: union vocabulary; lm_head.bias, a 1-D vocabulary tensor, re-indexed like the embeddings"),
    "phi-tok-pad-f32": (tok_recipe("tokenizer:\n  source: union\n  pad_to_multiple_of: 16").replace("llama-tok-", "phi-tok-"), "exact", "linear",
        "phi: union vocabulary padded to a multiple of 16; lm_head.bias's padding is its mean, a whole-tensor sum"),
    "nearswap-bf16": (f"""merge_method: nearswap
base_model: {M}llama-bf16-base
models:
  - model: {M}llama-bf16-base
  - model: {M}llama-bf16-ft1
parameters:
  t: 0.02
dtype: bfloat16
""", "exact", "nearswap", "bf16: mergekit computes each step in bf16"),
    "model-stock-bf16": (ta("model_stock", {}, models=("llama-bf16-ft1", "llama-bf16-ft2"), base="llama-bf16-base", per_model={0: "weight: 1.0", 1: "weight: 1.0"}, dtype="dtype: bfloat16\n"), "exact", "model_stock", "bf16: norms and dots accumulated in f32, every result rounded to bf16"),
    "ram-f32": (ta("ram", {"epsilon": 0.01}, per_model={i: "weight: 1.0" for i in range(3)}), "exact", "ram", "epsilon 0.01 so that some entries are unique to one model"),
    "ramplus-tl-f32": (ta("ramplus_tl", {"epsilon": 0.01, "r": 0.5, "alpha": 0.9}, per_model={i: "weight: 1.0" for i in range(3)}), "exact", "ramplus_tl", ""),
    "model-stock-f32": (ta("model_stock", {}, per_model={i: "weight: 1.0" for i in range(3)}), "f32-reduction", "model_stock", ""),
    "model-stock-filterwise-f32": (ta("model_stock", {"filter_wise": "true"}, per_model={i: "weight: 1.0" for i in range(3)}), "f32-reduction", "model_stock", "filter_wise"),
    "karcher-f32": (karcher_of_three("float32"), "f32-reduction", "karcher", "norms and dots are whole-tensor sums"),
    "karcher-bf16": (karcher_of_three("bfloat16"), "exact", "karcher", "bf16 steps: the iterate is a bf16 tensor; torch rounds mul's f32 scalars to bf16, not div's"),
    "karcher-bf16-nodtype": (f"""merge_method: karcher
models:
  - model: {M}llama-bf16-base
  - model: {M}llama-bf16-ft1
  - model: {M}llama-bf16-ft2
parameters:
  max_iter: 4
""", "exact", "karcher", "bf16 models and no dtype: mergekit computes in bf16"),
    "multislerp-f32": (f"""merge_method: multislerp
models:
  - model: {M}llama-ft1
    parameters: {{weight: 0.5}}
  - model: {M}llama-ft2
    parameters: {{weight: 0.3}}
  - model: {M}llama-ft3
    parameters: {{weight: 0.2}}
dtype: float32
""", "f32-reduction", "multislerp", "norms and dots are whole-tensor sums"),
    "nuslerp-f32": (f"""merge_method: nuslerp
models:
  - model: {M}llama-ft1
    parameters: {{weight: 0.6}}
  - model: {M}llama-ft2
    parameters: {{weight: 0.4}}
dtype: float32
""", "f32-reduction", "nuslerp", "no base"),
    "nuslerp-base-f32": (ta("nuslerp", {}, models=("llama-ft1", "llama-ft2"), per_model={0: "weight: 0.6", 1: "weight: 0.4"}), "f32-reduction", "nuslerp", "with base: task vectors"),
    "nuslerp-rowwise-f32": (f"""merge_method: nuslerp
models:
  - model: {M}llama-ft1
    parameters: {{weight: 0.3}}
  - model: {M}llama-ft2
    parameters: {{weight: 0.7}}
parameters:
  nuslerp_flatten: false
  nuslerp_row_wise: true
dtype: float32
""", "f32-reduction", "nuslerp", "not flattened, row-wise: column vectors; a 1-D tensor (the norms) is one vector"),
    "ties-rescale-f32": (ta("ties", {"rescale": "true"}), "exact", "ties", "rescale true: kept entries times the L1 ratio, whose sums are torch's f32 sums"),
    "breadcrumbs-ties-rescale-f32": (ta("breadcrumbs_ties", {"gamma": 0.05, "rescale": "true", "normalize": "true"}), "exact", "breadcrumbs_ties", "rescale true"),
    "sce-topk-count-f32": (ta("sce", {"select_topk": 0.300781249}, per_model={i: "weight: 1.0" for i in range(3)}), "exact", "sce",
        "k = int(count_nonzero(var) * select_topk) is an f32 product: 231 of 768 kept, where the exact product truncates to 230"),
    "arcee-fusion-bf16": (f"""merge_method: arcee_fusion
base_model: {M}llama-bf16-base
models:
  - model: {M}llama-bf16-base
  - model: {M}llama-bf16-ft1
dtype: bfloat16
""", "exact", "arcee_fusion", "bf16: importances computed in bf16 step by step; the result is f32 (the fusion mask is .float()), saved so"),
    "arcee-fusion-bf16-nodtype": (f"""merge_method: arcee_fusion
base_model: {M}llama-bf16-base
models:
  - model: {M}llama-bf16-base
  - model: {M}llama-bf16-ft1
""", "exact", "arcee_fusion", "bf16 inputs and no dtype: as with dtype: bfloat16"),
    "ram-bf16": (ta("ram", {"epsilon": 0.001}, models=("llama-bf16-ft1", "llama-bf16-ft2"), base="llama-bf16-base", per_model={0: "weight: 1.0", 1: "weight: 1.0"},
        dtype="dtype: bfloat16\n"), "exact", "ram", "bf16: task vectors and shared averages rounded to bf16, epsilon cast to bf16, the sum over models in f32"),
    "ramplus-tl-bf16": (ta("ramplus_tl", {"epsilon": 0.001, "r": 0.5, "alpha": 1.0}, models=("llama-bf16-ft1", "llama-bf16-ft2"), base="llama-bf16-base",
        per_model={0: "weight: 1.0", 1: "weight: 1.0"}, dtype="dtype: bfloat16\n"), "exact", "ramplus_tl", "bf16: the boosts are f32 tensors, so the result is f32"),
    "task-arithmetic-tiny-weight-f32": (ta("task_arithmetic", {"normalize": "true"}, models=("llama-ft1",), per_model={0: "weight: 1e-8"}), "exact", "task_arithmetic",
        "normalize with weights summing to f32(1e-8): not below torch's 1e-8 in f32, so the divisor is kept (the delta is divided by 1e-8)"),
    "nuslerp-bf16": (ta("nuslerp", {}, models=("llama-bf16-ft1", "llama-bf16-ft2"), base="llama-bf16-base", per_model={0: "weight: 0.2", 1: "weight: 0.5"},
        dtype=""), "exact", "nuslerp", "bf16 inputs, no dtype: each tensor op rounded to bf16"),
    "nuslerp-noflat-bf16": (ta("nuslerp", {"nuslerp_flatten": "false"}, models=("llama-bf16-ft1", "llama-bf16-ft2"), base="llama-bf16-base",
        per_model={0: "weight: 0.2", 1: "weight: 0.5"}, dtype="dtype: bfloat16\n"), "exact", "nuslerp", "bf16, per row"),
    "multislerp-bf16": (f"""merge_method: multislerp
base_model: {M}llama-bf16-base
models:
  - model: {M}llama-bf16-ft1
    parameters: {{weight: 1}}
  - model: {M}llama-bf16-ft2
    parameters: {{weight: 2}}
parameters:
  eps: 0.001
dtype: bfloat16
""", "exact", "multislerp", "bf16: each op rounded to bf16, the tangent step taken in full"),
    "multislerp-nobase-bf16": (f"""merge_method: multislerp
models:
  - model: {M}llama-bf16-ft1
    parameters: {{weight: 1}}
  - model: {M}llama-bf16-ft2
    parameters: {{weight: 2}}
  - model: {M}llama-bf16-base
    parameters: {{weight: 0.5}}
""", "exact", "multislerp", "bf16 inputs, no dtype, no base, three models"),
    "sce-bf16": (ta("sce", {}, models=("llama-bf16-ft1", "llama-bf16-ft2", "llama-ft3"), base="llama-bf16-base",
        per_model={0: "weight: 1.0", 1: "weight: 1.0", 2: "weight: 1.0"}, dtype="dtype: bfloat16\n"), "exact", "sce",
        "bf16, select_topk 1 (the default): every step rounded to bf16; an f32 model among bf16 ones, cast to bf16 on load"),
    "breadcrumbs-neg-gamma-f32": (ta("breadcrumbs", {}, per_model={0: "weight: 0.5, density: 0.5, gamma: -2", 1: "weight: 0.6, density: 0.5, gamma: -0.1",
        2: "weight: 0.4, density: 0.9, gamma: 0.3"}), "exact", "breadcrumbs",
        "gamma below 0 moves the kept window up past the largest entries (-2: past the end, nothing kept); density + gamma above 1"),
    "arcee-fusion-f32": (f"""merge_method: arcee_fusion
base_model: {M}llama-base
models:
  - model: {M}llama-base
  - model: {M}llama-ft1
dtype: float32
""", "exact", "arcee_fusion", ""),
    "yi-dare-ties-int8-bf16": (ta("dare_ties", {"int8_mask": "true"}, models=tuple(f"llama-ft{i}" for i in range(1, 8)),
        per_model={0: "weight: 0.14, density: 0.62", 1: "weight: 0.14, density: 0.62", 2: "weight: 0.14, density: 0.52", 3: "weight: 0.22, density: 0.62",
                   4: "weight: 0.14, density: 0.52", 5: "weight: 0.14, density: 0.52", 6: "weight: 0.08, density: 0.08"}, dtype="dtype: bfloat16\n"),
        "stats", "dare_ties", "Yi-34B-200K-DARE-merge-v5 shape: eight models, int8_mask"),
})

# dtype: float16 (Excalibur-7b's): mergekit casts the inputs to f16 and torch rounds every tensor op to f16.
F16 = "dtype: float16\n"
CASES.update({
    "linear-f16": (f"""merge_method: linear
models:
  - model: {M}llama-ft1
    parameters: {{weight: 0.6}}
  - model: {M}llama-ft2
    parameters: {{weight: 0.4}}
dtype: float16
""", "exact", "linear", "f32 inputs cast to f16; the sum in f32, rounded to f16 once"),
    "slerp-excalibur-f16": (excalibur("[1, 0.7, 0.3, 0.5, 0]", "[0, 0.3, 0.7, 0.5, 1]", "float16"), "exact", "slerp", "Excalibur-7b's recipe as published (dtype float16): inputs cast to f16, slerp in f32 (numpy), the result in f16"),
    "task-arithmetic-f16": (ta("task_arithmetic", {}, per_model={0: "weight: 0.5", 1: "weight: 0.3", 2: "weight: 0.8"}, dtype=F16), "exact", "task_arithmetic",
        "f16 steps: task vectors, weighted sums and the base added back each rounded to f16"),
    "ties-f16": (ta("ties", {}, dtype=F16), "exact", "ties",
        "f16 steps; |delta| ties at the trim threshold are kept in torch's unstable sort order"),
    "breadcrumbs-ties-f16": (ta("breadcrumbs_ties", {"gamma": 0.02}, dtype=F16), "exact", "breadcrumbs_ties",
        "f16 steps; ties at both ends of the kept window in torch's ascending sort order, then TIES' sign election"),
    "model-stock-f16": (ta("model_stock", {}, per_model={i: "weight: 1.0" for i in range(3)}, dtype=F16), "exact", "model_stock",
        "three fine-tunes, f16 steps: the mean of the three cosines is torch's 16-bit mean (an f32 sum divided in f32, rounded once)"),
    "model-stock-3-bf16": (ta("model_stock", {}, per_model={i: "weight: 1.0" for i in range(3)}, dtype="dtype: bfloat16\n"), "exact", "model_stock",
        "three fine-tunes in bf16: three cosines averaged as torch's bf16 mean does"),
    "nearswap-f16": (nearswap("llama-base", "llama-near", 0.0001, "float16"), "exact", "nearswap", "f16 steps: 1 / |a - b| overflows to inf where the models are within 2^-16, and the weight clamps to 1"),
    "multislerp-f16": (f"""merge_method: multislerp
base_model: {M}llama-base
models:
  - model: {M}llama-ft1
    parameters: {{weight: 1}}
  - model: {M}llama-ft2
    parameters: {{weight: 2}}
parameters:
  eps: 0.001
dtype: float16
""", "exact", "multislerp", "f16 steps"),
    "karcher-f16": (karcher_of_three("float16"), "exact", "karcher", "f16 steps, as karcher-bf16's"),
    "nuslerp-f16": (ta("nuslerp", {}, models=("llama-ft1", "llama-ft2"), per_model={0: "weight: 0.6", 1: "weight: 0.4"}, dtype=F16), "exact", "nuslerp", "with base, f16 steps"),
    "ram-f16": (ta("ram", {"epsilon": 0.001}, per_model={i: "weight: 1.0" for i in range(3)}, dtype=F16), "exact", "ram", "f16 steps, epsilon cast to f16"),
    "sce-f16": (ta("sce", {}, per_model={i: "weight: 1.0" for i in range(3)}, dtype=F16), "exact", "sce", "select_topk 1 (the default), f16 steps"),
    "sce-topk-f16": (ta("sce", {"select_topk": 0.4}, per_model={i: "weight: 1.0" for i in range(3)}, dtype=F16), "exact", "sce",
        "select_topk 0.4 in f16 steps: torch.var's f16 variances, ties at the cut kept as torch.topk's nth_element keeps them"),
    "sce-topk-bf16": (ta("sce", {"select_topk": 0.01}, models=("llama-bf16-ft1", "llama-bf16-ft2"), base="llama-bf16-base", per_model={i: "weight: 1.0" for i in range(2)}, dtype="dtype: bfloat16\n"), "exact", "sce",
        "select_topk 0.01 in bf16 steps: few kept (torch.topk by partial_sort), ties at the cut in its order"),
    "sce-topk-bf16-over-f32": (ta("sce", {"select_topk": 0.3}, models=("llama-bf16-ft1", "llama-bf16-ft2"), base="llama-bf16-base", per_model={i: "weight: 1.0" for i in range(2)}), "exact", "sce",
        "bf16 models computed in f32: torch.var's f64 Welford, many variances tied at the cut"),
    "arcee-fusion-f16": (f"""merge_method: arcee_fusion
base_model: {M}llama-base
models:
  - model: {M}llama-base
  - model: {M}llama-ft1
dtype: float16
""", "exact", "arcee_fusion", "f16 steps in the importances; the result is f32 (the fusion mask is .float())"),
})


def arch_linear(arch):
    return f"""merge_method: linear
models:
  - model: {M}{arch}-ft1
    parameters: {{weight: 0.6}}
  - model: {M}{arch}-ft2
    parameters: {{weight: 0.4}}
dtype: float32
"""


def arch_slerp(arch):
    return f"""merge_method: slerp
base_model: {M}{arch}-base
models:
  - model: {M}{arch}-base
  - model: {M}{arch}-ft1
parameters:
  t: [0.2, 0.8]
dtype: float32
"""


ARCH_NOTES = {
    "mixtral": "Mixtral with fused experts (mlp.experts.gate_up_proj, 3-D)", "qwen3moe": "Qwen3-MoE with fused experts",
    "gemma3": "Gemma 3 text (gemma3_text), tied LM head absent", "cohere": "Command-R, tied LM head absent", "cohere2": "Command R7B, tied LM head absent",
    "starcoder2": "biases everywhere; lm_head before the final norm", "olmo2": "q/k norms, post-norms only", "granite": "optional q/k/v/o biases present, MLP biases absent",
    "glm4": "fused gate_up_proj, q/k/v biases", "arcee": "no gate projection", "stablelm": "LayerNorm biases, q/k/v biases",
    "exaone": "transformer.h names; the config's layer count is num_layers", "falcon": "new decoder architecture (ln_attn, ln_mlp)",
    "gptneox": "Pythia names, with the stored attention mask, masked_bias (0-d) and inv_freq buffers",
    "gptbigcode": "StarCoder's GPT-BigCode: multi-query c_attn, n_layer", "apertus": "xIELU activation parameters (0-d beta and eps) stored per layer",
    "lfm2": "a convolution layer and an attention layer (optional tensors), tied head absent", "glm4moe": "dense layers only, as mergekit's definition lists",
    "granitehybrid": "a Mamba-2 and an attention layer (optional tensors), experts under the checkpoints' input_linear/output_linear/router.layer names",
    "mamba": "Mamba: A_log, D, conv1d, x/dt projections", "llama-seqcls": "LlamaForSequenceClassification: score head instead of lm_head",
}
for _arch in ARCH_MODELS:
    CASES[f"{_arch}-linear-f32"] = (arch_linear(_arch), "exact", "linear", ARCH_NOTES[_arch])
for _arch in REMOTE_MODELS:
    CASES[f"{_arch}-linear-f32"] = (arch_linear(_arch), "exact", "linear", f"remote-code {REMOTE_MODELS[_arch][0]['model_type']}, config loaded with --trust-remote-code")
    EXTRA_ARGS[f"{_arch}-linear-f32"] = ["--trust-remote-code"]
for _arch in REMOTE_SHAPED:
    CASES[f"{_arch}-linear-f32"] = (arch_linear(_arch), "exact", "linear", f"remote-code {REMOTE_SHAPED[_arch][0]['model_type']} ({REMOTE_SHAPED[_arch][0]['architectures'][0]}), config loaded with --trust-remote-code")
    EXTRA_ARGS[f"{_arch}-linear-f32"] = ["--trust-remote-code"]
CASES["mixtral-slerp-f32"] = (arch_slerp("mixtral"), "f32-reduction", "slerp", "slerp over 3-D expert tensors")
CASES["gemma3-slerp-f32"] = (arch_slerp("gemma3"), "f32-reduction", "slerp", "Gemma 3 text")
CASES["mixtral-experts-linear-f32"] = (arch_linear("mixtral").replace("mixtral-ft1", "mixtral-experts-ft1"), "exact", "linear",
                                       "Mixtral per-expert checkpoint (block_sparse_moe.experts.N.w1/w3/w2) merged with a fused one")
CASES["qwen3moe-experts-linear-f32"] = (arch_linear("qwen3moe-experts"), "exact", "linear", "Qwen3-MoE per-expert checkpoints (mlp.experts.N.gate_proj/up_proj/down_proj)")
CASES["mixtral-nuslerp-noflat-f32"] = (ta("nuslerp", {"nuslerp_flatten": "false"}, models=("mixtral-ft1", "mixtral-ft2"), base="mixtral-base",
                                          per_model={0: "weight: 0.3", 1: "weight: 0.6"}), "f32-reduction", "nuslerp",
                                       "not flattened over 3-D expert tensors: vectors along the last axis")
CASES["qwen3moe-ties-f32"] = (ta("ties", {}, models=("qwen3moe-ft1", "qwen3moe-ft2"), base="qwen3moe-base"), "exact", "ties", "TIES over 3-D expert tensors")


CASES["gemma3vl-linear-f32"] = (arch_linear("gemma3vl"), "exact", "linear", "Gemma 3 with vision: models: merges every module (text decoder, projector, vision tower)")
VL_NOTES = {
    "qwen2vl": "Qwen2-VL: text decoder, projector (visual.merger, two fixed layers), vision tower (visual.blocks, vision_config.depth); flat config",
    "qwen25vl": "Qwen2.5-VL: as Qwen2-VL with a gated vision MLP; flat config (layer count read from text_config by mergekit)",
    "qwen3vl": "Qwen3-VL: model.language_model / model.visual names, three fixed deepstack merger layers",
    "qwen3vlmoe": "Qwen3-VL-MoE: fused experts in the text decoder",
    "mistral3": "Mistral 3 (Pixtral vision tower): language_model. prefix, the head under language_model.lm_head",
    "llama4": "Llama 4: a dense and a mixture-of-experts layer (optional tensors), vision_model, one-tensor projector",
}
for _arch in VL_MODELS:
    CASES[f"{_arch}-linear-f32"] = (arch_linear(_arch), "exact", "linear", VL_NOTES[_arch])
CASES["qwen25vl-gradient-f32"] = (f"""merge_method: linear
models:
  - model: {M}qwen25vl-ft1
    parameters: {{weight: [0.1, 0.9]}}
  - model: {M}qwen25vl-ft2
    parameters: {{weight: 0.5}}
dtype: float32
""", "exact", "linear", "Qwen2.5-VL with a weight gradient: the projector's two fixed layers plan the same tensors with different weights; the last plan is what mergekit's output holds")
CASES["gemma3vl-modules-f32"] = (f"""merge_method: linear
modules:
  text_decoder:
    slices:
      - sources:
          - model: {M}gemma3vl-ft1
            layer_range: [0, 2]
            parameters: {{weight: 0.7}}
          - model: {M}gemma3vl-ft2
            layer_range: [0, 2]
            parameters: {{weight: 0.3}}
      - sources:
          - model: {M}gemma3vl-ft2
            layer_range: [1, 2]
          - model: {M}gemma3vl-base
            layer_range: [1, 2]
        parameters: {{weight: 0.25}}
  vision_tower:
    models:
      - model: {M}gemma3vl-ft1
      - model: {M}gemma3vl-ft2
        parameters: {{weight: 0.1}}
    parameters:
      weight: [0.2, 0.9]
  multi_modal_projector:
    models:
      - model: {M}gemma3vl-ft2
        parameters: {{weight: 1.0}}
      - model: {M}gemma3vl-ft1
parameters:
  weight: 0.5
dtype: float32
""", "exact", "linear", "modules: text decoder sliced (3 layers out, parameters per source and per slice), vision tower with module parameters, projector with recipe parameters; module order as written")


SEQUENTIAL = ["llama-ft1", "llama-ft2", "llama-ft3"]


def run(name, recipe, args):
    path = os.path.join(RECIPES, f"{name}.yml")
    with open(path, "w") as f:
        f.write(recipe)
    out = os.path.join(OUTPUTS, name)
    shutil.rmtree(out, ignore_errors=True)
    runner = [sys.executable, os.path.abspath(RUNNERS[name])] if name in RUNNERS else [MERGEKIT]
    cmd = [*runner, f"{name}.yml", os.path.abspath(out), *args]
    subprocess.run(cmd, cwd=RECIPES, check=True)
    if "tok-" not in name:
        for extra in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            if os.path.exists(os.path.join(out, extra)):
                os.remove(os.path.join(out, extra))


def sequential_cases(args, version):
    """QuartetAnemoi: nearswap of one base with three secondaries in turn; each step's output is the next base."""
    base = f"{M}llama-base"
    for i, other in enumerate(SEQUENTIAL):
        step = f"nearswap-seq-{i + 1}"
        recipe = f"""merge_method: nearswap
base_model: {base}
models:
  - model: {base}
  - model: {M}{other}
parameters:
  t: 0.05
dtype: float32
"""
        run(step, recipe, args)
        base = f"../outputs/{step}"
    return {"name": "nearswap-sequential-f32", "recipe": "nearswap-seq-3.yml", "output": "nearswap-seq-3", "bar": "exact", "method": "nearswap",
            "notes": "third step of a sequential nearswap; its base is the second step's output", "mergekitVersion": version, "args": args}


def main():
    """Everything anew; or, with `--only NAME[,NAME]`, just those cases, the models and other outputs kept."""
    only = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else None
    index = os.path.join(ROOT, "cases.json")
    if only is None:
        # Hand-written recipes (quartet-sequential.yml) stay; everything generated is made anew.
        for d in (MODELS, OUTPUTS):
            shutil.rmtree(d, ignore_errors=True)
        for d in (MODELS, RECIPES, OUTPUTS):
            os.makedirs(d, exist_ok=True)
        models()
    args = ["--out-shard-size", "20K", "--random-seed", "42"]
    version = subprocess.run([sys.executable, "-c", "import importlib.metadata as m; print(m.version('mergekit'))"], capture_output=True, text=True).stdout.strip()
    lora()
    extra_models()
    gemma3vl_models()
    vl_models()
    cases = {c["name"]: c for c in json.load(open(index))} if only is not None else {}
    for name, (recipe, bar, method, notes) in CASES.items():
        if only is not None and name not in only:
            continue
        lora_cache = ["--lora-merge-cache", os.path.abspath(os.path.join(ROOT, ".lora-cache"))] if "+" in recipe else []
        run(name, recipe, args + EXTRA_ARGS.get(name, []) + lora_cache)
        shutil.rmtree(os.path.join(ROOT, ".lora-cache"), ignore_errors=True)
        cases[name] = {"name": name, "recipe": f"{name}.yml", "output": name, "bar": bar, "method": method, "notes": notes, "mergekitVersion": version, "args": args + EXTRA_ARGS.get(name, [])}
    if only is None:
        cases["nearswap-sequential-f32"] = sequential_cases(args, version)
    with open(index, "w") as f:
        json.dump(list(cases.values()), f, indent=2)
    print(f"{len(cases)} cases")


if __name__ == "__main__":
    main()
