import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** Settings names the device auto resolves to (web mode asks the server's engine); Enter in the output box starts the merge. */
export default async function ({ page, step, shots, outputRoot }) {
  await step('Settings says what auto computes on, as the plan does', async () => {
    await page.getByTestId('nav-settings').click();
    const note = page.getByTestId('settings-device-note');
    await note.filter({ hasText: / computes on (CPU|GPU): / }).waitFor({ timeout: 60_000 });
    const auto = await page.getByTestId('settings-device-auto').innerText();
    if (!/^auto \(here: (CPU|GPU): \S/.test(auto)) throw new Error(`the auto option reads "${auto}"`);
    await page.screenshot({ path: join(shots, 'settings-device.png'), fullPage: true });
  });

  await step('Enter in the output folder box starts the merge', async () => {
    await page.getByTestId('nav-run').click();
    const name = page.getByTestId('output-name');
    await name.fill('e2e-by-enter');
    await name.press('Enter');
    await page.getByTestId('job-output').filter({ hasText: 'e2e-by-enter' }).waitFor({ timeout: 60_000 });
    await page.locator('[data-testid=job-status][data-state=done]').waitFor({ timeout: 5_000 });
    const out = join(outputRoot, 'e2e-by-enter');
    if (!existsSync(out) || !readdirSync(out).some((f) => f.endsWith('.safetensors'))) throw new Error('no merged output');
  });
}
