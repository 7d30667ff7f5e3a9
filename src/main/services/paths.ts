import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

export interface AppPaths {
  /** The folder holding package.json and resources/. */
  root: string;
  resources: string;
  demoModels: string;
  demoRecipe: string;
  /** The engine program: the bundled CLI, run by plain Node. */
  engineEntry: string;
  renderer: string;
  defaultOutputRoot: string;
  /** The app's settings: $ALLOY_CONFIG_DIR, else $XDG_CONFIG_HOME/alloy, else ~/.config/alloy. */
  settingsFile: string;
}

/** Finds the app's folders from any file inside it (the CLI bundle, Electron's main bundle, sources). */
export function resolveAppPaths(fromFile: string): AppPaths {
  let root = dirname(fromFile);
  while (!existsSync(join(root, 'package.json'))) {
    const parent = dirname(root);
    if (parent === root) throw new Error(`no package.json above ${fromFile}`);
    root = parent;
  }
  const resources = join(root, 'resources');
  return {
    root,
    resources,
    demoModels: join(resources, 'demo', 'models'),
    demoRecipe: join(resources, 'demo', 'linear.yml'),
    engineEntry: join(root, 'out', 'cli', 'alloy.mjs'),
    renderer: join(root, 'out', 'renderer'),
    defaultOutputRoot: join(homedir(), 'Alloy', 'merges'),
    settingsFile: join(configDir(), 'settings.json'),
  };
}

function configDir(env: NodeJS.ProcessEnv = process.env): string {
  return env['ALLOY_CONFIG_DIR'] ?? join(env['XDG_CONFIG_HOME'] ?? join(homedir(), '.config'), 'alloy');
}
