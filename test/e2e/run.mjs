// Browser test of the whole app in web mode: Debian's Chromium driven by playwright-core.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const outputRoot = mkdtempSync(join(tmpdir(), 'alloy-e2e-'));
const shots = 'test-results';
mkdirSync(shots, { recursive: true });
let passed = 0;
let failed = 0;

function startServer() {
  const server = spawn(process.execPath, ['bin/alloy.mjs', 'serve', '--port', '0', '--output-root', outputRoot, '--settings-file', join(outputRoot, '.alloy-settings.json')], { stdio: ['ignore', 'pipe', 'inherit'] });
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

/** Drags a chart anchor (its pixel position on the canvas, as the chart publishes it) down by `dy` pixels, as a person would. */
async function dragDown(page, chart, anchor, dy) {
  const box = await chart.boundingBox();
  await page.mouse.move(box.x + anchor.x, box.y + anchor.y);
  await page.mouse.down();
  await page.mouse.move(box.x + anchor.x, box.y + anchor.y + dy / 2, { steps: 4 });
  await page.mouse.move(box.x + anchor.x, box.y + anchor.y + dy, { steps: 4 });
  await page.mouse.up();
}

/**
 * Puts `text` in the recipe editor once the view has loaded, and checks that it holds exactly that:
 * a re-render that sets the editor's value (the view's load, a form edit landing) between the fill's
 * select-all and its typing would leave the old text in front; then it fills again.
 */
async function fillRecipe(page, text) {
  await page.getByTestId('recipe-loading').waitFor({ state: 'detached', timeout: 10_000 });
  const editor = page.getByTestId('recipe-editor');
  for (let attempt = 1; ; attempt++) {
    await editor.fill(text);
    const held = await editor.inputValue();
    if (held === text) return;
    if (attempt === 3) throw new Error(`the recipe editor holds ${JSON.stringify(held.slice(0, 200))}… after three fills`);
  }
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

  const yaml = () => page.getByTestId('recipe-editor').inputValue();
  const waitForYaml = (pattern, timeout = 5_000) =>
    page.waitForFunction((source) => new RegExp(source).test(document.querySelector('[data-testid=recipe-editor]')?.value ?? ''), pattern.source, { timeout });
  const waitForEngine = () => page.locator('[data-testid=recipe-ok], [data-testid=recipe-problems] li').first().waitFor({ timeout: 10_000 });
  let excalibur = '';

  await step('builds an Excalibur-style slerp recipe with self_attn/mlp gradients by clicking', async () => {
    await page.getByTestId('nav-recipe').click();
    await page.getByTestId('method-select').waitFor();
    await page.getByTestId('new-recipe').click();
    await page.getByTestId('method-select').selectOption('slerp');
    // The library's models join the recipe by their reference (for the demo, its folder), shown by name.
    const references = {};
    for (const model of ['alloy-demo-chat', 'alloy-demo-code']) {
      const option = page.getByTestId('add-model-select').locator('option', { hasText: `${model} ·` });
      references[model] = await option.getAttribute('value');
      await page.getByTestId('add-model-select').selectOption(references[model]);
      await page.getByTestId('add-model-button').click();
    }
    await page.getByTestId('base-model').selectOption({ label: 'alloy-demo-chat' });
    await page.getByTestId('param-mode-global-t').selectOption('filters');
    await page.getByTestId('param-filter-value-global-t-0').fill('1, 0.7, 0.3, 0.5, 0');
    await page.getByTestId('param-filter-value-global-t-0').press('Tab');
    await page.getByTestId('preset-t-mlp-ramp up').click();
    await waitForYaml(/filter: self_attn\s+value: \[1, 0\.7, 0\.3, 0\.5, 0\]\s+- filter: mlp\s+value: \[0, 0\.25, 0\.5, 0\.75, 1\]\s+- value: 0\.5/);
    const text = await yaml();
    for (const line of ['merge_method: slerp', `base_model: ${references['alloy-demo-chat']}`, `- model: ${references['alloy-demo-chat']}`, `- model: ${references['alloy-demo-code']}`]) {
      if (!text.includes(line)) throw new Error(`the YAML lacks "${line}":\n${text}`);
    }
    await page.getByTestId('recipe-ok').waitFor({ timeout: 10_000 });
    await page.locator('[data-testid=gradient-chart-t][data-anchors]').waitFor({ timeout: 10_000 });
    await page.screenshot({ path: join(shots, 'recipe-excalibur.png'), fullPage: true });
  });

  await step('dragging a chart anchor changes the gradient in the YAML', async () => {
    const chart = page.getByTestId('gradient-chart-t');
    await chart.scrollIntoViewIfNeeded();
    const anchors = JSON.parse((await chart.getAttribute('data-anchors')) ?? '[]');
    const anchor = anchors.find((a) => a.edit === 'self_attn' && a.anchor === 1);
    if (!anchor) throw new Error(`no self_attn anchor 1 among ${JSON.stringify(anchors)}`);
    await dragDown(page, chart, anchor, 60);
    await waitForYaml(/filter: self_attn\s+value: \[1, 0\.[0-6]\d*, 0\.3, 0\.5, 0\]/);
    const dragged = Number(/value: \[1, (0\.\d+), 0\.3/.exec(await yaml())[1]);
    const cell = Number(await page.getByTestId('anchor-t-self_attn-1').inputValue());
    if (cell !== dragged) throw new Error(`the table shows ${cell}, the YAML ${dragged}`);
    await page.screenshot({ path: join(shots, 'recipe-dragged.png'), fullPage: true });
    excalibur = await yaml();
  });

  await step('the chart\'s anchors also move with the keyboard', async () => {
    await page.getByTestId('gradient-chart-t').focus();
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('ArrowDown');
    await waitForYaml(/filter: self_attn\s+value: \[0\.95, /);
    await page.keyboard.press('ArrowUp');
    await waitForYaml(/filter: self_attn\s+value: \[1, /);
    excalibur = await yaml();
  });

  await step('a mistake is marked at its field with the engine\'s message', async () => {
    await fillRecipe(page, excalibur.replace('dtype: float32', 'dtype: float8'));
    const message = page.locator('.options [role=alert]').first();
    await message.waitFor({ timeout: 10_000 });
    const text = await message.innerText();
    if (!text.includes('dtype "float8" is not one of float32, float16, bfloat16')) throw new Error(`the field says: ${text}`);
    if ((await page.locator('#dtype').getAttribute('aria-invalid')) !== 'true') throw new Error('the dtype field is not marked invalid');
    const problems = await page.getByTestId('recipe-problems').innerText();
    if (!/line \d+:\d+/.test(problems)) throw new Error(`problems: ${problems}`);
    await page.screenshot({ path: join(shots, 'recipe-problem.png'), fullPage: true });
  });

  await step('pasting the Lamarck recipe shows its five stages and the converge stage\'s layer map', async () => {
    await fillRecipe(page, readFileSync('test/fixtures/recipes/lamarck.yml', 'utf8'));
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=stage-node]').length === 5, null, { timeout: 10_000 });
    const names = await page.getByTestId('stage-node').allInnerTexts();
    if (!names.some((n) => n.includes('lamarck-14b-finalize') && n.includes('output'))) throw new Error(`stages: ${names.join(' | ')}`);
    await page.locator('[data-testid=stage-node][data-stage="lamarck-14b-converge"]').click();
    await page.getByTestId('layer-block').nth(13).waitFor({ timeout: 5_000 });
    if ((await page.getByTestId('method-select').inputValue()) !== 'slerp') throw new Error('the form does not show the converge stage');
    await page.getByTestId('gradient-chart-t').waitFor({ timeout: 10_000 });
    await page.screenshot({ path: join(shots, 'recipe-lamarck-stages.png'), fullPage: true });
  });

  await step('plans and runs the Excalibur-style recipe on the demo models to 100 %', async () => {
    await fillRecipe(page, excalibur);
    await page.getByTestId('recipe-ok').waitFor({ timeout: 10_000 });
    await page.getByTestId('nav-run').click();
    await page.getByTestId('plan-button').click();
    const tensors = await page.getByTestId('plan-tensors').innerText({ timeout: 10_000 });
    if (tensors.trim() !== '39') throw new Error(`plan shows ${tensors} tensors`);
    await page.getByTestId('output-name').fill('e2e-merge');
    await page.getByTestId('run-button').click();
    await page.locator('[data-testid=job-status][data-state=done]').waitFor({ timeout: 30_000 });
    const percent = await page.getByTestId('job-percent').innerText();
    if (!percent.includes('100 %')) throw new Error(`progress shows ${percent}`);
    await page.waitForTimeout(300); // the bar's width eases to 100 % over 0.2 s
    await page.screenshot({ path: join(shots, 'run-done.png'), fullPage: true });
    const out = join(outputRoot, 'e2e-merge');
    const files = existsSync(out) ? readdirSync(out) : [];
    if (!files.includes('config.json') || !files.some((f) => f.endsWith('.safetensors'))) throw new Error(`output folder has ${files.join(', ')}`);
    if (!readFileSync(join(out, 'mergekit_config.yml'), 'utf8').includes('filter: self_attn')) throw new Error('the output was not merged from the edited recipe');
  });

  await step('the finished merge is in the library', async () => {
    await page.getByTestId('nav-library').click();
    await page.getByTestId('library-row').filter({ hasText: 'e2e-merge' }).waitFor({ timeout: 10_000 });
    await page.getByTestId('library-filter').fill('e2e');
    const rows = await page.getByTestId('library-row').allInnerTexts();
    if (rows.length !== 1 || !rows[0].includes('LlamaForCausalLM')) throw new Error(`filtered rows: ${rows.join(' | ')}`);
    await page.screenshot({ path: join(shots, 'library-with-merge.png'), fullPage: true });
    await page.getByTestId('nav-run').click();
  });

  await step('after a reload the run view finds the merge again', async () => {
    await page.reload();
    await page.locator('[data-testid=job-status][data-state=done]').waitFor({ timeout: 10_000 });
    if (!(await page.getByTestId('job-output').innerText()).includes('e2e-merge')) throw new Error('the finished merge is not shown');
    const name = await page.getByTestId('output-name').inputValue();
    if (name !== 'e2e-merge') throw new Error(`the output folder's name went back to "${name}"`);
  });

  await step('settings switch the theme and keep it', async () => {
    await page.getByTestId('nav-settings').click();
    await page.getByTestId('theme-dark').check();
    await page.waitForFunction(() => document.documentElement.dataset.theme === 'dark', null, { timeout: 5_000 });
    await page.reload();
    await page.waitForFunction(() => document.documentElement.dataset.theme === 'dark', null, { timeout: 5_000 });
    await page.screenshot({ path: join(shots, 'settings-dark.png'), fullPage: true });
  });

  // More flows live one per file in test/e2e/steps/, run in name order on the same page and server.
  const stepsDir = new URL('./steps/', import.meta.url);
  const extra = existsSync(stepsDir) ? readdirSync(stepsDir).filter((f) => f.endsWith('.mjs')).sort() : [];
  for (const file of extra) {
    const { default: run } = await import(new URL(file, stepsDir).href);
    await run({ page, step, shots, address, outputRoot, dragDown, fillRecipe });
  }

  await step('no page errors in the whole session', async () => {
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
