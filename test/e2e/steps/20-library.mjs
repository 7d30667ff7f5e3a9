import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tsImport } from 'tsx/esm/api';

const TINY = 'alloy-test/tiny-llama';
const PRIVATE = 'alloy-e2e/private-llama';
const TOKEN = 'hf_e2eLibraryFlowToken0123456789';

/**
 * `alloy serve` on its own Hugging Face home, talking to the local fake Hub: the main flow's server
 * uses the machine's Hub settings, and this flow must neither reach huggingface.co nor touch the
 * user's cache. No HF_* variable of the machine leaks in.
 */
async function startHubServer(hubUrl, dir) {
  const env = { ...process.env, HF_HOME: join(dir, 'hf'), HF_ENDPOINT: hubUrl, HF_HUB_DISABLE_TELEMETRY: '1' };
  for (const name of ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HF_TOKEN_PATH', 'HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'XDG_CACHE_HOME']) delete env[name];
  const server = spawn(process.execPath, ['bin/alloy.mjs', 'serve', '--port', '0', '--output-root', join(dir, 'merges'), '--settings-file', join(dir, 'config', 'settings.json')], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  server.stdout.on('data', (chunk) => (output += chunk));
  server.stderr.on('data', (chunk) => (output += chunk));
  const address = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the Hub flow's server printed no address: ${output}`)), 60_000);
    server.stdout.on('data', () => {
      const match = /running at (\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    server.on('exit', (code) => reject(new Error(`the Hub flow's server exited with ${code}: ${output}`)));
  });
  const stop = async () => {
    if (server.exitCode !== null) return;
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGTERM');
    const timer = setTimeout(() => server.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  return { address, output: () => output, stop };
}

/** Download, library, delete and the Hub token, against a local fake Hub, in the browser. */
export default async function ({ page, step, shots, address }) {
  const dir = mkdtempSync(join(tmpdir(), 'alloy-e2e-hub-'));
  mkdirSync(join(dir, 'hf'), { recursive: true });
  const { FakeHub } = await tsImport('../../services/fake-hub/fake-hub.ts', import.meta.url);
  const { tinyLlamaFiles } = await tsImport('../../services/fake-hub/fixture-repos.ts', import.meta.url);
  const hub = new FakeHub();
  hub.addRepo(TINY, tinyLlamaFiles());
  hub.addRepo(PRIVATE, tinyLlamaFiles(), { private: true });
  hub.tokens.add(TOKEN);
  let served;
  const storage = join(dir, 'hf', 'hub', 'models--alloy-test--tiny-llama');
  const row = () => page.locator(`[data-testid=library-row][data-model="${TINY}"]`);

  try {
    await step('library: a web server whose Hub is a local fake one', async () => {
      await hub.start();
      served = await startHubServer(hub.url, dir);
      await page.goto(`${served.address}#library`);
      await page.getByTestId('library-row').first().waitFor({ timeout: 15_000 });
      const free = await page.getByTestId('disk-free').innerText();
      if (!/^\d+(\.\d)? [KMGT]?B free on the cache's disk$/.test(free)) throw new Error(`disk free shows "${free}"`);
    });

    await step('library: looks up a repo on the Hub, then downloads it with visible progress', async () => {
      await page.getByTestId('download-repo').fill(TINY);
      await page.getByTestId('download-peek').click();
      await page.getByTestId('download-summary').waitFor({ timeout: 10_000 });
      const architecture = await page.getByTestId('peek-architecture').innerText();
      const dtypes = await page.getByTestId('peek-dtypes').innerText();
      if (!architecture.includes('LlamaForCausalLM') || dtypes !== 'F32') throw new Error(`the peek shows ${architecture}, ${dtypes}`);
      await page.screenshot({ path: join(shots, 'library-peek.png'), fullPage: true });
      // Slow enough to see it move: about 3 KB a second for about 11 KB.
      hub.faults.bytesPerSecond = 3000;
      await page.getByTestId('download-start').click();
      const item = page.locator(`[data-testid=download-item][data-repo="${TINY}"]`);
      await item.locator('[data-testid=download-rate]').waitFor({ timeout: 10_000 });
      await page.waitForFunction(
        (repo) => {
          const el = document.querySelector(`[data-testid=download-item][data-repo="${repo}"]`);
          const bar = el?.querySelector('[role=progressbar]');
          const eta = el?.querySelector('[data-testid=download-eta]')?.textContent ?? '';
          return Number(bar?.getAttribute('aria-valuenow')) > 0 && /left$/.test(eta.trim());
        },
        TINY,
        { timeout: 10_000 },
      );
      const bytes = await item.getByTestId('download-bytes').innerText();
      if (!/ of \d+(\.\d)? KB · \d+(\.\d)? K?B\/s · /.test(bytes)) throw new Error(`progress shows "${bytes}"`);
      await item.locator('details.files summary').click();
      await page.screenshot({ path: join(shots, 'library-downloading.png'), fullPage: true });
      hub.faults.bytesPerSecond = 0;
      await page.locator(`[data-testid=download-item][data-repo="${TINY}"][data-state=done]`).waitFor({ timeout: 30_000 });
    });

    await step('library: the downloaded model is listed, in the cache layout Python reads', async () => {
      await row().waitFor({ timeout: 10_000 });
      const text = await row().innerText();
      if (!text.includes('LlamaForCausalLM') || !text.includes('hf-cache') || !text.includes('F32')) throw new Error(`the row reads: ${text}`);
      const commit = readFileSync(join(storage, 'refs', 'main'), 'utf8').trim();
      const files = readdirSync(join(storage, 'snapshots', commit));
      if (!files.includes('config.json') || !files.includes('model-00001-of-00002.safetensors')) throw new Error(`snapshot holds ${files.join(', ')}`);
      await page.screenshot({ path: join(shots, 'library-downloaded.png'), fullPage: true });
    });

    await step('library: deletes it after a confirmation that says what it frees', async () => {
      await row().getByTestId('delete-model').click();
      const dialog = page.getByTestId('delete-dialog');
      await dialog.getByTestId('delete-frees').waitFor({ timeout: 10_000 });
      const frees = await dialog.getByTestId('delete-frees').innerText();
      const amount = /This frees (\d+(?:\.\d)? [KM]?B)/.exec(frees)?.[1];
      if (!amount) throw new Error(`the dialog says: ${frees}`);
      await page.screenshot({ path: join(shots, 'library-delete-dialog.png'), fullPage: true });
      // Escape keeps it.
      await page.keyboard.press('Escape');
      await dialog.waitFor({ state: 'detached', timeout: 5_000 });
      if (!existsSync(storage)) throw new Error('Escape deleted the model');
      await row().getByTestId('delete-model').click();
      await page.getByTestId('delete-confirm').click();
      const result = await page.getByTestId('delete-result').innerText({ timeout: 10_000 });
      if (result !== `Deleted ${TINY}: ${amount} freed.`) throw new Error(`after the delete: "${result}" (the dialog said ${amount})`);
      await row().waitFor({ state: 'detached', timeout: 10_000 });
      if (existsSync(storage)) throw new Error(`${storage} is still there`);
    });

    await step('settings: a token set in web mode is held in memory only, never shown, and downloads use it', async () => {
      await page.getByTestId('nav-settings').click();
      const status = page.getByTestId('token-status');
      await status.waitFor({ timeout: 10_000 });
      if ((await status.getAttribute('data-source')) !== 'none') throw new Error(`token status: ${await status.innerText()}`);
      const storageNote = await page.getByTestId('token-storage').innerText();
      if (!storageNote.includes('kept in memory only')) throw new Error(`the storage note says: ${storageNote}`);
      await page.getByTestId('token-input').fill(TOKEN);
      await page.getByTestId('token-input').press('Enter');
      await page.locator('[data-testid=token-status][data-source=settings]').waitFor({ timeout: 10_000 });
      if ((await page.getByTestId('token-input').inputValue()) !== '') throw new Error('the token stays in the field');
      if ((await page.content()).includes(TOKEN)) throw new Error('the page shows the token');
      await page.screenshot({ path: join(shots, 'settings-token.png'), fullPage: true });
      // The private repo is found now.
      await page.getByTestId('nav-library').click();
      await page.getByTestId('download-repo').fill(PRIVATE);
      await page.getByTestId('download-peek').click();
      await page.getByTestId('download-summary').waitFor({ timeout: 10_000 });
      if (!hub.requestsTo(PRIVATE).every((r) => r.authorized)) throw new Error('a request for the private repo went without the token');
      if (served.output().includes(TOKEN)) throw new Error('the server printed the token');
    });
  } finally {
    hub.faults.bytesPerSecond = 0;
    await served?.stop();
    await hub.close();
    rmSync(dir, { recursive: true, force: true });
    // Later flows run on the main server.
    await page.goto(address).catch(() => undefined);
  }
}
