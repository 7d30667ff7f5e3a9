import { EngineError } from '../errors';
import { arceeFusion } from './arcee-fusion';
import { karcher } from './karcher';
import { linear } from './linear';
import { modelStock } from './model-stock';
import { multislerp } from './multislerp';
import { nearswap } from './nearswap';
import { nuslerp } from './nuslerp';
import { passthrough } from './passthrough';
import { ram, ramplusTl } from './ram';
import { sce } from './sce';
import { slerp } from './slerp';
import { TASK_ARITHMETIC_METHODS } from './task-arithmetic-family';
import type { MergeMethod } from './types';

/** Every merge method Alloy knows, by the name recipes use (mergekit's `merge_method`). */
export const MERGE_METHODS: ReadonlyMap<string, MergeMethod> = new Map(
  [linear, slerp, nearswap, passthrough, modelStock, nuslerp, multislerp, karcher, arceeFusion, sce, ram, ramplusTl, ...TASK_ARITHMETIC_METHODS].map((m) => [m.name, m]),
);

export function getMergeMethod(name: string): MergeMethod {
  const method = MERGE_METHODS.get(name);
  if (!method) {
    throw new EngineError(`unknown merge_method "${name}"; known: ${[...MERGE_METHODS.keys()].join(', ')}`, { key: 'merge_method' });
  }
  return method;
}
