import type { Handlers } from '../../shared/contract';
import type { StudioResponseTypes } from '../../shared/studio-contract';
import { parseRecipeText, recipeGradient } from './recipe-service';
import type { DeviceProbe } from './device-probe';
import type { SettingsService } from './settings-service';

export type StudioHandlers = Pick<Handlers, keyof StudioResponseTypes>;

/**
 * The recipe editor's and the settings' handlers: the engine's parser and planner, the settings file,
 * and the device probe the plan uses too (so Settings and the plan name the same device for `auto`).
 */
export function createStudioHandlers(params: { modelRoots: () => string[]; settings: SettingsService; devices: DeviceProbe }): StudioHandlers {
  return {
    'recipe.parse': async ({ recipe }) => parseRecipeText(recipe),
    'recipe.gradient': ({ recipe, document }) => recipeGradient({ recipe, ...(document !== undefined ? { document } : {}), search: { modelRoots: params.modelRoots() } }),
    'settings.get': () => params.settings.get(),
    'settings.set': (changes) => params.settings.set(changes),
    'settings.device': async ({ device }) => params.devices.describe(device ?? (await params.settings.get()).device),
  };
}
