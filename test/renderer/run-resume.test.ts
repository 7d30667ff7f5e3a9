// @vitest-environment happy-dom
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { validateRequest, type AlloyApi, type JobInfo } from '../../src/shared/contract';
import { createServices } from '../../src/main/services';
import { resolveAppPaths } from '../../src/main/services/paths';
import RunView from '../../src/renderer/src/views/RunView.vue';
import { differingFiles, writeTwoModelFixture } from '../engine/engine-process';
import { enginePid, killAfterShards } from '../services/engine-child';
import { tempDir } from '../helpers';
import { mountView, until } from './real-api';

afterEach(() => {
  document.body.innerHTML = '';
});

/** The real services over two generated 3.3 MB models, with 1 MiB shards: a merge of four shards. */
async function servicesWithModels() {
  const root = await tempDir('alloy-run-resume-');
  const { recipe, modelRoot } = await writeTwoModelFixture(root);
  const outputRoot = join(root, 'out');
  const services = createServices({ paths: resolveAppPaths(fileURLToPath(import.meta.url)), nodeBinary: process.execPath, outputRoot, modelFolders: [modelRoot] });
  const api: AlloyApi = {
    invoke: (channel, request) => (services.handlers[channel] as (r: unknown) => Promise<never>)(validateRequest(channel, request)),
    on: (event, listener) => services.events.on(event, listener),
  };
  await api.invoke('settings.set', { outShardSize: 1 << 20, device: 'cpu' });
  return { api, recipe: await readFile(recipe, 'utf8'), outputRoot };
}

function stateOf(api: AlloyApi, id: string, state: JobInfo['state']): Promise<JobInfo> {
  return new Promise((done) => {
    const off = api.on('job.state', (info) => {
      if (info.id === id && info.state === state) {
        off();
        done(info);
      }
    });
  });
}

describe('the Resume button', () => {
  it('shows for a merge whose engine was killed, and finishes it from the shards it had written', async () => {
    const { api, recipe, outputRoot } = await servicesWithModels();
    const reference = await api.invoke('job.start', { recipe, outputName: 'out-reference' });
    await stateOf(api, reference.id, 'done');

    const job = await api.invoke('job.start', { recipe, outputName: 'out-resumed' });
    const failed = stateOf(api, job.id, 'failed');
    const killedAt = await killAfterShards(await enginePid(job.id), [join(outputRoot, '.out-resumed.alloy-partial')], 1);
    await failed;

    const { wrapper } = await mountView(RunView, api);
    await until(() => wrapper.find('[data-testid=resume-button]').exists());
    expect(wrapper.get('[data-testid=job-status]').attributes('data-state')).toBe('failed');
    expect(wrapper.get('[data-testid=job-resumable]').text()).toMatch(new RegExp(`^${killedAt} finished shards? kept beside the output\\.\\s*Resume$`));
    expect(wrapper.text()).toContain('the engine was stopped by SIGKILL before the merge finished');
    await wrapper.get('[data-testid=resume-button]').trigger('click');
    await until(() => wrapper.find('[data-testid=job-status][data-state=done]').exists(), 30_000);
    expect(wrapper.find('[data-testid=resume-button]').exists()).toBe(false);
    expect(wrapper.get('[data-testid=job-percent]').text()).toContain('100 %');
    expect(wrapper.get('[data-testid=job-log]').text()).toMatch(new RegExp(`resuming: ${killedAt} finished shards? verified`));
    expect(readdirSync(outputRoot).sort()).toEqual(['out-reference', 'out-resumed']);
    // Every file the same bytes; the model card names its folder.
    expect(await differingFiles(join(outputRoot, 'out-reference'), join(outputRoot, 'out-resumed'))).toEqual(['README.md']);
    const card = async (name: string) => (await readFile(join(outputRoot, name, 'README.md'), 'utf8')).replaceAll(name, 'NAME');
    expect(await card('out-resumed')).toBe(await card('out-reference'));
  });
});
