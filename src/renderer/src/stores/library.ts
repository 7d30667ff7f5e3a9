import { defineStore } from 'pinia';
import { ref } from 'vue';
import type { AlloyApi, ModelSummary } from '../../../shared/contract';
import type { DownloadInfo, HubStatus, LibraryDeleteResult } from '../../../shared/library-contract';

const REFRESH_DELAY_MS = 300;

/**
 * The library as the services see it: the models on disk, the downloads (followed through
 * `download.progress`), the Hub status (token source, free space) and the user's folders. It
 * re-reads the models when the services say the library changed.
 */
export const useLibraryStore = defineStore('library', () => {
  const models = ref<ModelSummary[]>([]);
  const loading = ref(false);
  const loaded = ref(false);
  const error = ref('');
  const downloads = ref<DownloadInfo[]>([]);
  const hub = ref<HubStatus>();
  const hubError = ref('');
  const folders = ref<string[]>([]);
  let api: AlloyApi | undefined;
  let refreshTimer: ReturnType<typeof setTimeout> | undefined;
  let sequence = 0;
  let firstLoad: Promise<void> | undefined;

  /** Subscribes to the services' events and reads everything, once per API. */
  function attach(next: AlloyApi): Promise<void> {
    if (api === next && firstLoad) return firstLoad;
    api = next;
    next.on('download.progress', upsertDownload);
    next.on('library.changed', () => {
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(() => void refresh(), REFRESH_DELAY_MS);
    });
    firstLoad = Promise.all([refresh(), loadDownloads().catch(() => undefined), loadFolders().catch(() => undefined)]).then(() => undefined);
    return firstLoad;
  }

  function connected(): AlloyApi {
    if (!api) throw new Error('the library store is not attached to the API');
    return api;
  }

  /** Re-reads the models and the Hub status; an older answer never overwrites a newer one. */
  async function refresh(): Promise<void> {
    const mine = ++sequence;
    loading.value = true;
    try {
      const [list] = await Promise.all([connected().invoke('library.list', {}), loadHub()]);
      if (mine !== sequence) return;
      models.value = list;
      error.value = '';
    } catch (e) {
      if (mine === sequence) error.value = (e as Error).message;
    } finally {
      if (mine === sequence) {
        loading.value = false;
        loaded.value = true;
      }
    }
  }

  /**
   * The Hub status's answers in the order asked: an answer to a status request sent before a token
   * was set or cleared never overwrites what that change returned (it may have read the old token).
   */
  let hubTicket = 0;

  async function loadHub(): Promise<void> {
    const mine = ++hubTicket;
    try {
      const status = await connected().invoke('hub.status', {});
      if (mine !== hubTicket) return;
      hub.value = status;
      hubError.value = '';
    } catch (e) {
      if (mine === hubTicket) hubError.value = (e as Error).message;
    }
  }

  function hubChanged(status: HubStatus): void {
    hubTicket++;
    hub.value = status;
  }

  async function loadDownloads(): Promise<void> {
    const list = await connected().invoke('download.list', {});
    for (const info of list) answered(info);
  }

  /** A progress event: the services report in order, so the newest event is the truth. */
  function upsertDownload(info: DownloadInfo): void {
    const at = downloads.value.findIndex((d) => d.id === info.id);
    downloads.value = at < 0 ? [info, ...downloads.value.filter((d) => !replaces(info, d))] : downloads.value.map((d, i) => (i === at ? info : d));
  }

  /** A new download of a repo and revision that failed takes the failed one's place, as in the services. */
  const replaces = (info: DownloadInfo, old: DownloadInfo) => old.state === 'failed' && old.repo === info.repo && old.revision === info.revision;

  /** A request's answer: it may arrive after newer events (HTTP and WebSocket do not keep order), so it only adds what is unknown. */
  function answered(info: DownloadInfo): void {
    if (!downloads.value.some((d) => d.id === info.id)) upsertDownload(info);
  }

  async function startDownload(repo: string, options: { revision?: string | undefined; all?: boolean } = {}): Promise<DownloadInfo> {
    const info = await connected().invoke('download.start', {
      repo,
      ...(options.revision ? { revision: options.revision } : {}),
      ...(options.all ? { files: 'all' as const } : {}),
    });
    answered(info);
    return info;
  }

  async function control(action: 'download.pause' | 'download.resume' | 'download.cancel', id: string): Promise<void> {
    answered(await connected().invoke(action, { id }));
  }

  /** Drops finished downloads from the list, in the services too: a reload (or another window) does not bring them back. */
  async function clearFinished(): Promise<void> {
    downloads.value = downloads.value.filter((d) => d.state !== 'done' && d.state !== 'cancelled');
    await connected().invoke('download.clear', {});
  }

  /** What deleting would remove and free, without removing anything. */
  function previewDelete(id: string): Promise<LibraryDeleteResult> {
    return connected().invoke('library.delete', { id, dryRun: true });
  }

  async function deleteModel(id: string): Promise<LibraryDeleteResult> {
    const result = await connected().invoke('library.delete', { id });
    models.value = models.value.filter((m) => m.id !== id);
    void refresh();
    return result;
  }

  async function loadFolders(): Promise<void> {
    folders.value = await connected().invoke('library.folders', {});
  }

  async function addFolder(path: string): Promise<void> {
    folders.value = await connected().invoke('library.addFolder', { path });
  }

  async function removeFolder(path: string): Promise<void> {
    folders.value = await connected().invoke('library.removeFolder', { path });
  }

  async function setToken(token: string): Promise<void> {
    hubChanged(await connected().invoke('hub.setToken', { token }));
  }

  async function clearToken(): Promise<void> {
    hubChanged(await connected().invoke('hub.clearToken', {}));
  }

  return {
    models,
    loading,
    loaded,
    error,
    downloads,
    hub,
    hubError,
    folders,
    attach,
    refresh,
    loadHub,
    startDownload,
    control,
    clearFinished,
    previewDelete,
    deleteModel,
    loadFolders,
    addFolder,
    removeFolder,
    setToken,
    clearToken,
  };
});
