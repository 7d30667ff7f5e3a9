/**
 * Which of the elements tied at a rank boundary torch's CPU sort puts on each side of it.
 *
 * mergekit's magnitude trims keep a slice of `torch.argsort(|δ|)` (ties: the first k, descending;
 * breadcrumbs: [n_bot, n_bot + target), ascending). torch sorts on the CPU with libstdc++'s
 * `std::sort` over (value, index) pairs comparing values only: introsort (median-of-three Hoare
 * partitions, heapsort past depth 2·⌊log₂ n⌋, then an insertion sort of the runs of at most 16 left).
 * It is not stable, so among values tied at a boundary the ones kept follow its steps. Which elements
 * end up before a place depends only on the partitions that contain that place, so only those are
 * followed, in memory (an i32 key an element: `SortKeys`).
 */

import type { ComputeBackend, SortKeysJob } from '../compute/types';

/**
 * A negative key marks an element tied at a boundary's value: −1 − (slot · 2³⁰ + index). Keys of
 * other elements are values, 0 to 0x7fffffff, so every key is a small integer to V8.
 */
const SLOT = 0x40000000;

/** The most elements `SortKeys` can mark (tensor indices of 30 bits). */
export const SORT_TIES_MAX_ELEMENTS = SLOT;

/** ⌊log₂ n⌋ (std::__lg), n ≥ 1. */
function log2(n: number): number {
  return 31 - Math.clz32(n);
}

/** Elements a block of the partition classifies before it swaps (BlockQuicksort's block). */
const BLOCK = 1024;

/**
 * Sort keys of a tensor's |δ| as torch orders them: an ascending order of i32s. Values are |δ|'s
 * absBits (every NaN one value, the largest), flipped for a descending sort; the elements whose value
 * is one of `tied` (at most two) carry their tensor index instead, so where they land can be read
 * back, and compare as that value.
 */
export class SortKeys {
  readonly keys: Int32Array;
  /** The values the two slots of tied keys compare as (flipped for a descending sort). */
  readonly tiedValues: [number, number];

  constructor(
    readonly length: number,
    readonly descending: boolean,
    readonly tied: readonly number[],
    /** Memory to hold the keys in, when it has room (another model's keys, no longer needed). */
    memory?: Int32Array,
  ) {
    if (length > SORT_TIES_MAX_ELEMENTS) throw new RangeError(`torch's tie order: ${length} elements is more than ${SORT_TIES_MAX_ELEMENTS}`);
    if (tied.length < 1 || tied.length > 2) throw new RangeError(`torch's tie order: ${tied.length} tied values (1 or 2)`);
    this.keys = memory && memory.length >= length ? memory.subarray(0, length) : new Int32Array(length);
    const order = (bits: number) => (descending ? 0x7fffffff - bits : bits);
    this.tiedValues = [order(tied[0]!), order(tied[tied.length - 1]!)];
  }

  /** Sets the keys of elements start, start + 1, … from the f32 bit patterns of their δ (any sign, any NaN). */
  setDeltas(start: number, deltaBits: Int32Array): void {
    const keys = this.keys;
    const t0 = this.tied[0]!;
    const t1 = this.tied[this.tied.length - 1]!;
    const flip = this.descending ? 0x7fffffff : 0;
    for (let i = 0; i < deltaBits.length; i++) {
      let bits = deltaBits[i]! & 0x7fffffff;
      if (bits > 0x7f800000) bits = 0x7fc00000;
      const index = start + i;
      if (bits === t0) keys[index] = -1 - index;
      else if (bits === t1) keys[index] = -1 - (SLOT + index);
      else keys[index] = flip ? flip - bits : bits;
    }
  }

  /**
   * The tied elements that torch's sort places in [from, to), as a bitset over the tensor (bit i & 7
   * of byte i >> 3: element i). The keys are reordered on the way.
   */
  tiesWithin(from: number, to: number): Uint8Array {
    new SortSteps(this.keys, this.tiedValues, [from, to]).sort();
    return this.tiedBetween(from, to);
  }

  /**
   * The tied elements that torch.topk(k, largest) keeps, as a bitset over the tensor: its CPU kernel
   * puts (value, index) pairs through std::partial_sort where k · 64 ≤ n, else std::nth_element at
   * k − 1 (the keys descending, NaN first). The keys are reordered on the way.
   */
  topkWithin(k: number): Uint8Array {
    if (k <= 0) return this.tiedBetween(0, 0);
    const steps = new SortSteps(this.keys, this.tiedValues, [k]);
    if (k * 64 <= this.length) steps.heapSelect(0, k, this.length);
    else steps.nthElement(k - 1);
    return this.tiedBetween(0, k);
  }

