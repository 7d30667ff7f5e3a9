import { join } from 'node:path';

/** Anchors at the first and last layer and at both ends of the range. */
const EDGES = `merge_method: slerp
base_model: alloy-demo-chat
models:
  - model: alloy-demo-chat
  - model: alloy-demo-code
parameters:
  t: [0, 0.3, 0.7, 1]
dtype: float32
`;

/** The chart's first and last anchors are drawn whole, inside the plot, and can be dragged. */
export default async function ({ page, step, shots, dragDown, fillRecipe }) {
  await step('the gradient chart pads its plot: the anchors at its edges are whole and can be dragged', async () => {
    await page.getByTestId('nav-recipe').click();
    await fillRecipe(page, EDGES);
    const chart = page.getByTestId('gradient-chart-t');
    await page.locator('[data-testid=gradient-chart-t][data-anchors*="\\"anchor\\":3"]').waitFor({ timeout: 10_000 });
    await chart.scrollIntoViewIfNeeded();
    const box = await chart.boundingBox();
    await page.screenshot({ path: join(shots, 'chart-edge-anchors.png'), clip: box });
    const anchors = JSON.parse(await chart.getAttribute('data-anchors'));
    if (anchors.length !== 4) throw new Error(`anchors: ${JSON.stringify(anchors)}`);
    // A picked anchor is drawn 10 px wide plus half its 3 px border; the chart grabs within 14 px.
    const R = 12;
    for (const a of anchors) {
      if (a.x < R || a.y < R || a.x > box.width - R || a.y > box.height - R) throw new Error(`anchor ${a.anchor} at ${a.x},${a.y} is cut by the canvas (${box.width}×${box.height})`);
    }
    const plot = JSON.parse((await chart.getAttribute('data-plot')) ?? 'null');
    if (!plot) throw new Error('the chart publishes no plot area');
    for (const a of anchors) {
      if (a.x - R < plot.left || a.x + R > plot.right || a.y - R < plot.top || a.y + R > plot.bottom) throw new Error(`anchor ${a.anchor} at ${a.x},${a.y} is cut by the plot ${JSON.stringify(plot)}`);
    }
    // The first (0, at the bottom left) and the last (1, at the top right) can be grabbed and dragged.
    const first = anchors.find((a) => a.anchor === 0);
    await dragDown(page, chart, first, -30);
    await page.waitForFunction(() => /t: \[0\.\d+, 0\.3, 0\.7, 1\]/.test(document.querySelector('[data-testid=recipe-editor]')?.value ?? ''), null, { timeout: 5_000 });
    const last = JSON.parse(await chart.getAttribute('data-anchors')).find((a) => a.anchor === 3);
    await dragDown(page, chart, last, 30);
    await page.waitForFunction(() => /t: \[0\.\d+, 0\.3, 0\.7, 0\.\d+\]/.test(document.querySelector('[data-testid=recipe-editor]')?.value ?? ''), null, { timeout: 5_000 });
  });
}
