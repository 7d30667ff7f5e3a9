import type { Handlers } from '../../shared/contract';
import type { StudioResponseTypes } from '../../shared/studio-contract';
import { parseRecipeText, recipeGradient } from './recipe-service';
import type { SettingsService } from './settings-service';

export type StudioHandlers = Pick<Handlers, keyof StudioResponseTypes>;

/** The recipe editor's and the settings' handlers: the engine's parser and planner, the settings file. */
export function createStudioHandlers(params: { modelRoots: () => string[]; settings: SettingsService }): StudioHandlers {
  return {
    'recipe.parse': async ({ recipe }) => parseRecipeText(recipe),
    'recipe.gradient': ({ recipe, document }) => recipeGradient({ recipe, ...(document !== undefined ? { document } : {}), search: { modelRoots: params.modelRoots() } }),
    'settings.get': () => params.settings.get(),
    'settings.set': (changes) => params.settings.set(changes),
  };
}
