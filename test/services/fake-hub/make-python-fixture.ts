/**
 * Regenerates test/fixtures/hf-cache with Python's huggingface_hub against the fake Hub:
 *   pip install huggingface_hub && npx tsx test/services/fake-hub/make-python-fixture.ts
 * tiny-llama is downloaded at its first commit (no ref) and at main (refs/main), so the two
 * snapshots share every blob but config.json; tiny-mistral at main.
 */
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import { FakeHub } from './fake-hub';
import { addFixtureRepos, TINY_LLAMA, TINY_MISTRAL } from './fixture-repos';

const target = resolve('test/fixtures/hf-cache');
const hub = new FakeHub();
const { llamaFirst } = addFixtureRepos(hub);
await hub.start();
await rm(target, { recursive: true, force: true });
const script = `
import sys
from huggingface_hub import snapshot_download, __version__
print("huggingface_hub", __version__)
snapshot_download("${TINY_LLAMA}", revision="${llamaFirst}")
snapshot_download("${TINY_LLAMA}")
snapshot_download("${TINY_MISTRAL}")
`;
try {
  const python = spawn('python3', ['-c', script], {
    stdio: 'inherit',
    env: { ...process.env, HF_ENDPOINT: hub.url, HF_HUB_CACHE: target, HF_HUB_DISABLE_TELEMETRY: '1', HF_TOKEN: '', HF_HUB_DISABLE_XET: '1' },
  });
  const code = await new Promise((done) => python.on('close', done));
  if (code !== 0) throw new Error(`python exited with ${String(code)}`);
} finally {
  await hub.close();
}
