import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** 24 slices of the demo models' four layers, in f32: about 14 MB in 1 MiB shards, to be killed mid-way. */
const SLICES = 24;
const STACK = `merge_method: passthrough
slices:
${Array.from({ length: SLICES }, (_, i) => `  - sources:\n      - model: ${i % 2 ? 'alloy-demo-code' : 'alloy-demo-chat'}\n        layer_range: [0, 4]`).join('\n')}
dtype: float32
`;
const SHARD = 1 << 20;

/** Calls the contract as the page does (web mode on loopback needs no token). */
async function invoke(address, channel, request) {
  const response = await fetch(new URL(`/api/invoke/${channel}`, address), { method: 'POST', body: JSON.stringify(request) });
  const body = await response.json();
  if (!response.ok) throw new Error(`${channel}: ${body.error}`);
  return body.result;
}

/** The engine process (`run-job JOB.json`) whose job writes `outDir`, found in /proc as `ps` would. */
function enginePid(outDir) {
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      const at = args.indexOf('run-job');
      const job = at >= 0 ? JSON.parse(readFileSync(args[at + 1], 'utf8')) : undefined;
      if (job?.outDir === outDir) return { pid: Number(pid), job };
    } catch {
      // Gone while we looked, or not ours.
    }
  }
  return undefined;
}

/** Finished shards listed in the journal of the merge's hidden build folder. */
function journaledShards(outputRoot, name) {
  try {
    const lines = readFileSync(join(outputRoot, `.${name}.alloy-partial`, 'alloy-journal.jsonl'), 'utf8').split('\n');
    return Math.max(0, lines.length - 2);
  } catch {
    return 0;
  }
}

async function until(check, timeoutMs, what) {
  const start = Date.now();
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** A merge whose engine is killed mid-run shows Resume; Resume finishes it with the bits of an uninterrupted run. */
export default async function ({ page, step, shots, address, outputRoot, fillRecipe }) {
  await step('a merge whose engine is killed mid-run is resumed from the Run view, to the uninterrupted bits', async () => {
    const name = 'e2e-resume';
    const outDir = join(outputRoot, name);
    const before = await invoke(address, 'settings.get', {});
    // On the CPU: the stepping below (SIGSTOP/SIGCONT) is for the engine, not for a GPU driver's threads.
    await invoke(address, 'settings.set', { outShardSize: SHARD, device: 'cpu' });
    try {
      await page.getByTestId('nav-recipe').click();
      await fillRecipe(page, STACK);
      await page.getByTestId('nav-run').click();
      // Planned first: the Run view must hold the stacked recipe (36 tensors a slice, plus 3), not the one before.
      await page.waitForFunction(
        async (tensors) => {
          document.querySelector('[data-testid=plan-button]')?.click();
          await new Promise((r) => setTimeout(r, 300));
          return document.querySelector('[data-testid=plan-tensors]')?.textContent?.trim() === tensors;
        },
        String(SLICES * 36 + 3),
        { timeout: 30_000, polling: 500 },
      );
      await page.getByTestId('output-name').fill(name);
      await page.getByTestId('run-button').click();
      const { pid, job } = await until(() => enginePid(outDir), 20_000, 'the engine process');
      if (job.options?.outShardSize !== SHARD) {
        throw new Error(`the job was started with ${JSON.stringify(job.options)}; the settings say ${JSON.stringify(await invoke(address, 'settings.get', {}))}`);
      }
      // Stepped (SIGCONT, 3 ms, SIGSTOP) until its journal lists a shard, then killed: mid-merge whatever the load.
      process.kill(pid, 'SIGSTOP');
      const stepped = Date.now();
      try {
        while (journaledShards(outputRoot, name) < 1) {
          if (Date.now() - stepped > 60_000) throw new Error('no shard journaled in 60 s');
          process.kill(pid, 'SIGCONT');
          await new Promise((r) => setTimeout(r, 3));
          process.kill(pid, 'SIGSTOP');
        }
      } catch (error) {
        throw new Error(`${error.message}; the job's log:\n${await page.getByTestId('job-log').textContent()}`);
      }
      process.kill(pid, 'SIGKILL');
      const kept = journaledShards(outputRoot, name);

      await page.locator('[data-testid=job-status][data-state=failed]').waitFor({ timeout: 10_000 });
      const resumable = await page.getByTestId('job-resumable').innerText({ timeout: 10_000 });
      if (!resumable.includes(`${kept} finished shard`)) throw new Error(`the view says "${resumable}", the journal lists ${kept} shards`);
      if (existsSync(outDir)) throw new Error('a killed merge left an output folder');
      await page.screenshot({ path: join(shots, 'run-interrupted.png'), fullPage: true });

      await page.getByTestId('resume-button').click();
      await page.locator('[data-testid=job-status][data-state=done]').waitFor({ timeout: 60_000 });
      const log = (await page.getByTestId('job-log').textContent()) ?? '';
      const reused = Number(/resuming: (\d+) finished shards? verified/.exec(log)?.[1] ?? 0);
      if (reused !== kept) throw new Error(`the engine reused ${reused} shards, the journal listed ${kept}:\n${log}`);
      await page.screenshot({ path: join(shots, 'run-resumed.png'), fullPage: true });

      // The same recipe merged by the CLI without interruption: every file the same bytes (the card names its folder).
      const scratch = mkdtempSync(join(tmpdir(), 'alloy-e2e-reference-'));
      try {
        writeFileSync(join(scratch, 'stack.yml'), STACK);
        const cli = spawnSync(process.execPath, ['bin/alloy.mjs', 'merge', join(scratch, 'stack.yml'), join(scratch, name), '--model-root', 'resources/demo/models', '--out-shard-size', String(SHARD), '--progress', 'none'], { encoding: 'utf8' });
        if (cli.status !== 0) throw new Error(`the reference merge failed: ${cli.stderr}`);
        const files = readdirSync(join(scratch, name)).sort();
        if (readdirSync(outDir).sort().join() !== files.join()) throw new Error(`files differ: ${readdirSync(outDir).join(', ')} vs ${files.join(', ')}`);
        const differing = files.filter((f) => !readFileSync(join(outDir, f)).equals(readFileSync(join(scratch, name, f))));
        if (differing.length) throw new Error(`these files differ from an uninterrupted run: ${differing.join(', ')}`);
        if (files.filter((f) => f.endsWith('.safetensors')).length < 10) throw new Error(`only ${files.length} files`);
      } finally {
        rmSync(scratch, { recursive: true, force: true });
      }
    } finally {
      await invoke(address, 'settings.set', { outShardSize: before.outShardSize, device: before.device });
    }
  });
}
