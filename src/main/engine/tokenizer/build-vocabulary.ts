import type { ModelReference, TokenizerConfig } from '../recipe/types';
import { EngineError } from '../errors';
import { TokenizerFile } from './tokenizer-file';

export interface VocabularyModel {
  ref: ModelReference;
  dir: string;
  /** Embedding rows (config.json's vocab_size). */
  rows: number;
}

export interface BuiltVocabulary {
  tokenizer: TokenizerFile;
  /** token → output id. */
  vocab: Map<string, number>;
  /** Output rows: the tokens, padded to pad_to_multiple_of. */
  size: number;
  /** Per model (by reference): output id → the model's row, or -1 where it lacks the token. */
  permutations: Map<string, Int32Array>;
  /** Per model: its own tokenizer's token → id (the base's where it has no tokenizer). */
  originalVocabs: Map<string, Map<string, number>>;
}

/** mergekit's build_tokenizer (tokenizer/build.py): the output vocabulary and each model's permutation. */
export async function buildVocabulary(params: { base: VocabularyModel; models: VocabularyModel[]; source: 'union' | 'base' | VocabularyModel; addTokens: string[] }): Promise<BuiltVocabulary> {
  const { base, models } = params;
  const baseFile = await TokenizerFile.read(base.dir);
  if (!baseFile) throw new EngineError(`${base.ref.raw}: no tokenizer.json, so there is no vocabulary to build the output's from`, { key: 'tokenizer_source' });
  const baseTokenizer = baseFile.strip(base.rows);
  const tokenizers = new Map<string, { model: VocabularyModel; tokenizer: TokenizerFile }>([[base.ref.raw, { model: base, tokenizer: baseTokenizer }]]);
  for (const model of models) {
    if (tokenizers.has(model.ref.raw)) continue;
    const tokenizer = await TokenizerFile.read(model.dir);
    // mergekit: "Unable to load tokenizer … Assuming same as" the base.
    if (tokenizer) tokenizers.set(model.ref.raw, { model, tokenizer });
  }
  const out = await outputTokenizer(params.source, baseTokenizer, [...tokenizers.values()]);
  for (const token of params.addTokens) out.add(token);
  const vocab = out.vocab();
  const permutations = new Map<string, Int32Array>();
  for (const model of models) {
    const own = (tokenizers.get(model.ref.raw) ?? tokenizers.get(base.ref.raw)!).tokenizer.vocab();
    const p = new Int32Array(vocab.size).fill(-1);
    for (const [token, id] of vocab) {
      const row = own.get(token);
      if (row !== undefined && row < model.rows) p[id] = row;
    }
    permutations.set(model.ref.raw, p);
  }
  return { tokenizer: out, vocab, size: vocab.size, permutations, originalVocabs: new Map([...tokenizers].map(([key, t]) => [key, t.tokenizer.vocab()])) };
}

export function paddedSize(tokens: number, multiple: number | undefined): number {
  return multiple && tokens % multiple ? (Math.floor(tokens / multiple) + 1) * multiple : tokens;
}

async function outputTokenizer(source: 'union' | 'base' | VocabularyModel, base: TokenizerFile, all: { model: VocabularyModel; tokenizer: TokenizerFile }[]): Promise<TokenizerFile> {
  if (source === 'base') return base.clone();
  if (source === 'union') return unionTokenizer(base, all);
  const tokenizer = await TokenizerFile.read(source.dir);
  if (!tokenizer) throw new EngineError(`tokenizer source ${source.ref.raw} has no tokenizer.json`, { key: 'tokenizer_source' });
  return tokenizer;
}

/**
 * mergekit's build_union_tokenizer: the base's tokens, then every other token below its model's
 * embedding rows in model order (mergekit walks a hash map, so its order among several new tokens of
 * one model is arbitrary; Alloy takes id order), then the added tokens, the first settings winning.
 */
function unionTokenizer(base: TokenizerFile, all: { model: VocabularyModel; tokenizer: TokenizerFile }[]): TokenizerFile {
  const plain: string[] = [];
  const seen = new Set<string>();
  const added = new Map<string, (typeof all)[number]['tokenizer']['added'][number]>();
  for (const { model, tokenizer } of all) {
    const addedHere = new Set(tokenizer.added.map((t) => t.content));
    for (const [token, id] of tokenizer.vocab()) {
      if (id >= model.rows || addedHere.has(token) || seen.has(token)) continue;
      seen.add(token);
      plain.push(token);
    }
    for (const token of [...tokenizer.added].sort((a, b) => a.id - b.id)) {
      if (token.id < model.rows && !added.has(token.content)) added.set(token.content, token);
    }
  }
  const out = base.clone();
  const baseVocab = base.vocab();
  for (const token of plain) if (!added.has(token) && !baseVocab.has(token)) out.add(token);
  for (const { content, id: _id, ...info } of added.values()) out.add(content, info);
  return out;
}

export type { TokenizerConfig };
