import { defineStore } from 'pinia';
import { ref } from 'vue';
import { applyAnalysisEvent, type AnalysisInfo } from '../../../shared/analysis';
import type { AlloyApi, RequestOf } from '../../../shared/contract';

/** Every analysis the services know, kept current from their events (so a run survives a reload). */
export const useAnalysisStore = defineStore('analysis', () => {
  const runs = ref<Record<string, AnalysisInfo>>({});
  /** Settles once the services' list has been read. */
  let loaded: Promise<void> = Promise.resolve();

  function connect(api: AlloyApi): () => void {
    const offState = api.on('analysis.state', (info) => {
      runs.value[info.id] = info;
    });
    const offProgress = api.on('analysis.progress', ({ id, event }) => {
      const run = runs.value[id];
      if (run) runs.value[id] = applyAnalysisEvent(run, event);
    });
    // What the events have already brought is newer than the list.
    loaded = api.invoke('analysis.list', {}).then((list) => list.forEach((info) => (runs.value[info.id] ??= info)));
    return () => {
      offState();
      offProgress();
    };
  }

  /** The run to show after a reload: the newest running one, else the newest. */
  function latest(): AnalysisInfo | undefined {
    const all = Object.values(runs.value).sort((a, b) => b.startedAt - a.startedAt);
    return all.find((r) => r.state === 'running') ?? all[0];
  }

  async function start(api: AlloyApi, request: RequestOf<'analysis.start'>): Promise<string> {
    const info = await api.invoke('analysis.start', request);
    runs.value[info.id] ??= info;
    return info.id;
  }

  async function cancel(api: AlloyApi, id: string): Promise<void> {
    await api.invoke('analysis.cancel', { id });
  }

  const whenLoaded = () => loaded;

  return { runs, connect, latest, start, cancel, whenLoaded };
});
