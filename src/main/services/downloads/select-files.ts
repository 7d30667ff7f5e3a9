import type { RemoteFile } from './list-remote-files';

/** Which files to take: what a merge needs, everything, or the paths named. */
export type FileSelection = 'merge' | 'all' | string[];

const MERGE_FILES = new Set([
  'config.json',
  'generation_config.json',
  'model.safetensors.index.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'tokenizer.model',
  'special_tokens_map.json',
  'added_tokens.json',
  'vocab.json',
  'merges.txt',
  'vocab.txt',
  'spiece.model',
  'chat_template.jinja',
  'chat_template.json',
]);

/**
 * The files a merge needs: top-level safetensors shards and their index, config, generation
 * config and tokenizer files; PyTorch `.bin` weights only when the repo has no safetensors
 * (and Mistral's `consolidated.safetensors` only when it is the only safetensors file).
 */
export function selectFiles(files: RemoteFile[], selection: FileSelection = 'merge'): RemoteFile[] {
  if (selection === 'all') return files;
  if (Array.isArray(selection)) {
    const wanted = new Set(selection);
    return files.filter((f) => wanted.has(f.path));
  }
  const top = files.filter((f) => !f.path.includes('/'));
  const safetensors = top.filter((f) => f.path.endsWith('.safetensors'));
  const transformers = safetensors.filter((f) => !f.path.startsWith('consolidated'));
  const weights = transformers.length ? transformers : safetensors;
  const pytorch = weights.length ? [] : top.filter((f) => /^pytorch_model.*\.bin$/.test(f.path) || f.path === 'pytorch_model.bin.index.json');
  const chosen = new Set([...weights, ...pytorch, ...top.filter((f) => MERGE_FILES.has(f.path))]);
  return files.filter((f) => chosen.has(f));
}
