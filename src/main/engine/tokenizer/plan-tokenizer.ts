import { EngineError } from '../errors';
import type { ModelReference, Recipe } from '../recipe/types';
import { buildVocabulary, paddedSize, type BuiltVocabulary, type VocabularyModel } from './build-vocabulary';

export interface TokenizerModel {
  ref: ModelReference;
  dir: string;
  config: Record<string, unknown>;
}

export interface PlannedVocabulary extends BuiltVocabulary {
  /** Output rows of every vocabulary tensor (the tokens padded to pad_to_multiple_of). */
  size: number;
  /** The folder the output's other tokenizer files come from. */
  filesFrom: string;
}

/**
 * The output vocabulary when a recipe sets `tokenizer_source` or `tokenizer:` (mergekit's
 * BuildTokenizer), or undefined when it sets neither and the donor's tokenizer is copied as it is.
 */
export async function planTokenizer(recipe: Recipe, models: TokenizerModel[], base: TokenizerModel, source: TokenizerModel | undefined): Promise<PlannedVocabulary | undefined> {
  const setting = recipe.tokenizer?.source ?? recipe.tokenizerSource;
  if (setting === undefined) return undefined;
  const asVocabularyModel = (m: TokenizerModel): VocabularyModel => ({ ref: m.ref, dir: m.dir, rows: typeof m.config['vocab_size'] === 'number' ? m.config['vocab_size'] : Infinity });
  try {
    const built = await buildVocabulary({
      base: asVocabularyModel(base),
      models: models.map(asVocabularyModel),
      source: typeof setting === 'string' ? setting : asVocabularyModel(source!),
      addTokens: Object.keys(recipe.tokenizer?.tokens ?? {}),
    });
    return { ...built, size: paddedSize(built.vocab.size, recipe.tokenizer?.padToMultipleOf), filesFrom: (source ?? base).dir };
  } catch (error) {
    const key = recipe.tokenizer ? 'tokenizer' : 'tokenizer_source';
    const at = recipe.positions[key];
    if (error instanceof EngineError && at) throw new EngineError(`${at.file}:${at.line}:${at.column}: ${key}: ${error.message}`, { ...error.location, key });
    throw error;
  }
}
