import { defineStore } from 'pinia';
import { ref } from 'vue';
import type { AlloyApi, DeviceChoice, PlanDevice } from '../../../shared/contract';
import type { Settings } from '../../../shared/studio-contract';

/** The services' settings, and the theme applied to the page. */
export const useSettingsStore = defineStore('settings', () => {
  const settings = ref<Settings>();
  const error = ref('');
  const saving = ref(false);

  function applyTheme(theme: Settings['theme']): void {
    if (theme === 'system') delete document.documentElement.dataset['theme'];
    else document.documentElement.dataset['theme'] = theme;
  }

  async function load(api: AlloyApi): Promise<void> {
    try {
      settings.value = await api.invoke('settings.get', {});
      applyTheme(settings.value.theme);
      error.value = '';
    } catch (e) {
      error.value = (e as Error).message;
    }
  }

  async function save(api: AlloyApi, changes: Partial<Settings>): Promise<void> {
    saving.value = true;
    try {
      settings.value = await api.invoke('settings.set', changes);
      applyTheme(settings.value.theme);
      error.value = '';
    } catch (e) {
      error.value = (e as Error).message;
    } finally {
      saving.value = false;
    }
  }

  /** What each device choice resolves to on the services' machine (the engine's answer), or why it could not be asked. */
  const devices = ref<Partial<Record<DeviceChoice, { device: PlanDevice } | { error: string }>>>({});

  /** Asks the services once per choice (their probe keeps the answer; adapters do not come and go). */
  async function describeDevice(api: AlloyApi, choice: DeviceChoice): Promise<void> {
    const known = devices.value[choice];
    if (known && 'device' in known) return;
    try {
      devices.value = { ...devices.value, [choice]: { device: await api.invoke('settings.device', { device: choice }) } };
    } catch (e) {
      devices.value = { ...devices.value, [choice]: { error: (e as Error).message } };
    }
  }

  return { settings, error, saving, devices, load, save, describeDevice };
});
