import { EngineError } from '../errors';
import type { ModelReference, Recipe } from '../recipe/types';
import { firstDifference, readVocabulary } from './vocabulary';

export interface TokenizerModel {
  ref: ModelReference;
  dir: string;
  config: Record<string, unknown>;
}

/**
 * Where the output's tokenizer comes from when a recipe sets `tokenizer_source` or `tokenizer:`.
 * mergekit then builds an output vocabulary and re-indexes every model's embedding and LM-head rows
 * by it. When every model (and the source) has the same vocabulary that re-indexing is the identity
 * and the merge is the plain one with the source's tokenizer, which is what Alloy does. Vocabularies
 * that differ, forced tokens and padding need the re-indexing, which Alloy does not do yet: it says
 * so rather than give different embeddings than mergekit.
 */
export async function planTokenizer(recipe: Recipe, models: TokenizerModel[], base: TokenizerModel, source: TokenizerModel | undefined): Promise<string | undefined> {
  const setting = recipe.tokenizer?.source ?? recipe.tokenizerSource;
  if (setting === undefined) return undefined;
  const key = recipe.tokenizer ? 'tokenizer' : 'tokenizer_source';
  const at = recipe.positions[key];
  const where = at ? `${at.file}:${at.line}:${at.column}: ` : '';
  const unsupported = (why: string) => new EngineError(`${where}${key}: ${why}; Alloy does not merge vocabularies yet, and merging the embeddings as they are would not give mergekit's model`, { key });
  const baseVocab = await readVocabulary(base.dir, base.config);
  if (!baseVocab) throw new EngineError(`${where}${key}: ${base.ref.raw} has no tokenizer.json to build the output vocabulary from`, { key });
  const others = source && !models.some((m) => m.dir === source.dir) ? [...models, source] : models;
  for (const model of others) {
    if (model.dir === base.dir) continue;
    const vocab = await readVocabulary(model.dir, model.config);
    if (!vocab) continue; // mergekit: "Unable to load tokenizer … Assuming same as" the base.
    const difference = firstDifference(baseVocab, vocab);
    if (difference) throw unsupported(`the vocabularies of ${base.ref.raw} and ${model.ref.raw} differ (${difference})`);
  }
  const tokens = recipe.tokenizer?.tokens ?? {};
  const forced = Object.entries(tokens).find(([token, cfg]) => cfg.force || !baseVocab.has(token));
  if (forced) throw unsupported(`token ${JSON.stringify(forced[0])} is ${forced[1].force ? 'forced' : 'new'}`);
  const rows = base.config['vocab_size'];
  if (typeof rows === 'number' && rows !== baseVocab.size) throw unsupported(`${base.ref.raw} has ${rows} embedding rows for ${baseVocab.size} tokens, and mergekit resizes the embeddings to the tokens`);
  const multiple = recipe.tokenizer?.padToMultipleOf;
  if (multiple && baseVocab.size % multiple !== 0) throw unsupported(`pad_to_multiple_of ${multiple} would add rows to a vocabulary of ${baseVocab.size}`);
  return (source ?? base).dir;
}
