import { cpSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** A della recipe on long hub ids, with a per-model parameter per filter: the widest the form gets. */
const WIDE_RECIPE = `merge_method: della
base_model: arcee-ai/Virtuoso-Small
models:
  - model: CultriX/SeQwence-14B-EvolMerge
    parameters:
      weight: 0.9
      density:
        - filter: self_attn
          value: [0.7, 0.5]
        - value: 0.7
  - model: sometimesanotion/lamarck-14b-reason-model_stock
    parameters:
      weight: 0.6
parameters:
  epsilon: 0.08
dtype: bfloat16
out_dtype: bfloat16
tokenizer_source: arcee-ai/Virtuoso-Small
`;

/** Boxes of `selector` (in the page) that stick out of their closest `container`, as text; [] when all fit. */
function overflowing(page, selector, container) {
  return page.evaluate(([selector, container]) => {
    const out = [];
    for (const el of document.querySelectorAll(selector)) {
      const box = el.getBoundingClientRect();
      const outer = el.parentElement?.closest(container)?.getBoundingClientRect();
      if (!outer || box.width === 0) continue;
      if (box.left < outer.left - 0.5 || box.right > outer.right + 0.5) {
        out.push(`${el.tagName.toLowerCase()}${el.dataset.testid ? `[${el.dataset.testid}]` : ''} ${Math.round(box.left)}…${Math.round(box.right)} outside ${container} ${Math.round(outer.left)}…${Math.round(outer.right)}`);
      }
    }
    return out;
  }, [selector, container]);
}

const pageScrollsSideways = (page) => page.evaluate(() => document.documentElement.scrollWidth > document.documentElement.clientWidth);

/** At 1024×700 the library table, the recipe form's fieldsets and a model card's fields fit: the page never scrolls sideways. */
export default async function ({ page, step, shots, outputRoot, fillRecipe }) {
  await step('at 1024×700 the library table and the recipe form fit the window', async () => {
    // A model of another shape: its row says how it differs from the base, the table's longest cell.
    const other = join(outputRoot, 'narrow-other-shape');
    cpSync('resources/demo/models/alloy-demo-base', other, { recursive: true });
    // A long name: the "Compatible with" picker grew as wide as it, past the window.
    const longName = join(outputRoot, 'narrow-a-model-with-a-really-very-extremely-long-name-that-goes-on-and-on-Instruct-v0.3-GPTQ-4bit-128g-actorder');
    cpSync('resources/demo/models/alloy-demo-base', longName, { recursive: true });
    const broken = join(outputRoot, 'narrow_broken_config_of_a_model_whose_folder_name_has_no_break_in_it_v0_3');
    cpSync('resources/demo/models/alloy-demo-base', broken, { recursive: true });
    writeFileSync(join(broken, 'config.json'), '{ "architectures": ["LlamaForCausalLM"], }');
    // A long architecture too: the columns of words and numbers take what they need first.
    const longConfig = JSON.parse(readFileSync(join(longName, 'config.json'), 'utf8'));
    writeFileSync(join(longName, 'config.json'), JSON.stringify({ ...longConfig, architectures: ['Qwen2_5_VLForConditionalGeneration'] }));
    const config = JSON.parse(readFileSync(join(other, 'config.json'), 'utf8'));
    writeFileSync(join(other, 'config.json'), JSON.stringify({ ...config, hidden_size: 1024, num_hidden_layers: 8 }));
    await page.setViewportSize({ width: 1024, height: 700 });
    try {
      await page.getByTestId('nav-library').click();
      await page.getByRole('button', { name: 'Refresh' }).click();
      await page.getByTestId('library-base').selectOption({ label: 'alloy-demo-chat' }).catch(async () => {
        const value = await page.locator('[data-testid=library-base] option', { hasText: 'alloy-demo-chat' }).first().getAttribute('value');
        await page.getByTestId('library-base').selectOption(value);
      });
      await page.locator('[data-testid=library-row][data-model=narrow-other-shape] [data-testid=compat-tag]').waitFor({ timeout: 10_000 });
      const tag = await page.locator('[data-testid=library-row][data-model=narrow-other-shape] [data-testid=compat-tag]').innerText();
      if (!tag.includes('differs')) throw new Error(`the other shape's tag: ${tag}`);
      await page.screenshot({ path: join(shots, 'narrow-library.png') });
      if (await pageScrollsSideways(page)) throw new Error('the library page scrolls sideways at 1024 px');
      const table = await overflowing(page, '[data-testid=library-table]', '.content');
      if (table.length) throw new Error(`the library table sticks out: ${table.join('; ')}`);
      const content = await page.evaluate(() => {
        const c = document.querySelector('.content');
        return { scroll: c.scrollWidth, client: c.clientWidth };
      });
      if (content.scroll > content.client) throw new Error(`the library view scrolls sideways: ${JSON.stringify(content)}`);
      const picker = await overflowing(page, '[data-testid=library-base]', '.content');
      if (picker.length) throw new Error(`the base picker sticks out: ${picker.join('; ')}`);
      // The names wrap, but by words: the numbers' columns left the name a letter or two a line.
      const nameColumn = await page.locator('[data-testid=library-table] th').first().evaluate((th) => th.getBoundingClientRect().width);
      if (nameColumn < 120) throw new Error(`the model column is ${Math.round(nameColumn)} px wide at 1024 px`);

      await page.getByTestId('nav-recipe').click();
      await fillRecipe(page, WIDE_RECIPE);
      await page.getByTestId('param-mode-model0-density').waitFor({ timeout: 10_000 });
      await page.waitForFunction(() => (document.querySelector('[data-testid=param-mode-model0-density]')?.value ?? '') === 'filters', null, { timeout: 5_000 });
      await page.screenshot({ path: join(shots, 'narrow-recipe.png'), fullPage: true });
      if (await pageScrollsSideways(page)) throw new Error('the recipe page scrolls sideways at 1024 px');
      const problems = [
        ...(await overflowing(page, '[data-testid=recipe-form] fieldset', '.panel')),
        ...(await overflowing(page, '[data-testid=recipe-form] fieldset .field, [data-testid=recipe-form] fieldset select, [data-testid=recipe-form] fieldset input', 'fieldset')),
        ...(await overflowing(page, '[data-testid=recipe-model] select, [data-testid=recipe-model] input, [data-testid=recipe-model] table, [data-testid=recipe-model] button', '[data-testid=recipe-model]')),
      ];
      if (problems.length) throw new Error(`sticks out at 1024 px: ${problems.join('; ')}`);
      // A model the engine cannot read: its problem (a path, one long word) is the compare list's widest line.
      await page.getByTestId('nav-analysis').click();
      await page.getByTestId('analysis-form').waitFor({ timeout: 10_000 });
      await page.getByRole('button', { name: 'Refresh models' }).click();
      await page.locator('[data-testid="analysis-model-narrow_broken_config_of_a_model_whose_folder_name_has_no_break_in_it_v0_3"]').waitFor({ timeout: 10_000 });
      const compare = await overflowing(page, '[data-testid=analysis-form] fieldset', '.panel');
      if (compare.length) throw new Error(`the compare list sticks out at 1024 px: ${compare.join('; ')}`);
      for (const view of ['run', 'analysis', 'settings']) {
        await page.getByTestId(`nav-${view}`).click();
        await page.waitForTimeout(300);
        if (await pageScrollsSideways(page)) throw new Error(`the ${view} page scrolls sideways at 1024 px`);
      }
    } finally {
      await page.setViewportSize({ width: 1280, height: 820 });
      rmSync(other, { recursive: true, force: true });
      rmSync(longName, { recursive: true, force: true });
      rmSync(broken, { recursive: true, force: true });
    }
  });
}