  /** `tiesWithin` or `topkWithin`, by `steps`. */
  keptBy(steps: SortKeysJob['steps']): Uint8Array {
    return 'sort' in steps ? this.tiesWithin(steps.sort[0], steps.sort[1]) : this.topkWithin(steps.topk);
  }

  private tiedBetween(from: number, to: number): Uint8Array {
    const keys = this.keys;
    const kept = new Uint8Array(Math.ceil(this.length / 8));
    for (let p = from; p < to; p++) {
      const key = keys[p]!;
      if (key >= 0) continue;
      const index = (-1 - key) & (SLOT - 1);
      kept[index >> 3] = kept[index >> 3]! | (1 << (index & 7));
    }
    return kept;
  }
}

/**
 * The tied elements each request keeps (`SortKeys.keptBy`), as bitsets: sorted side by side on the
 * backend's threads (`sortKeys`) where one is given (its memory holds every request's keys), else one
 * after another on this thread. The keys are reordered on the way.
 */
export async function keptTies(requests: readonly { keys: SortKeys; steps: SortKeysJob['steps'] }[], backend?: Pick<ComputeBackend, 'sortKeys'>): Promise<Uint8Array[]> {
  if (!backend?.sortKeys) return requests.map(({ keys, steps }) => keys.keptBy(steps));
  return backend.sortKeys(requests.map(({ keys, steps }) => ({ keys: keys.keys, tiedValues: keys.tiedValues, steps })));
}

/**
 * libstdc++'s steps over `keys`, ascending by their values: introsort (std::sort) carried out only
 * inside runs that hold a boundary strictly inside them, so afterwards each boundary separates the
 * same elements as the full sort would; introselect (std::nth_element) and the heap selection of
 * std::partial_sort, whole.
 */
class SortSteps {
  private readonly leftOffsets = new Int32Array(BLOCK);
  private readonly rightOffsets = new Int32Array(BLOCK);

  constructor(
    private readonly keys: Int32Array,
    private readonly tiedValues: [number, number],
    private readonly boundaries: number[],
  ) {}

  /** std::sort. */
  sort(): void {
    const n = this.keys.length;
    if (n > 1) this.introsort(0, n, 2 * log2(n));
  }

  /** std::nth_element (std::__introselect): afterwards place `nth` holds its element and every place before it no later one. */
  nthElement(nth: number): void {
    let first = 0;
    let last = this.keys.length;
    if (first === last || nth === last) return;
    let depth = 2 * log2(last - first);
    while (last - first > 3) {
      if (depth === 0) {
        this.heapSelect(first, nth + 1, last);
        this.swap(first, nth);
        return;
      }
      depth--;
      const cut = this.partitionAroundPivot(first, last);
      if (cut <= nth) first = cut;
      else last = cut;
    }
    this.insertionSort(first, last);
  }

  /** std::__heap_select (std::partial_sort's first step): the `middle` first elements of the order in [0, middle), as a heap. */
  heapSelect(first: number, middle: number, last: number): void {
    const keys = this.keys;
    this.makeHeap(first, middle);
    for (let i = middle; i < last; i++) {
      if (this.value(keys[i]!) < this.value(keys[first]!)) {
        const key = keys[i]!;
        keys[i] = keys[first]!;
        this.adjustHeap(first, 0, middle - first, key);
      }
    }
  }

  private value(key: number): number {
    return key >= 0 ? key : ((-1 - key) & SLOT) === 0 ? this.tiedValues[0] : this.tiedValues[1];
  }

  private holdsBoundary(first: number, last: number): boolean {
    return this.boundaries.some((b) => first < b && b < last);
  }

  private introsort(first: number, last: number, depth: number): void {
    while (last - first > 16) {
      if (!this.holdsBoundary(first, last)) return;
      if (depth === 0) {
        this.heapSort(first, last);
        return;
      }
      depth--;
      const cut = this.partitionAroundPivot(first, last);
      this.introsort(cut, last, depth);
      last = cut;
    }
    if (this.holdsBoundary(first, last)) this.insertionSort(first, last);
  }

