import { mkdir, rm, writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeFromF32 } from '../safetensors/convert';
import { SafetensorsShardWriter, type PlannedTensor } from '../safetensors/writer';
import type { FloatDtype } from '../safetensors/dtype';

export interface DemoModelSpec {
  name: string;
  seed: number;
  /** The model whose weights this one perturbs, as a fine-tune would. */
  baseSeed?: number;
}

export interface LlamaShape {
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  vocab: number;
}

export const DEMO_SHAPE: LlamaShape = { hidden: 64, intermediate: 128, layers: 4, heads: 4, kvHeads: 2, vocab: 256 };

export const DEMO_MODELS: DemoModelSpec[] = [
  { name: 'alloy-demo-base', seed: 1 },
  { name: 'alloy-demo-chat', seed: 2, baseSeed: 1 },
  { name: 'alloy-demo-code', seed: 3, baseSeed: 1 },
];

/** splitmix32: a tiny seeded generator, so demo weights (and tests' random moments) are the same on every machine. */
export function splitmix32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return ((z ^ (z >>> 16)) >>> 0) / 4294967296;
  };
}

function gaussian(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
}

/** Layer `i` of a Llama-family model, in bf16, by name and shape. */
export function llamaLayerTensors(i: number, shape: Pick<LlamaShape, 'hidden' | 'intermediate' | 'heads' | 'kvHeads'>): PlannedTensor[] {
  const { hidden: h, intermediate: m, heads, kvHeads } = shape;
  const kv = (h / heads) * kvHeads;
  const p = `model.layers.${i}`;
  return [
    { name: `${p}.input_layernorm.weight`, dtype: 'BF16', shape: [h] },
    { name: `${p}.self_attn.q_proj.weight`, dtype: 'BF16', shape: [h, h] },
    { name: `${p}.self_attn.k_proj.weight`, dtype: 'BF16', shape: [kv, h] },
    { name: `${p}.self_attn.v_proj.weight`, dtype: 'BF16', shape: [kv, h] },
    { name: `${p}.self_attn.o_proj.weight`, dtype: 'BF16', shape: [h, h] },
    { name: `${p}.post_attention_layernorm.weight`, dtype: 'BF16', shape: [h] },
    { name: `${p}.mlp.up_proj.weight`, dtype: 'BF16', shape: [m, h] },
    { name: `${p}.mlp.gate_proj.weight`, dtype: 'BF16', shape: [m, h] },
    { name: `${p}.mlp.down_proj.weight`, dtype: 'BF16', shape: [h, m] },
  ];
}

/** A Llama-family model's tensors, in bf16, by name and shape. */
export function llamaTensors(shape: LlamaShape): PlannedTensor[] {
  const { hidden: h, vocab } = shape;
  const list: PlannedTensor[] = [{ name: 'model.embed_tokens.weight', dtype: 'BF16', shape: [vocab, h] }];
  for (let i = 0; i < shape.layers; i++) list.push(...llamaLayerTensors(i, shape));
  list.push({ name: 'model.norm.weight', dtype: 'BF16', shape: [h] }, { name: 'lm_head.weight', dtype: 'BF16', shape: [vocab, h] });
  return list;
}

function tensorValues(t: PlannedTensor, spec: DemoModelSpec): Float32Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(n);
  const isNorm = t.shape.length === 1;
  const nameSeed = [...t.name].reduce((a, c) => (Math.imul(a, 31) + c.charCodeAt(0)) >>> 0, 7);
  const base = splitmix32((spec.baseSeed ?? spec.seed) * 7919 + nameSeed);
  const own = splitmix32(spec.seed * 104729 + nameSeed);
  const scale = isNorm ? 0.05 : 1 / Math.sqrt(t.shape[t.shape.length - 1]!);
  for (let i = 0; i < n; i++) {
    const b = (isNorm ? 1 : 0) + scale * gaussian(base);
    values[i] = spec.baseSeed === undefined ? b : b + 0.2 * scale * gaussian(own);
  }
  return values;
}

/** The config.json of a bf16 Llama-family model of `shape`. */
export function llamaConfig(shape: LlamaShape): Record<string, unknown> {
  const { hidden, intermediate, layers, heads, kvHeads, vocab } = shape;
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: hidden,
    intermediate_size: intermediate,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    vocab_size: vocab,
    max_position_embeddings: 512,
    rms_norm_eps: 1e-5,
    rope_theta: 10000.0,
    hidden_act: 'silu',
    tie_word_embeddings: false,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: 'bfloat16',
  };
}

function tokenizerJson(shape: LlamaShape): Record<string, unknown> {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let i = 3; i < shape.vocab; i++) vocab[`tok${i}`] = i;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      { id: 0, content: '<unk>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
      { id: 1, content: '<s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
      { id: 2, content: '</s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    ],
    normalizer: null,
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: null,
    decoder: null,
    model: { type: 'WordLevel', vocab, unk_token: '<unk>' },
  };
}

/** Writes one Llama-shaped model with deterministic weights into `dir` (two shards and an index). */
export async function writeLlamaModel(dir: string, spec: DemoModelSpec, shape: LlamaShape = DEMO_SHAPE): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tensors = llamaTensors(shape);
  const half = Math.ceil(tensors.length / 2);
  const shards = [tensors.slice(0, half), tensors.slice(half)];
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  for (const [i, shard] of shards.entries()) {
    const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
    const writer = await SafetensorsShardWriter.create(join(dir, file), shard);
    for (const t of shard) {
      const values = tensorValues(t, spec);
      const bytes = new Uint8Array(values.length * 2);
      encodeFromF32(values, t.dtype as FloatDtype, bytes);
      await writer.write(t.name, bytes);
      weightMap[t.name] = file;
      totalSize += bytes.byteLength;
    }
    await writer.commit();
  }
  const json = (value: unknown) => JSON.stringify(value, null, 2) + '\n';
  await writeFile(join(dir, 'model.safetensors.index.json'), json({ metadata: { total_size: totalSize }, weight_map: weightMap }));
  await writeFile(join(dir, 'config.json'), json(llamaConfig(shape)));
  await writeFile(join(dir, 'tokenizer.json'), json(tokenizerJson(shape)));
  await writeFile(
    join(dir, 'tokenizer_config.json'),
    json({ tokenizer_class: 'PreTrainedTokenizerFast', bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', model_max_length: 512 }),
  );
}

/** Writes the demo models into `root/<name>/`, each folder appearing whole or not at all. */
export async function makeDemoModels(root: string): Promise<string[]> {
  await mkdir(root, { recursive: true });
  const dirs: string[] = [];
  for (const spec of DEMO_MODELS) {
    const dir = join(root, spec.name);
    const temp = `${dir}.partial-${process.pid}`;
    await rm(temp, { recursive: true, force: true });
    await mkdir(temp);
    await writeLlamaModel(temp, spec);
    await rm(dir, { recursive: true, force: true });
    await rename(temp, dir);
    dirs.push(dir);
  }
  return dirs;
}
