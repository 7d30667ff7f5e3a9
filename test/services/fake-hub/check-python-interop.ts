/**
 * A manual check (Python's huggingface_hub is not installed in CI): Alloy and huggingface_hub download
 * the same repo into one cache at the same time, each order, against the fake Hub throttled to 1.5 MB/s.
 *   pip install huggingface_hub && npx tsx test/services/fake-hub/check-python-interop.ts   (PYTHON=… to pick one)
 * Each order must print one whole GET of the weights from the CDN (the second waits on the first's
 * `.locks/…/<etag>.lock`, then finds the blob), a blob equal to the weights, and both finished.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DownloadManager } from '../../../src/main/services/downloads/download-manager';
import { FakeHub } from './fake-hub';
import { pseudoRandomBytes } from './tiny-model';

const REPO = 'alloy-test/both';
const weights = pseudoRandomBytes(3_000_000, 'interop');
const hub = new FakeHub();
hub.addRepo(REPO, { 'config.json': '{}', 'model.safetensors': weights });
await hub.start();
hub.faults.bytesPerSecond = 1_500_000;
let failures = 0;
try {
  for (const order of ['python first', 'alloy first'] as const) {
    const cache = await mkdtemp(join(tmpdir(), 'alloy-interop-'));
    const notices = new Set<string>();
    const m = new DownloadManager({ cacheDir: cache, hubOptions: async () => ({ hubUrl: hub.url }), onProgress: (i) => i.notice && notices.add(i.notice) });
    const before = hub.requests.length;
    const python = () =>
      new Promise<number | null>((done) => {
        const script = `from huggingface_hub import snapshot_download, __version__; import filelock; print("huggingface_hub", __version__, "filelock", filelock.__version__); snapshot_download("${REPO}")`;
        const env = { ...process.env, HF_ENDPOINT: hub.url, HF_HUB_CACHE: cache, HF_HUB_DISABLE_TELEMETRY: '1', HF_TOKEN: '', HF_HUB_DISABLE_XET: '1', HF_HUB_DISABLE_PROGRESS_BARS: '1' };
        spawn(process.env['PYTHON'] ?? 'python3', ['-c', script], { stdio: 'inherit', env }).on('close', done);
      });
    let py: Promise<number | null>;
    if (order === 'python first') {
      py = python();
      await new Promise((r) => setTimeout(r, 1200));
      m.start({ repo: REPO });
    } else {
      m.start({ repo: REPO });
      await new Promise((r) => setTimeout(r, 600));
      py = python();
    }
    await m.idle();
    const code = await py;
    const blob = await readFile(join(cache, 'models--alloy-test--both', 'blobs', createHash('sha256').update(weights).digest('hex')));
    const gets = hub.requests.slice(before).filter((r) => r.path.startsWith('/cdn/')).map((r) => r.range ?? 'whole');
    const ok = code === 0 && m.list()[0]?.state === 'done' && blob.equals(weights) && gets.length === 1;
    if (!ok) failures++;
    console.log(`${ok ? 'ok' : 'FAILED'} - ${order}: python exit ${code}, alloy ${m.list()[0]?.state}, blob ${blob.equals(weights) ? 'equal' : 'DIFFERENT'}, CDN GETs ${JSON.stringify(gets)}${notices.size ? `, Alloy said: ${[...notices].join(' | ')}` : ''}`);
    await rm(cache, { recursive: true, force: true });
  }
} finally {
  await hub.close();
}
process.exit(failures ? 1 : 0);
