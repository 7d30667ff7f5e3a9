import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const TWO_SLICES = readFileSync('test/fixtures/recipes/two-slices-slerp.yml', 'utf8');

/** Waits for the engine to call the recipe valid; if it does not, says what the page shows instead. */
async function waitForValid(page, text) {
  try {
    await page.getByTestId('recipe-ok').waitFor({ timeout: 30_000 });
  } catch (error) {
    const state = await page.evaluate(() => ({
      checking: Boolean(document.querySelector('[data-testid=recipe-checking]')),
      problems: [...document.querySelectorAll('[role=alert]')].map((e) => e.textContent?.trim()),
      text: document.querySelector('[data-testid=recipe-editor]')?.value,
    }));
    throw new Error(`the recipe was not called valid: checking ${state.checking}, alerts ${JSON.stringify(state.problems)}, text ${state.text === text ? 'as filled' : JSON.stringify(state.text)}\n${error.message}`);
  }
}

/** A gradient over two slices repeats in each; dragging its anchor in the second slice edits the one list. */
export default async function ({ page, step, shots, dragDown, fillRecipe }) {
  await step('on a two-slice recipe, a gradient\'s anchors stand in each slice and drag together', async () => {
    await page.getByTestId('nav-recipe').click();
    await fillRecipe(page, TWO_SLICES);
    await waitForValid(page, TWO_SLICES);
    const chart = page.getByTestId('gradient-chart-t');
    await chart.scrollIntoViewIfNeeded();
    await page.waitForFunction(() => JSON.parse(document.querySelector('[data-testid=gradient-chart-t]')?.dataset.anchors ?? '[]').length === 4, null, { timeout: 10_000 });
    const anchors = JSON.parse((await chart.getAttribute('data-anchors')) ?? '[]');
    const ends = anchors.filter((a) => a.anchor === 1).sort((a, b) => a.x - b.x);
    if (ends.length !== 2) throw new Error(`anchors: ${JSON.stringify(anchors)}`);
    const [first, second] = ends;
    await dragDown(page, chart, second, 80);
    await page.waitForFunction(() => /t: \[0, 0\.[0-8]\d*\]/.test(document.querySelector('[data-testid=recipe-editor]')?.value ?? ''), null, { timeout: 5_000 });
    await page.waitForFunction(
      (x) => {
        const moved = JSON.parse(document.querySelector('[data-testid=gradient-chart-t]')?.dataset.anchors ?? '[]').filter((a) => a.anchor === 1);
        return moved.length === 2 && moved.every((a) => a.y > x.y + 20);
      },
      first,
      { timeout: 5_000 },
    );
    await page.waitForTimeout(1500); // the engine's line follows the YAML a moment later
    await page.screenshot({ path: join(shots, 'recipe-two-slices.png'), fullPage: true });
  });
}
