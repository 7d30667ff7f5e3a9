import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EngineError } from '../errors';

/**
 * A model's vocabulary as transformers' `get_vocab()` sees it: the tokenizer model's tokens plus the
 * added tokens, token → id, without the ids at or past config.json's vocab_size (mergekit strips those).
 * Undefined when the model has no tokenizer.json to read.
 */
export async function readVocabulary(dir: string, config: Record<string, unknown>): Promise<Map<string, number> | undefined> {
  const file = join(dir, 'tokenizer.json');
  const text = await readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  let json: { model?: { vocab?: unknown }; added_tokens?: { id?: unknown; content?: unknown }[] };
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new EngineError(`${file}: not valid JSON (${(error as Error).message})`, { file });
  }
  const vocab = new Map<string, number>();
  const tokens = json.model?.vocab;
  if (Array.isArray(tokens)) tokens.forEach((entry, id) => vocab.set(String(Array.isArray(entry) ? entry[0] : entry), id));
  else if (tokens && typeof tokens === 'object') for (const [token, id] of Object.entries(tokens)) vocab.set(token, Number(id));
  for (const added of json.added_tokens ?? []) if (typeof added.content === 'string' && typeof added.id === 'number') vocab.set(added.content, added.id);
  const size = typeof config['vocab_size'] === 'number' ? config['vocab_size'] : Infinity;
  for (const [token, id] of vocab) if (id >= size) vocab.delete(token);
  return vocab;
}

/** The first token whose id differs between two vocabularies, described for a message; undefined if equal. */
export function firstDifference(a: Map<string, number>, b: Map<string, number>): string | undefined {
  for (const [token, id] of a) {
    const other = b.get(token);
    if (other !== id) return `${JSON.stringify(token)} is ${id} in one and ${other === undefined ? 'absent' : other} in the other`;
  }
  for (const [token, id] of b) if (!a.has(token)) return `${JSON.stringify(token)} (${id}) is only in one`;
  return undefined;
}
