import { EngineError } from '../errors';
import type { TokenEmbeddingConfig } from '../recipe/types';
import type { BuiltVocabulary } from './build-vocabulary';

/** Where an output row of a default embedding comes from: rows of the tensor's inputs, averaged or one. */
export interface DefaultRow {
  row: number;
  /** Empty for a zero row. */
  sources: { input: number; row: number }[];
}

/**
 * How one vocabulary tensor's rows are rebuilt for the output vocabulary, for every input: runs of
 * rows copied in order, default rows shared by all inputs, and padding rows (each input's mean row).
 * Pure data, compact enough for the plan: identity-like permutations are a few runs.
 */
export interface VocabularyRows {
  /** Output tokens; rows from here to `size` are padding. */
  tokens: number;
  size: number;
  /** Per input: [outputRow, count, sourceRow] runs. Rows in no run take their default. */
  runs: [number, number, number][][];
  defaults: DefaultRow[];
}

/** mergekit's PermutedVocabulary for one tensor whose inputs are `models` (by reference), in order. */
export function vocabularyRows(params: {
  vocabulary: BuiltVocabulary;
  size: number;
  models: string[];
  baseModel: string | undefined;
  tokens: Record<string, TokenEmbeddingConfig>;
  tensorName: string;
}): VocabularyRows {
  const { vocabulary, models } = params;
  const perms = models.map((m) => vocabulary.permutations.get(m)!);
  const configs = new Map(Object.entries(params.tokens));
  const averaged = new Set<string>();
  for (const [token, id] of vocabulary.vocab) {
    if (configs.has(token)) continue;
    const present = perms.map((p) => p[id]! >= 0);
    const count = present.filter(Boolean).length;
    if (count === 1) configs.set(token, { source: { raw: models[present.indexOf(true)]!, path: models[present.indexOf(true)]! } });
    else if (count === 0) configs.set(token, { source: { kind: 'zero' } });
    else if (params.baseModel !== undefined && models.includes(params.baseModel) && perms[models.indexOf(params.baseModel)]![id]! >= 0) {
      configs.set(token, { source: { raw: params.baseModel, path: params.baseModel } });
    } else averaged.add(token);
  }
  const defaults = new Map<number, DefaultRow>();
  const forced = new Set<number>();
  for (const [token, id] of vocabulary.vocab) {
    const cfg = configs.get(token);
    if (cfg?.force) forced.add(id);
    if (!cfg?.force && perms.every((p) => p[id]! >= 0)) continue;
    if (averaged.has(token)) defaults.set(id, { row: id, sources: perms.flatMap((p, input) => (p[id]! >= 0 ? [{ input, row: p[id]! }] : [])) });
    else if (cfg) defaults.set(id, defaultRow(params, perms, token, id, cfg));
  }
  const runs = perms.map((p) => runsOf(p, forced, vocabulary.vocab.size));
  return { tokens: vocabulary.vocab.size, size: params.size, runs, defaults: [...defaults.values()] };
}

function defaultRow(params: Parameters<typeof vocabularyRows>[0], perms: Int32Array[], token: string, id: number, cfg: TokenEmbeddingConfig): DefaultRow {
  const source = cfg.source;
  if (!source || ('kind' in source && source.kind === 'zero')) return { row: id, sources: [] };
  const model = 'kind' in source ? source.model.raw : source.raw;
  const input = params.models.indexOf(model);
  const fail = (why: string) => new EngineError(`tokenizer: token ${JSON.stringify(token)} ${why} (tensor "${params.tensorName}")`, { key: 'tokenizer', tensor: params.tensorName });
  if (input < 0) throw fail(`takes its embedding from ${model}, which is not an input of this tensor`);
  if ('kind' in source) {
    const row = source.tokenId ?? params.vocabulary.originalVocabs.get(model)?.get(source.token ?? '');
    if (row === undefined) throw fail(`takes the embedding of ${JSON.stringify(source.token)}, which ${model} does not have`);
    return { row: id, sources: [{ input, row }] };
  }
  const row = perms[input]![id]!;
  if (row < 0) throw fail(`is not in ${model}`);
  return { row: id, sources: [{ input, row }] };
}

function runsOf(p: Int32Array, forced: Set<number>, tokens: number): [number, number, number][] {
  const runs: [number, number, number][] = [];
  for (let id = 0; id < tokens; id++) {
    const row = p[id]!;
    if (row < 0 || forced.has(id)) continue;
    const last = runs[runs.length - 1];
    if (last && last[0] + last[1] === id && last[2] + last[1] === row) last[1]++;
    else runs.push([id, 1, row]);
  }
  return runs;
}
