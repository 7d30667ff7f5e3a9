// Browser test of the whole app in web mode: Debian's Chromium driven by playwright-core.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const outputRoot = mkdtempSync(join(tmpdir(), 'alloy-e2e-'));
const shots = 'test-results';
mkdirSync(shots, { recursive: true });
let passed = 0;
let failed = 0;

function startServer() {
  const server = spawn(process.execPath, ['bin/alloy.mjs', 'serve', '--port', '0', '--output-root', outputRoot], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`the server printed no URL: ${text}`)), 60_000);
    server.stdout.on('data', (chunk) => {
      text += chunk;
      const match = /running at (\S+)/.exec(text);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    server.on('exit', (code) => reject(new Error(`the server exited with ${code}: ${text}`)));
  });
  return { server, url };
}

async function step(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok - ${name}`);
  } catch (error) {
    failed++;
    console.log(`not ok - ${name}\n  ${String(error?.stack ?? error).split('\n').join('\n  ')}`);
  }
}

const { server, url } = startServer();
let browser;
try {
  const address = await url;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 820 } });
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));

  await step('the library lists the demo models', async () => {
    await page.goto(address);
    await page.getByTestId('library-row').first().waitFor({ timeout: 15_000 });
    const rows = await page.getByTestId('library-row').allInnerTexts();
    for (const name of ['alloy-demo-base', 'alloy-demo-chat', 'alloy-demo-code']) {
      if (!rows.some((r) => r.includes(name) && r.includes('LlamaForCausalLM'))) throw new Error(`no row for ${name}: ${rows.join(' | ')}`);
    }
    await page.screenshot({ path: join(shots, 'library.png'), fullPage: true });
  });

  await step('a broken recipe is marked with its line', async () => {
    await page.getByTestId('nav-merge').click();
    const editor = page.getByTestId('recipe-editor');
    await editor.waitFor();
    await page.waitForFunction(() => document.querySelector('[data-testid=recipe-editor]')?.value.includes('merge_method'));
    const good = await editor.inputValue();
    await editor.fill(good.replace('merge_method: linear', 'merge_methd: linear'));
    await page.getByTestId('plan-button').click();
    const problems = await page.getByTestId('recipe-problems').innerText({ timeout: 10_000 });
    if (!/line \d+:1/.test(problems) || !problems.includes('did you mean "merge_method"')) throw new Error(`problems: ${problems}`);
    await page.screenshot({ path: join(shots, 'merge-problem.png'), fullPage: true });
    await editor.fill(good);
  });

  await step('plans and runs the demo merge to 100 %', async () => {
    await page.getByTestId('plan-button').click();
    const tensors = await page.getByTestId('plan-tensors').innerText({ timeout: 10_000 });
    if (tensors.trim() !== '39') throw new Error(`plan shows ${tensors} tensors`);
    await page.getByTestId('output-name').fill('e2e-merge');
    await page.getByTestId('run-button').click();
    await page.locator('[data-testid=job-status][data-state=done]').waitFor({ timeout: 60_000 });
    const percent = await page.getByTestId('job-percent').innerText();
    if (!percent.includes('100 %')) throw new Error(`progress shows ${percent}`);
    await page.screenshot({ path: join(shots, 'merge-done.png'), fullPage: true });
    const out = join(outputRoot, 'e2e-merge');
    const files = existsSync(out) ? readdirSync(out) : [];
    if (!files.includes('config.json') || !files.some((f) => f.endsWith('.safetensors'))) throw new Error(`output folder has ${files.join(', ')}`);
    if (pageErrors.length) throw new Error(`page errors: ${pageErrors.join('; ')}`);
  });
} catch (error) {
  failed++;
  console.log(`not ok - setup\n  ${error?.stack ?? error}`);
} finally {
  await browser?.close();
  server.kill('SIGTERM');
  rmSync(outputRoot, { recursive: true, force: true });
}
console.log(`e2e: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
