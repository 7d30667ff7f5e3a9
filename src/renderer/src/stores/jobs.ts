import { defineStore } from 'pinia';
import { ref } from 'vue';
import type { AlloyApi, JobInfo } from '../../../shared/contract';
import type { ProgressEvent } from '../../../shared/progress';
import { isStageStart } from '../recipe/stage-progress';

export interface JobView {
  info: JobInfo;
  progress: Extract<ProgressEvent, { type: 'tensor' }> | undefined;
}

/** Every merge job and its latest progress, kept current from the services' events. */
export const useJobsStore = defineStore('jobs', () => {
  const jobs = ref<Record<string, JobView>>({});
  /** Settles once the services' job list has been read (after a reload, to re-attach). */
  let loaded: Promise<void> = Promise.resolve();

  function upsert(info: JobInfo): JobView {
    const existing = jobs.value[info.id];
    jobs.value[info.id] = { info, progress: existing?.progress };
    return jobs.value[info.id]!;
  }

  function connect(api: AlloyApi): () => void {
    const offState = api.on('job.state', (info) => upsert(info));
    const offProgress = api.on('job.progress', ({ jobId, event }) => {
      const job = jobs.value[jobId];
      if (!job) return;
      if (event.type === 'tensor') job.progress = event;
      // A new stage of a multi-stage merge starts counting its own tensors.
      if (event.type === 'stage' && isStageStart(event.message)) job.progress = undefined;
      const line = event.type === 'stage' || event.type === 'warning' || event.type === 'error' || event.type === 'device' ? event.message : undefined;
      job.info = { ...job.info, lastProgress: event, log: line ? [...job.info.log, line] : job.info.log, ...(event.type === 'device' ? { device: event.description } : {}) };
    });
    loaded = api.invoke('job.list', {}).then((list) => list.forEach(upsert));
    return () => {
      offState();
      offProgress();
    };
  }

  /** The job to show after a reload: the newest running one, else the newest. */
  function latest(): JobView | undefined {
    const all = Object.values(jobs.value).sort((a, b) => b.info.startedAt - a.info.startedAt);
    return all.find((j) => j.info.state === 'running') ?? all[0];
  }

  /** `overwrite`: replace an output folder that already holds files (an earlier merge); else the start is refused. */
  async function start(api: AlloyApi, recipe: string, outputName: string, overwrite = false): Promise<JobView> {
    return upsert(await api.invoke('job.start', { recipe, outputName, ...(overwrite ? { overwrite } : {}) }));
  }

  async function cancel(api: AlloyApi, id: string): Promise<void> {
    upsert(await api.invoke('job.cancel', { id }));
  }

  /** Continues an interrupted merge from the shards it finished; its progress starts again from those. */
  async function resume(api: AlloyApi, id: string): Promise<void> {
    const view = upsert(await api.invoke('job.resume', { id }));
    view.progress = undefined;
  }

  const whenLoaded = () => loaded;

  return { jobs, whenLoaded, connect, start, cancel, resume, upsert, latest };
});
