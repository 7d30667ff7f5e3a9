import { MAX_TASK_MODELS, hostValue, sliceHost, type ComputeBackend, type HostArray } from '../compute/types';
import { TorchHalfNorm, type NormRun, type TorchNorm } from './torch-reductions';

/** Bulk calls shorter than this go through the norms' own `add`. */
const MIN_BULK = 64;

/**
 * Adds each array's values, in order, to its norm (all at the same position), by `normLanes` where the
 * lanes allow; an f16 tensor's norms (`TorchHalfNorm`, one scalar accumulator) on the host.
 */
export async function addNorms(backend: ComputeBackend, runs: NormRun[], arrays: HostArray[], length: number): Promise<void> {
  if (runs[0] instanceof TorchHalfNorm) {
    runs.forEach((run, j) => addHalfNorm(run as TorchHalfNorm, arrays[j]!, length));
    return;
  }
  const lanesRuns = runs as TorchNorm[];
  for (let i = 0; i < length; ) {
    let count = Math.min(lanesRuns[0]!.bulk(), length - i);
    count -= count % 8;
    if (count >= MIN_BULK) {
      for (let g = 0; g < runs.length; g += MAX_TASK_MODELS) {
        const group = lanesRuns.slice(g, g + MAX_TASK_MODELS);
        const lanes = new Float32Array(8 * group.length);
        group.forEach((run, k) => lanes.set(run.laneSums, 8 * k));
        await backend.normLanes(arrays.slice(g, g + MAX_TASK_MODELS).map((a) => sliceHost(a, i, count)), lanes);
        group.forEach((run, k) => {
          run.laneSums.set(lanes.subarray(8 * k, 8 * k + 8));
          run.added(count);
        });
      }
    } else {
      count = 1;
      for (let j = 0; j < runs.length; j++) runs[j]!.add(hostValue(arrays[j]!, i));
    }
    i += count;
  }
}

function addHalfNorm(run: TorchHalfNorm, array: HostArray, length: number): void {
  if (array.dtype === 'F32') run.addAll(array.data, 0, length);
  else for (let i = 0; i < length; i++) run.add(hostValue(array, i));
}
