// @vitest-environment happy-dom
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AlloyApi } from '../../src/shared/contract';
import SettingsView from '../../src/renderer/src/views/SettingsView.vue';
import { tempDir } from '../helpers';
import { mountView, realApi, until } from './real-api';
import { servedApi, type ServedApi } from './served-api';

const servers: ServedApi[] = [];
afterEach(async () => {
  document.body.innerHTML = '';
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** What the engine program itself says `--device` resolves to on this machine. */
function engineDevice(device: 'auto' | 'cpu'): { description: string; notices: string[] } {
  return JSON.parse(execFileSync(process.execPath, ['out/cli/alloy.mjs', 'devices', '--device', device, '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
}

type Wrapper = Awaited<ReturnType<typeof mountView>>['wrapper'];
const note = (wrapper: Wrapper) => wrapper.get('[data-testid=settings-device-note]').text();

async function mountSettings(api: AlloyApi): Promise<Wrapper> {
  const { wrapper } = await mountView(SettingsView, api);
  await until(() => wrapper.find('[data-testid=settings-form]').exists());
  return wrapper;
}

describe('Settings says what the device choice resolves to', () => {
  it('auto: the engine\'s device, as the plan names it, beside the choice; cpu when cpu is chosen', async () => {
    const api = realApi();
    const wrapper = await mountSettings(api);
    const auto = engineDevice('auto');
    await until(() => !note(wrapper).startsWith('Asking'), 60_000);
    expect(note(wrapper)).toBe(`auto computes on ${auto.description}`);
    expect(wrapper.get('[data-testid=settings-device-auto]').text()).toBe(`auto (here: ${auto.description})`);
    expect(wrapper.findAll('[data-testid=settings-device-notices] li').map((li) => li.text())).toEqual(auto.notices);
    // The one source of truth: the plan's "Computes on" names the same device.
    const plan = await api.invoke('recipe.plan', { recipe: readFileSync('resources/demo/linear.yml', 'utf8') });
    expect(plan.ok && plan.plan.device?.description).toBe(auto.description);

    await wrapper.get('[data-testid=settings-device]').setValue('cpu');
    await until(() => note(wrapper).startsWith('cpu computes on'), 60_000);
    expect(note(wrapper)).toBe(`cpu computes on ${engineDevice('cpu').description}`);
    expect(note(wrapper)).toMatch(/^cpu computes on CPU: WebAssembly SIMD, \d+ worker threads?$/);
    expect(wrapper.get('[data-testid=settings-device-auto]').text()).toBe(`auto (here: ${auto.description})`);
    expect(await api.invoke('settings.get', {})).toMatchObject({ device: 'cpu' });
    // Without a device, the channel answers for the settings' choice.
    expect((await api.invoke('settings.device', {})).choice).toBe('cpu');
  });

  it('web mode (alloy serve): the same answer over HTTP', async () => {
    const home = await tempDir('alloy-settings-device-');
    mkdirSync(join(home, 'hf'), { recursive: true });
    const served = await servedApi({ hubUrl: 'http://127.0.0.1:9', hfHome: join(home, 'hf'), configDir: join(home, 'config') });
    servers.push(served);
    const wrapper = await mountSettings(served.api);
    await until(() => !note(wrapper).startsWith('Asking'), 60_000);
    expect(note(wrapper)).toBe(`auto computes on ${engineDevice('auto').description}`);
  });
});
