import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mount, flushPromises } from '@vue/test-utils';
import { createPinia, setActivePinia } from 'pinia';
import type { Component } from 'vue';
import { validateRequest, type AlloyApi } from '../../src/shared/contract';
import { createServices } from '../../src/main/services';
import { resolveAppPaths } from '../../src/main/services/paths';
import { API_KEY } from '../../src/renderer/src/stores/api';
import { useRecipeStore } from '../../src/renderer/src/stores/recipe';

/** The real services in this process, behind the contract as a face sees it (requests validated, no engine mocked). */
export function realApi(): AlloyApi {
  const services = createServices({
    paths: resolveAppPaths(fileURLToPath(import.meta.url)),
    nodeBinary: process.execPath,
    outputRoot: mkdtempSync(join(tmpdir(), 'alloy-renderer-')),
  });
  return {
    invoke: (channel, request) => (services.handlers[channel] as (r: unknown) => Promise<never>)(validateRequest(channel, request)),
    on: (event, listener) => services.events.on(event, listener),
  };
}

/**
 * Mounts a view as the app does: Pinia, the API provided, the recipe store attached to it. The recipe
 * kept in localStorage by an earlier mount is dropped unless `keepStorage` (a reload) is asked.
 */
export async function mountView(view: Component, api: AlloyApi = realApi(), { keepStorage = false } = {}) {
  if (!keepStorage) globalThis.localStorage?.clear();
  const pinia = createPinia();
  setActivePinia(pinia);
  const recipe = useRecipeStore();
  recipe.attach(api);
  const wrapper = mount(view, { attachTo: document.body, global: { plugins: [pinia], provide: { [API_KEY as symbol]: api } } });
  await until(() => !wrapper.find('[data-loading]').exists());
  return { wrapper, recipe, api };
}

/** Waits (on real I/O, not just promises) until `ready` holds. */
export async function until(ready: () => boolean, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!ready()) {
    if (Date.now() - start > timeoutMs) throw new Error('timed out waiting for the view');
    await new Promise((resolve) => setTimeout(resolve, 10));
    await flushPromises();
  }
}

/** Lets the engine answer the current text, then lets Vue render the answer. */
export async function settle(recipe: ReturnType<typeof useRecipeStore>): Promise<void> {
  await flushPromises();
  await recipe.flush();
  await flushPromises();
}
