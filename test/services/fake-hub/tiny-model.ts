import { createHash } from 'node:crypto';

export interface TinyTensor {
  name: string;
  dtype: 'F32' | 'BF16' | 'F16';
  shape: number[];
}

const SIZES = { F32: 4, BF16: 2, F16: 2 } as const;

/** A safetensors file's length prefix and header for `tensors`, laid out in order, and the bytes of data after it. */
export function safetensorsHeader(tensors: TinyTensor[], metadata: Record<string, string> = { format: 'pt' }): { header: Buffer; dataBytes: number } {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * SIZES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  return { header: Buffer.concat([prefix, Buffer.from(json)]), dataBytes: offset };
}

/** A safetensors file whose data bytes are a deterministic function of `seed`. */
export function buildSafetensors(tensors: TinyTensor[], seed: string): Buffer {
  const { header, dataBytes } = safetensorsHeader(tensors);
  return Buffer.concat([header, pseudoRandomBytes(dataBytes, seed)]);
}

export function pseudoRandomBytes(length: number, seed: string): Buffer {
  const out = Buffer.alloc(length);
  let block = 0;
  for (let i = 0; i < length; i += 32) {
    createHash('sha256').update(`${seed}:${block++}`).digest().copy(out, i);
  }
  return out;
}

/** The tensors of a llama-like model with `layers` layers of width `hidden` and `vocab` tokens. */
export function llamaTensors(layers: number, hidden: number, vocab: number, dtype: TinyTensor['dtype']): TinyTensor[] {
  const tensors: TinyTensor[] = [{ name: 'model.embed_tokens.weight', dtype, shape: [vocab, hidden] }];
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`;
    for (const m of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) tensors.push({ name: `${p}.self_attn.${m}.weight`, dtype, shape: [hidden, hidden] });
    for (const m of ['gate_proj', 'up_proj']) tensors.push({ name: `${p}.mlp.${m}.weight`, dtype, shape: [hidden * 2, hidden] });
    tensors.push({ name: `${p}.mlp.down_proj.weight`, dtype, shape: [hidden, hidden * 2] });
    tensors.push({ name: `${p}.input_layernorm.weight`, dtype, shape: [hidden] });
    tensors.push({ name: `${p}.post_attention_layernorm.weight`, dtype, shape: [hidden] });
  }
  tensors.push({ name: 'model.norm.weight', dtype, shape: [hidden] });
  tensors.push({ name: 'lm_head.weight', dtype, shape: [vocab, hidden] });
  return tensors;
}

export function parameterCount(tensors: TinyTensor[]): number {
  return tensors.reduce((sum, t) => sum + t.shape.reduce((a, b) => a * b, 1), 0);
}

export function llamaConfig(layers: number, hidden: number, vocab: number, dtype: string): string {
  return JSON.stringify(
    {
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      num_hidden_layers: layers,
      hidden_size: hidden,
      intermediate_size: hidden * 2,
      num_attention_heads: 2,
      num_key_value_heads: 2,
      vocab_size: vocab,
      torch_dtype: dtype,
    },
    null,
    2,
  );
}

/** A model split into `shards` safetensors files with their index, as transformers saves it. */
export function shardedSafetensors(tensors: TinyTensor[], shards: number, seed: string): Record<string, Buffer> {
  const files: Record<string, Buffer> = {};
  const weightMap: Record<string, string> = {};
  const per = Math.ceil(tensors.length / shards);
  let total = 0;
  for (let s = 0; s < shards; s++) {
    const name = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const part = tensors.slice(s * per, (s + 1) * per);
    files[name] = buildSafetensors(part, `${seed}:${s}`);
    for (const t of part) {
      weightMap[t.name] = name;
      total += t.shape.reduce((a, b) => a * b, 1) * SIZES[t.dtype];
    }
  }
  files['model.safetensors.index.json'] = Buffer.from(JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
  return files;
}
