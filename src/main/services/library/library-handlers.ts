import type { Handlers } from '../../../shared/contract';
import type { LibraryResponseTypes } from '../../../shared/library-contract';
import { repoFolderName } from '../downloads/cache-layout';
import { freeBytes } from '../downloads/check-free-space';
import type { DownloadManager } from '../downloads/download-manager';
import type { HubOptions } from '../downloads/hub-options';
import type { HubTokenStore } from '../downloads/hub-token-store';
import { peekRemoteModel } from '../downloads/peek-remote-model';
import type { TokenSource } from '../downloads/read-hub-token';
import type { EventBus } from '../events';
import { saveLibraryFolders } from './folder-store';
import type { LibraryService } from './library-service';
import { stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join } from 'node:path';

export type LibraryHandlers = Pick<Handlers, keyof LibraryResponseTypes>;

export interface LibraryHandlerDeps {
  library: LibraryService;
  downloads: DownloadManager;
  events: EventBus;
  /** The Hub and token for a request, and where the token came from. */
  hub: () => Promise<HubOptions & { tokenSource: TokenSource }>;
  cacheDir: string;
  /** The token set in the app (`hub.setToken`); `hub` reads it. */
  tokenStore: HubTokenStore;
  /** Where the user's folders are kept; in memory when absent. */
  foldersFile?: string;
  /** The desktop's file manager (`ServicesOptions.openFolder`); absent in web mode. */
  openFolder?: (path: string) => Promise<string>;
}

/** The library's and the downloads' channels. */
export function createLibraryHandlers(deps: LibraryHandlerDeps): LibraryHandlers {
  const { library, downloads, events } = deps;
  const foldersChanged = async (folders: string[]) => {
    await saveLibraryFolders(deps.foldersFile, folders);
    events.emit('library.changed', { reason: 'folders' });
    return folders;
  };
  const status = async () => {
    const { hubUrl, tokenSource } = await deps.hub();
    return { hubUrl, tokenSource, tokenStorage: deps.tokenStore.storage, cacheDir: deps.cacheDir, freeBytes: await freeBytes(deps.cacheDir) };
  };
  return {
    'library.delete': async ({ id, dryRun }) => {
      refuseWhileDownloading(downloads, id);
      if (dryRun) return library.delete(id, { dryRun });
      const result = await library.delete(id);
      events.emit('library.changed', { reason: 'delete' });
      return result;
    },
    'library.folders': async () => library.userFolders(),
    'library.addFolder': async ({ path }) => foldersChanged(library.addFolder(await existingFolder(path))),
    'library.removeFolder': ({ path }) => foldersChanged(library.removeFolder(path)),
    // Only a folder the library lists: the id is not a path to open anything by.
    'library.openFolder': async ({ id }) => {
      const model = (await library.list()).find((m) => m.id === id);
      if (!model) throw new Error(`${id} is not in the library (any more): refresh the list`);
      if (!deps.openFolder) return { opened: false, path: model.path, message: 'This face cannot open folders on the machine it runs on: copy the path.' };
      const problem = await deps.openFolder(model.path);
      return problem ? { opened: false, path: model.path, message: problem } : { opened: true, path: model.path };
    },
    'hub.status': status,
    'hub.setToken': async ({ token }) => {
      await deps.tokenStore.set(token);
      return status();
    },
    'hub.clearToken': async () => {
      await deps.tokenStore.clear();
      return status();
    },
    'download.peek': async ({ repo, revision }) => peekRemoteModel({ hub: await deps.hub(), repo, ...(revision ? { revision } : {}) }),
    'download.start': async ({ repo, revision, files }) => downloads.start({ repo, ...(revision ? { revision } : {}), ...(files ? { files } : {}) }),
    'download.pause': async ({ id }) => downloads.pause(id),
    'download.resume': async ({ id }) => downloads.resume(id),
    'download.cancel': ({ id }) => downloads.cancel(id),
    'download.list': async () => (await downloads.loaded, downloads.list()),
    'download.clear': async () => downloads.clearFinished(),
  };
}

/**
 * A repo being downloaded is not deleted under its download: the download went on writing into
 * removed files for minutes, then failed with an ENOENT naming a blob.
 */
function refuseWhileDownloading(downloads: DownloadManager, id: string): void {
  const repoFolder = basename(dirname(dirname(id)));
  const active = downloads.list().find((d) => ['queued', 'running', 'paused'].includes(d.state) && repoFolderName(d.repo) === repoFolder);
  if (active) throw new Error(`${active.repo} is ${active.state === 'paused' ? 'partly downloaded (paused)' : 'downloading'}: cancel its download in the Downloads list first, then delete it.`);
}

/**
 * A folder the user adds must be there: a typo is said now, not shown later as an empty library.
 * `~` is the home folder, as in a shell; a relative path would be read from wherever the app started.
 */
async function existingFolder(typed: string): Promise<string> {
  const path = /^~(?=$|[\\/])/.test(typed) ? join(homedir(), typed.slice(1)) : typed;
  if (!isAbsolute(path)) throw new Error(`${typed}: give the folder's whole path, from the top (like ${join(homedir(), 'models')})`);
  const info = await stat(path).catch((e: NodeJS.ErrnoException) => {
    throw new Error(e.code === 'ENOENT' ? `${path} does not exist` : `${path} cannot be read: ${e.message}`);
  });
  if (!info.isDirectory()) throw new Error(`${path} is a file, not a folder`);
  return path;
}
