import { join } from 'node:path';

/** The Analysis view: the demo models against their base, picked partly by keyboard; the charts and tables fill. */
export default async function ({ page, step, shots }) {
  await step('analyses the demo models against their base and the charts fill, layer by layer', async () => {
    await page.getByTestId('nav-analysis').click();
    await page.getByTestId('analysis-form').waitFor({ timeout: 15_000 });
    await page.getByTestId('analysis-base').selectOption({ label: 'alloy-demo-base' });
    await page.getByTestId('analysis-model-alloy-demo-chat').check();
    // By keyboard: a checkbox with Space, the t field, Enter to start.
    await page.getByTestId('analysis-model-alloy-demo-code').focus();
    await page.keyboard.press('Space');
    if (!(await page.getByTestId('analysis-model-alloy-demo-code').isChecked())) throw new Error('Space did not pick alloy-demo-code');
    await page.getByTestId('analysis-t').fill('0.001');
    await page.getByTestId('analysis-t').press('Enter');
    await page.locator('[data-testid=analysis-status][data-state=done]').waitFor({ timeout: 30_000 });

    // embed, 4 layers and head, for each of the two models: 12 points a chart.
    for (const id of ['relative-l2', 'cosine', 'swap']) {
      await page.waitForFunction((id) => document.querySelector(`[data-testid=analysis-chart-${id}]`)?.dataset.points === '12', id, { timeout: 10_000 });
      const rows = await page.getByTestId(`analysis-table-${id}-row`).allInnerTexts();
      if (rows.length !== 6 || !/^embed\t/.test(rows[0]) || !/^head\t/.test(rows[5])) throw new Error(`${id} rows: ${rows.join(' | ')}`);
    }
    const cells = async (id) => (await page.locator(`[data-testid=analysis-table-${id}] tbody td`).allInnerTexts()).map((t) => Number.parseFloat(t));
    // The demo fine-tunes move each weight by a fifth of its spread: ~0.18 apart, cosine ~0.98, a few percent within t = 0.001.
    if (!(await cells('relative-l2')).every((x) => x > 0.1 && x < 0.3)) throw new Error(`relative L2: ${await cells('relative-l2')}`);
    if (!(await cells('cosine')).every((x) => x > 0.95 && x < 1)) throw new Error(`cosine: ${await cells('cosine')}`);
    if (!(await cells('swap')).every((x) => x > 0.5 && x < 20)) throw new Error(`swap %: ${await cells('swap')}`);

    const chart = page.getByTestId('analysis-chart-relative-l2');
    await chart.focus();
    await page.keyboard.press('ArrowRight');
    const readout = await page.locator('[data-testid=analysis-metric-relative-l2] .readout').innerText();
    if (!/^embed: alloy-demo-chat 0\.\d+, alloy-demo-code 0\.\d+$/.test(readout)) throw new Error(`readout: ${readout}`);
    await page.screenshot({ path: join(shots, 'analysis.png'), fullPage: true });
  });
}
