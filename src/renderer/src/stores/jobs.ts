import { defineStore } from 'pinia';
import { ref } from 'vue';
import type { AlloyApi, JobInfo } from '../../../shared/contract';
import type { ProgressEvent } from '../../../shared/progress';

export interface JobView {
  info: JobInfo;
  progress: Extract<ProgressEvent, { type: 'tensor' }> | undefined;
}

/** Every merge job and its latest progress, kept current from the services' events. */
export const useJobsStore = defineStore('jobs', () => {
  const jobs = ref<Record<string, JobView>>({});

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
      job.info = { ...job.info, lastProgress: event };
    });
    void api.invoke('job.list', {}).then((list) => list.forEach(upsert));
    return () => {
      offState();
      offProgress();
    };
  }

  async function start(api: AlloyApi, recipe: string, outputName: string): Promise<JobView> {
    return upsert(await api.invoke('job.start', { recipe, outputName }));
  }

  async function cancel(api: AlloyApi, id: string): Promise<void> {
    upsert(await api.invoke('job.cancel', { id }));
  }

  return { jobs, connect, start, cancel, upsert };
});
