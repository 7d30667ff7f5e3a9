import type { AnalysisMetrics } from '../../../shared/analysis';
import { roundInPlace } from '../execute/tensor-source';
import { stepRounding } from '../methods/numerics';
import type { FloatDtype } from '../safetensors/dtype';

const f = Math.fround;

/**
 * One model against the base, summed chunk by chunk in f64: ‖m − b‖², ‖b‖², ‖m‖², ⟨m, b⟩, and for
 * each NearSwap t the elements NearSwap would take whole. Sums add, so a group's comparison is
 * the sum of its tensors' and the whole model's the sum of its groups'.
 */
export class WeightComparison {
  diffSquares = 0;
  baseSquares = 0;
  modelSquares = 0;
  dot = 0;
  elements = 0;
  readonly swapped: number[];
  private scratch: [Float32Array, Float32Array] = [new Float32Array(0), new Float32Array(0)];

  /** @param t NearSwap thresholds to count full swaps at. */
  constructor(readonly t: readonly number[]) {
    this.swapped = t.map(() => 0);
  }

  /**
   * Adds a chunk: the same elements of the base's tensor and the model's, decoded to f32 as stored.
   * `computeDtype` is the dtype a NearSwap merge of the pair computes in (see `nearswapRounding`).
   */
  add(base: Float32Array, model: Float32Array, stored: { base: FloatDtype; model: FloatDtype }, computeDtype: FloatDtype | undefined): void {
    let diffSquares = 0;
    let baseSquares = 0;
    let modelSquares = 0;
    let dot = 0;
    for (let i = 0; i < base.length; i++) {
      const b = base[i]!;
      const m = model[i]!;
      const d = m - b;
      diffSquares += d * d;
      baseSquares += b * b;
      modelSquares += m * m;
      dot += m * b;
    }
    this.diffSquares += diffSquares;
    this.baseSquares += baseSquares;
    this.modelSquares += modelSquares;
    this.dot += dot;
    this.elements += base.length;
    if (this.t.length > 0) this.countSwaps(this.rounded(0, base, stored.base, computeDtype), this.rounded(1, model, stored.model, computeDtype), computeDtype);
  }

  /**
   * mergekit's nearswap, as `methods/nearswap.ts` computes it: weight = clamp(t · (1 / max(|base − other|, 1e-6)), 0, 1),
   * every step rounded to the compute dtype; an element is swapped whole when its weight is 1.
   */
  private countSwaps(base: Float32Array, model: Float32Array, computeDtype: FloatDtype | undefined): void {
    const r = stepRounding(computeDtype);
    const minDiff = r(1e-6);
    const t = this.t.map((x) => f(x));
    const counts = t.map(() => 0);
    for (let i = 0; i < base.length; i++) {
      const diff = Math.max(Math.abs(r(base[i]! - model[i]!)), minDiff);
      const inverse = r(1 / diff);
      for (let k = 0; k < t.length; k++) if (r(inverse * t[k]!) >= 1) counts[k]!++;
    }
    counts.forEach((c, k) => (this.swapped[k]! += c));
  }

  /** The values a merge computing in `computeDtype` sees: rounded to it first when stored wider (as the executor's source does). */
  private rounded(slot: 0 | 1, values: Float32Array, stored: FloatDtype, computeDtype: FloatDtype | undefined): Float32Array {
    if (!computeDtype || computeDtype === 'F32' || stored === computeDtype) return values;
    if (this.scratch[slot].length < values.length) this.scratch[slot] = new Float32Array(values.length);
    const copy = this.scratch[slot].subarray(0, values.length);
    copy.set(values);
    roundInPlace(copy, computeDtype);
    return copy;
  }

  /** Adds another comparison's sums (a group's into the whole model's). */
  absorb(other: WeightComparison): void {
    this.diffSquares += other.diffSquares;
    this.baseSquares += other.baseSquares;
    this.modelSquares += other.modelSquares;
    this.dot += other.dot;
    this.elements += other.elements;
    other.swapped.forEach((c, k) => (this.swapped[k]! += c));
  }

  metrics(model: string): AnalysisMetrics {
    const baseNorm = Math.sqrt(this.baseSquares);
    const modelNorm = Math.sqrt(this.modelSquares);
    const none = this.elements === 0;
    return {
      model,
      relativeL2: none || baseNorm === 0 ? null : Math.sqrt(this.diffSquares) / baseNorm,
      cosine: none || baseNorm === 0 || modelNorm === 0 ? null : this.dot / (baseNorm * modelNorm),
      swapFractions: this.swapped.map((c) => (none ? null : c / this.elements)),
      elements: this.elements,
    };
  }
}

/** The dtype a NearSwap merge of two tensors computes in: the recipe's `dtype`, else theirs when they share one (f32 otherwise). */
export function nearswapComputeDtype(dtype: FloatDtype | undefined, base: FloatDtype, model: FloatDtype): FloatDtype | undefined {
  return dtype ?? (base === model ? base : undefined);
}