  /**
   * std::__unguarded_partition_pivot: the median of three moved to `first`, then Hoare's partition,
   * which swaps the i-th element from the left not below the pivot with the i-th from the right not
   * above it while they have not crossed. Blocks from both ends find those elements without a branch
   * on each (BlockQuicksort's scheme, which pairs them the same way); the middle, once shorter than
   * two blocks, goes element by element.
   */
  private partitionAroundPivot(first: number, last: number): number {
    const keys = this.keys;
    this.moveMedianToFirst(first, first + 1, first + ((last - first) >> 1), last - 1);
    const pivot = this.value(keys[first]!);
    const [t0, t1] = this.tiedValues;
    const leftOffsets = this.leftOffsets;
    const rightOffsets = this.rightOffsets;
    let left = first + 1;
    let right = last - 1;
    let leftCount = 0;
    let rightCount = 0;
    let leftAt = 0;
    let rightAt = 0;
    while (right - left + 1 > 2 * BLOCK) {
      if (leftCount === 0) {
        leftAt = 0;
        for (let j = 0; j < BLOCK; j++) {
          const key = keys[left + j]!;
          const v = key >= 0 ? key : ((-1 - key) & SLOT) === 0 ? t0 : t1;
          leftOffsets[leftCount] = j;
          leftCount += (pivot - v - 1) >>> 31;
        }
      }
      if (rightCount === 0) {
        rightAt = 0;
        for (let j = 0; j < BLOCK; j++) {
          const key = keys[right - j]!;
          const v = key >= 0 ? key : ((-1 - key) & SLOT) === 0 ? t0 : t1;
          rightOffsets[rightCount] = j;
          rightCount += (v - pivot - 1) >>> 31;
        }
      }
      const pairs = Math.min(leftCount, rightCount);
      for (let k = 0; k < pairs; k++) {
        const i = left + leftOffsets[leftAt + k]!;
        const j = right - rightOffsets[rightAt + k]!;
        const t = keys[i]!;
        keys[i] = keys[j]!;
        keys[j] = t;
      }
      leftCount -= pairs;
      rightCount -= pairs;
      leftAt += pairs;
      rightAt += pairs;
      if (leftCount === 0) left += BLOCK;
      if (rightCount === 0) right -= BLOCK;
    }
    // Hoare's loop from where the blocks stopped: at the next element each side would stop at.
    let lo = leftCount > 0 ? left + leftOffsets[leftAt]! : left;
    let hi = (rightCount > 0 ? right - rightOffsets[rightAt]! : right) + 1;
    for (;;) {
      while (this.value(keys[lo]!) < pivot) lo++;
      hi--;
      while (pivot < this.value(keys[hi]!)) hi--;
      if (!(lo < hi)) return lo;
      const t = keys[lo]!;
      keys[lo] = keys[hi]!;
      keys[hi] = t;
      lo++;
    }
  }

  private moveMedianToFirst(result: number, a: number, b: number, c: number): void {
    const v = (i: number) => this.value(this.keys[i]!);
    let chosen: number;
    if (v(a) < v(b)) {
      if (v(b) < v(c)) chosen = b;
      else if (v(a) < v(c)) chosen = c;
      else chosen = a;
    } else if (v(a) < v(c)) chosen = a;
    else if (v(b) < v(c)) chosen = c;
    else chosen = b;
    this.swap(result, chosen);
  }

  /** A stable insertion sort (std::__insertion_sort; the final pass moves no element out of its run). */
  private insertionSort(first: number, last: number): void {
    const keys = this.keys;
    for (let i = first + 1; i < last; i++) {
      const key = keys[i]!;
      const value = this.value(key);
      let j = i;
      while (j > first && value < this.value(keys[j - 1]!)) {
        keys[j] = keys[j - 1]!;
        j--;
      }
      keys[j] = key;
    }
  }

  /** std::__partial_sort(first, last, last): std::__make_heap, then std::__sort_heap. */
  private heapSort(first: number, last: number): void {
    const keys = this.keys;
    this.makeHeap(first, last);
    for (let end = last - 1; end - first > 0; end--) {
      const key = keys[end]!;
      keys[end] = keys[first]!;
      this.adjustHeap(first, 0, end - first, key);
    }
  }

  /** std::__make_heap. */
  private makeHeap(first: number, last: number): void {
    const length = last - first;
    if (length < 2) return;
    for (let parent = (length - 2) >> 1; ; parent--) {
      this.adjustHeap(first, parent, length, this.keys[first + parent]!);
      if (parent === 0) break;
    }
  }

  /** std::__adjust_heap: the hole sifted down to a leaf, then `key` pushed up from there. */
  private adjustHeap(first: number, hole: number, length: number, key: number): void {
    const keys = this.keys;
    const at = (i: number) => this.value(keys[first + i]!);
    const top = hole;
    let child = hole;
    while (child < (length - 1) >> 1) {
      child = 2 * (child + 1);
      if (at(child) < at(child - 1)) child--;
      keys[first + hole] = keys[first + child]!;
      hole = child;
    }
    if ((length & 1) === 0 && child === (length - 2) >> 1) {
      child = 2 * (child + 1);
      keys[first + hole] = keys[first + child - 1]!;
      hole = child - 1;
    }
    const value = this.value(key);
    let parent = (hole - 1) >> 1;
    while (hole > top && at(parent) < value) {
      keys[first + hole] = keys[first + parent]!;
      hole = parent;
      parent = (hole - 1) >> 1;
    }
    keys[first + hole] = key;
  }

  private swap(i: number, j: number): void {
    const t = this.keys[i]!;
    this.keys[i] = this.keys[j]!;
    this.keys[j] = t;
  }
}
