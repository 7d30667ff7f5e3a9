import type { Handlers } from '../../shared/contract';
import type { AnalysisResponseTypes } from '../../shared/analysis-contract';
import type { AnalysisJobs } from './analysis-jobs';
import type { SettingsService } from './settings-service';

export type AnalysisHandlers = Pick<Handlers, keyof AnalysisResponseTypes>;

/** The Analysis view's handlers: engine analyses as child processes, within the settings' memory budget. */
export function createAnalysisHandlers(params: { analyses: AnalysisJobs; settings: SettingsService }): AnalysisHandlers {
  return {
    'analysis.start': async (request) => {
      const { memoryBudget } = await params.settings.get();
      return params.analyses.start({ ...request, memoryBudget });
    },
    'analysis.cancel': async ({ id }) => params.analyses.cancel(id),
    'analysis.list': async () => (await params.analyses.loaded, params.analyses.list()),
  };
}
