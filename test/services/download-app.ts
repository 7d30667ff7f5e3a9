/**
 * A stand-in for the app in download-queue.test.ts: a Node process whose DownloadManager keeps its
 * queue in STATE_FILE, downloads REPO… one at a time, and prints "bytes REPO N" as bytes arrive; the
 * test kills it mid-download, as a crash or a power cut would.
 *   node --import tsx test/services/download-app.ts CACHE_DIR STATE_FILE HUB_URL REPO…
 */
import { DownloadManager } from '../../src/main/services/downloads/download-manager';

const [cacheDir, stateFile, hubUrl, ...repos] = process.argv.slice(2) as [string, string, string, ...string[]];
const manager = new DownloadManager({
  cacheDir,
  stateFile,
  maxConcurrent: 1,
  progressIntervalMs: 0,
  hubOptions: async () => ({ hubUrl }),
  onProgress: (info) => process.stdout.write(`bytes ${info.repo} ${info.downloadedBytes}\n`),
});
for (const repo of repos) manager.start({ repo });
