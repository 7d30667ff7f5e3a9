import { join } from 'node:path';

/** A model dragged from the library chips onto the models list joins the recipe. */
export default async function ({ page, step, shots }) {
  await step('a model dragged from the library onto the list joins the recipe', async () => {
    await page.getByTestId('nav-recipe').click();
    // The recipe was changed (and kept across the reloads) by the flows before: New recipe asks first.
    await page.getByTestId('new-recipe').click();
    await page.getByTestId('confirm-new').waitFor({ timeout: 5_000 });
    await page.getByTestId('confirm-new-recipe').click();
    // A new recipe of the method shown, without models.
    await page.waitForFunction(() => {
      const text = document.querySelector('[data-testid=recipe-editor]')?.value ?? '';
      return /^merge_method: \w+\n/.test(text) && !/models:|slices:/.test(text);
    }, null, { timeout: 5_000 });
    await page.getByTestId('method-select').selectOption('linear');
    const chip = page.locator('[data-testid=library-chip][data-model=alloy-demo-code]');
    await chip.waitFor({ timeout: 10_000 });
    // Written by the library's reference for it (the demo's folder), which the engine resolves, not its bare name.
    const reference = await chip.getAttribute('data-reference');
    if (!reference || reference === 'alloy-demo-code') throw new Error(`the chip's reference: ${reference}`);
    await chip.dragTo(page.getByTestId('models-drop'));
    await page.waitForFunction((ref) => (document.querySelector('[data-testid=recipe-editor]')?.value ?? '').includes(`- model: ${ref}\n`), reference, { timeout: 5_000 });
    const cards = await page.getByTestId('recipe-model').allInnerTexts();
    if (cards.length !== 1 || !cards[0].includes('alloy-demo-code')) throw new Error(`models: ${cards.join(' | ')}`);
    if (await chip.count()) throw new Error('the dragged model is still offered');
    await page.screenshot({ path: join(shots, 'recipe-dragged-model.png'), fullPage: true });
  });
}
