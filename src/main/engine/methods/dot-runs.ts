import { CASCADE_ROW, hostValue, sliceHost, type ComputeBackend, type HostArray, type StepDtype } from '../compute/types';
import { stepRounding } from './numerics';
import type { ParallelTorchSum } from './torch-reductions';

/** Bulk calls shorter than this go through the sums' own `add`. */
const MIN_BULK = 64;

/**
 * Adds r(a_i·b_i) of each pair of arrays, in order, to its sum (all at the same position), r rounding
 * to `step`: whole rows of the cascade by `dotRows` (n0 = n1 = 1: f(a / 1) is a), the rest one by one.
 */
export async function addDots(backend: ComputeBackend, runs: ParallelTorchSum[], pairs: [HostArray, HostArray][], length: number, step: StepDtype): Promise<void> {
  const r = stepRounding(step);
  for (let i = 0; i < length; ) {
    const { sum, room } = runs[0]!.part();
    let count = Math.min(sum.bulkRows(), Math.floor(Math.min(room, length - i) / CASCADE_ROW)) * CASCADE_ROW;
    if (count >= MIN_BULK) {
      for (let p = 0; p < pairs.length; p++) {
        const part = runs[p]!.part().sum;
        const state = part.cascade();
        await backend.dotRows(sliceHost(pairs[p]![0], i, count), sliceHost(pairs[p]![1], i, count), 1, 1, state, step);
        part.rowsAdded(state);
        runs[p]!.skipped(count);
      }
    } else {
      count = 1;
      for (let p = 0; p < pairs.length; p++) runs[p]!.add(r(hostValue(pairs[p]![0], i) * hostValue(pairs[p]![1], i)));
    }
    i += count;
  }
}
