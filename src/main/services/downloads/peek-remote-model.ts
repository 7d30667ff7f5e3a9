import type { RemoteModelSummary } from '../../../shared/library-contract';
import { readModelConfig } from '../library/read-model-config';
import type { HubOptions } from './hub-options';
import { listRemoteFiles, type RemoteFile } from './list-remote-files';
import { readRemoteHeader } from './read-remote-header';
import { fetchResolvedFile } from './resolve-file';
import { selectFiles } from './select-files';
import { mapLimit } from '../map-limit';

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer.model', 'spiece.model', 'vocab.json'];
const PARALLEL_HEADERS = 8;

/**
 * A Hub repo's architecture, size and dtypes before downloading it: config.json, and each
 * safetensors shard's header read with range requests (never tensor data).
 */
export async function peekRemoteModel(params: { hub: HubOptions; repo: string; revision?: string }): Promise<RemoteModelSummary> {
  const remote = await listRemoteFiles(params);
  const selected = new Set(selectFiles(remote.files, 'merge'));
  const at = { hub: params.hub, repo: params.repo, commit: remote.commit };
  const hasConfig = remote.files.some((f) => f.path === 'config.json');
  const config = hasConfig ? ((await (await fetchResolvedFile({ ...at, revision: remote.commit, path: 'config.json' })).json()) as Record<string, unknown>) : {};
  const shards = [...selected].filter((f) => f.path.endsWith('.safetensors'));
  const headers = await mapLimit(shards, PARALLEL_HEADERS, (file) => readRemoteHeader({ ...at, file }));
  const dtypes = new Set<string>();
  let parameters = 0;
  for (const tensors of headers) {
    for (const entry of tensors.values()) {
      dtypes.add(entry.dtype);
      parameters += entry.numel;
    }
  }
  const pytorch = [...selected].filter((f) => f.path.endsWith('.bin'));
  const facts = hasConfig ? readModelConfig(config) : { ...readModelConfig({}), mergeable: false, problem: `${params.repo} has no config.json` };
  return {
    repo: params.repo,
    commit: remote.commit,
    gated: remote.gated,
    ...facts,
    parameters,
    dtypes: [...dtypes].sort(),
    shards: shards.length || pytorch.length,
    weightBytes: sum(shards),
    downloadBytes: sum([...selected]),
    files: remote.files.map((f) => ({ path: f.path, size: f.size, selected: selected.has(f) })),
    hasTokenizer: remote.files.some((f) => TOKENIZER_FILES.includes(f.path)),
    weightFormat: shards.length ? 'safetensors' : pytorch.length ? 'pytorch' : 'none',
  };
}

function sum(files: RemoteFile[]): number {
  return files.reduce((total, f) => total + f.size, 0);
}
