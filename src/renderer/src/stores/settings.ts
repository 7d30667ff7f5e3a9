import { defineStore } from 'pinia';
import { ref } from 'vue';
import type { AlloyApi } from '../../../shared/contract';
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

  return { settings, error, saving, load, save };
});
