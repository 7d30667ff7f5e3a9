/**
 * The tokenizer of the merged model: copied from the donor model (the base model, else the first
 * referenced one), as mergekit's `_copy_tokenizer` (mergekit/merge.py) does when the recipe asks
 * for no tokenizer merge.
 */
import { copyFile, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { EngineError } from '../errors';
import { parseJson } from '../model/parse-json';

/**
 * mergekit's list, in its order, plus `vocab.json`: mergekit copies files only when the donor has
 * tokenizer_config.json and tokenizer.json or tokenizer.model, and otherwise re-saves the tokenizer
 * through transformers, which writes a BPE tokenizer's vocab.json; copying it keeps such donors
 * (and slow GPT-2 tokenizers) loadable. generation_config.json and the chat template files are on
 * mergekit's list too.
 */
export const TOKENIZER_FILES: readonly string[] = [
  'tokenizer_config.json',
  'special_tokens_map.json',
  'tokenizer.json',
  'tokenizer.model',
  'vocab.json',
  'added_tokens.json',
  'merges.txt',
  'chat_template.jinja',
  'generation_config.json',
  'chat_template.json',
  'video_preprocessor_config.json',
];

/** Copies each of {@link TOKENIZER_FILES} present in `fromDir` into `toDir`; returns the names copied. */
export async function copyTokenizerFiles(fromDir: string, toDir: string, wanted: (name: string) => boolean = () => true): Promise<string[]> {
  const copied: string[] = [];
  for (const name of TOKENIZER_FILES.filter(wanted)) {
    const from = join(fromDir, name);
    // stat follows links: the Hugging Face cache keeps files as links into its blob store.
    const info = await stat(from).catch(() => undefined);
    if (!info?.isFile()) continue;
    await copyFile(from, join(toDir, name));
    copied.push(name);
  }
  return copied;
}

/** Whether mergekit would copy the files (true) or re-save the tokenizer through transformers (false). */
export async function mergekitCopiesTokenizer(fromDir: string): Promise<boolean> {
  const isFile = async (name: string): Promise<boolean> => (await stat(join(fromDir, name)).catch(() => undefined))?.isFile() ?? false;
  return (await isFile('tokenizer_config.json')) && ((await isFile('tokenizer.json')) || (await isFile('tokenizer.model')));
}

/** What each JSON file of the list must hold at its top level, beyond being JSON. */
const JSON_SHAPES: Record<string, (value: unknown) => string | undefined> = {
  'tokenizer.json': (v) => (isObject(v) && isObject(v['model']) ? undefined : 'not a tokenizer.json (no "model" object)'),
  'tokenizer_config.json': (v) => (isObject(v) ? undefined : 'expected a JSON object'),
  'special_tokens_map.json': (v) => (isObject(v) ? undefined : 'expected a JSON object'),
  'vocab.json': (v) => (isObject(v) ? undefined : 'expected a JSON object of token → id'),
  'added_tokens.json': (v) => (isObject(v) ? undefined : 'expected a JSON object of token → id'),
  'generation_config.json': (v) => (isObject(v) ? undefined : 'expected a JSON object'),
  'chat_template.json': (v) => (isObject(v) ? undefined : 'expected a JSON object'),
};

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Reads each JSON tokenizer file the donor has, before a merge starts rather than after it: a broken
 * one is an error naming the file, line and column, never a broken file copied into the output.
 */
export async function checkTokenizerFiles(fromDir: string): Promise<void> {
  for (const [name, shapeProblem] of Object.entries(JSON_SHAPES)) {
    const file = join(fromDir, name);
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    const problem = shapeProblem(parseJson(text, file));
    if (problem) throw new EngineError(`${file}: ${problem}`, { file });
  }
}
