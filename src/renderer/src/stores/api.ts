import { inject, type InjectionKey } from 'vue';
import type { AlloyApi } from '../../../shared/contract';

export const API_KEY: InjectionKey<AlloyApi> = Symbol('alloy-api');

export function useApi(): AlloyApi {
  const api = inject(API_KEY);
  if (!api) throw new Error('the Alloy API was not provided');
  return api;
}
