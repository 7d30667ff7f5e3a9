import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEMO_MODELS, makeDemoModels } from '../engine/demo/make-demo-models';
import { createServices } from '../services';
import { resolveAppPaths } from '../services/paths';
import { startWebServer } from '../web/server';
import { parseArgs, UsageError } from './args';

/** `alloy serve`: the whole app in a browser, over the same contract as the desktop app. */
export async function serveCommand(argv: string[]): Promise<number> {
  const { positionals, flags } = parseArgs(argv, {
    host: { kind: 'string', description: 'address to listen on (default 127.0.0.1)' },
    port: { kind: 'string', description: 'port (default 5317; 0 picks a free one)' },
    token: { kind: 'string', description: 'access token; required for any address but loopback' },
    'output-root': { kind: 'string', description: 'folder merges are written into (default ~/Alloy/merges)' },
    'model-folder': { kind: 'string', description: 'a folder of models to add to the library' },
    'settings-file': { kind: 'string', description: 'where the app\'s settings are kept (default ~/.config/alloy/settings.json)' },
  });
  if (positionals.length > 0) throw new UsageError('usage: alloy serve [--host H] [--port P] [--token T] [--output-root DIR] [--model-folder DIR] [--settings-file FILE]');
  const port = Number(flags['port'] ?? 5317);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be 0..65535, not "${flags['port']}"`);
  const paths = resolveAppPaths(fileURLToPath(import.meta.url));
  if (!DEMO_MODELS.every((m) => existsSync(join(paths.demoModels, m.name, 'config.json')))) await makeDemoModels(paths.demoModels);
  const outputRoot = resolve((flags['output-root'] as string | undefined) ?? paths.defaultOutputRoot);
  const modelFolder = flags['model-folder'] as string | undefined;
  const services = createServices({
    paths,
    nodeBinary: process.execPath,
    outputRoot,
    settingsFile: (flags['settings-file'] as string | undefined) ?? paths.settingsFile,
    ...(modelFolder ? { modelFolders: [resolve(modelFolder)] } : {}),
  });
  let server;
  try {
    server = await startWebServer({
      services,
      rendererDir: paths.renderer,
      host: (flags['host'] as string | undefined) ?? '127.0.0.1',
      port,
      ...(typeof flags['token'] === 'string' ? { token: flags['token'] } : {}),
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  process.stdout.write(`Alloy is running at ${server.url}\n`);
  await new Promise<void>((done) => {
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
  // Merges stop keeping what they wrote (resumable after the next start), analyses and downloads stop,
  // the library's watchers (recursive fs.watch, which would keep the process alive) close.
  await services.stop();
  await server.close();
  return 0;
}
