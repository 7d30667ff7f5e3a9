import { MAX_TASK_MODELS, type ComputeBackend, type HostArray } from '../compute/types';
import { HostScratch } from './host-scratch';
import { f32Host, type TensorSource } from './types';

/**
 * The dot products of every pair of the listed inputs (minus the base's, when given), summed in f64 in
 * one pass. Methods that work on the sphere spanned by the models (karcher, multislerp) need only
 * these: every vector they build is a combination of the inputs, so its norms and dots follow.
 * With a backend, the sums are its `gramSums` (the offsets from the base by `blend2`:
 * f(f(1·x) + f(−1·base)) is f(x − base)), the same products added in the same order.
 */
export async function gramMatrix(source: TensorSource, models: number[], base?: number, backend?: ComputeBackend): Promise<number[][]> {
  const n = models.length;
  const gram = new Float64Array(n * n);
  if (backend && n <= MAX_TASK_MODELS) {
    const scratch = new HostScratch(backend);
    try {
      for await (const chunk of source.chunks()) {
        const inputs = chunk.raw ?? chunk.inputs.map(f32Host);
        let vectors: HostArray[] = models.map((m) => inputs[m]!);
        if (base !== undefined) {
          vectors = models.map((_, j) => scratch.host(`offset ${j}`, 'F32', chunk.length));
          for (let j = 0; j < n; j++) await backend.blend2(1, inputs[models[j]!]!, -1, inputs[base]!, vectors[j]!);
        }
        await backend.gramSums(vectors, gram);
      }
    } finally {
      scratch.release();
    }
  } else {
    const v = new Float64Array(n);
    for await (const { length, inputs } of source.chunks()) {
      for (let i = 0; i < length; i++) {
        for (let j = 0; j < n; j++) v[j] = base === undefined ? inputs[models[j]!]![i]! : Math.fround(inputs[models[j]!]![i]! - inputs[base]![i]!);
        for (let j = 0; j < n; j++) for (let k = j; k < n; k++) gram[j * n + k] = gram[j * n + k]! + v[j]! * v[k]!;
      }
    }
  }
  return models.map((_, j) => models.map((_, k) => gram[Math.min(j, k) * n + Math.max(j, k)]!));
}

/** c·G·d for coefficient vectors over the Gram matrix G. */
export function bilinear(gram: number[][], c: ArrayLike<number>, d: ArrayLike<number>): number {
  let sum = 0;
  for (let j = 0; j < gram.length; j++) for (let k = 0; k < gram.length; k++) sum += c[j]! * gram[j]![k]! * d[k]!;
  return sum;
}
