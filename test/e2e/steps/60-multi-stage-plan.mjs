import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** A two-stage recipe on the demo models, the second stage naming the first as model cards write it (`merges/<name>`). */
const TWO_STAGES = `name: demo-blend
merge_method: linear
models:
  - model: alloy-demo-chat
    parameters:
      weight: 0.5
  - model: alloy-demo-code
    parameters:
      weight: 0.5
dtype: float32
---
merge_method: slerp
base_model: alloy-demo-base
models:
  - model: alloy-demo-base
  - model: merges/demo-blend
parameters:
  t: 0.3
dtype: float32
`;

export default async function ({ page, step, shots, outputRoot, fillRecipe }) {
  await step('a multi-stage recipe plans every stage (the one that reads an earlier stage too) and merges', async () => {
    await page.getByTestId('nav-recipe').click();
    await fillRecipe(page, TWO_STAGES);
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=stage-node]').length === 2, null, { timeout: 10_000 });
    await page.getByTestId('nav-run').click();
    await page.getByTestId('plan-button').click();
    // The plan of the earlier steps' recipe stays shown until this one's arrives: wait for its stages (or problems).
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=plan-stage]').length > 0 || document.querySelector('[data-testid=plan-problems]:not([data-stale])'), null, { timeout: 20_000 });
    if (await page.getByTestId('plan-problems').count()) throw new Error(`the plan has problems: ${await page.getByTestId('plan-problems').innerText()}`);
    const stages = await page.getByTestId('plan-stage').allInnerTexts();
    if (stages.length !== 2 || !stages[0].includes('demo-blend') || !/reads demo-blend.*output/.test(stages[1])) throw new Error(`stages: ${stages.join(' | ')}`);
    // Each stage reads two demo models' 39 tensors; the output has as many.
    if ((await page.getByTestId('plan-tensors').innerText()).trim() !== '39') throw new Error(`tensors: ${await page.getByTestId('plan-tensors').innerText()}`);
    if (!(await page.getByTestId('plan-writes').innerText()).includes('over 2 stages')) throw new Error(`writes: ${await page.getByTestId('plan-writes').innerText()}`);
    await page.screenshot({ path: join(shots, 'plan-stages.png'), fullPage: true });
    await page.getByTestId('output-name').fill('e2e-two-stages');
    await page.getByTestId('run-button').click();
    // The run view shows the previous merge (done) until this one starts: wait for this one's output line.
    await page.getByTestId('job-output').filter({ hasText: 'e2e-two-stages' }).waitFor({ timeout: 60_000 });
    await page.locator('[data-testid=job-status][data-state=done]').waitFor({ timeout: 5_000 });
    const out = join(outputRoot, 'e2e-two-stages');
    if (!existsSync(out) || !readdirSync(out).some((f) => f.endsWith('.safetensors'))) throw new Error('no merged output');
  });
}
