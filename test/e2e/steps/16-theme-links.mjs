import { join } from 'node:path';

/** Links stay readable in the dark theme (the settings step leaves it on): the method's "paper" link against its panel. */
export default async function ({ page, step, shots }) {
  await step('links are readable in the dark theme', async () => {
    await page.getByTestId('nav-recipe').click();
    const link = page.getByTestId('method-paper');
    await link.waitFor({ timeout: 10_000 });
    const { theme, ratio, color } = await link.evaluate((a) => {
      const rgb = (c) => (c.match(/[\d.]+/g) ?? []).slice(0, 3).map(Number);
      const lum = ([r, g, b]) => {
        const f = (v) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
        return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
      };
      let bg = a.parentElement;
      while (bg && /rgba\(0, 0, 0, 0\)|transparent/.test(getComputedStyle(bg).backgroundColor)) bg = bg.parentElement;
      const [l1, l2] = [lum(rgb(getComputedStyle(a).color)), lum(rgb(getComputedStyle(bg ?? document.body).backgroundColor))].sort((x, y) => y - x);
      return { theme: document.documentElement.dataset.theme, ratio: (l1 + 0.05) / (l2 + 0.05), color: getComputedStyle(a).color };
    });
    if (theme !== 'dark') throw new Error(`expected the dark theme, got ${theme}`);
    if (ratio < 4.5) throw new Error(`the paper link (${color}) has a contrast of ${ratio.toFixed(2)} against its panel`);
    await link.scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(shots, 'recipe-dark-link.png') });
  });
}
