// Compares two merge outputs tensor by tensor, in ulps of their dtype: how the bench checks that the
// GPU backend's merge equals the CPU backend's on the machine it runs on.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SafetensorsReader, type TensorEntry } from '../src/main/engine/safetensors/reader';

export interface OutputComparison {
  tensors: number;
  /** Tensors with at least one element apart. */
  differing: number;
  /** Elements apart, over all tensors. */
  elementsApart: number;
  elements: number;
  /** The largest distance in ulps of the tensor's dtype (Infinity: a NaN against a number, or a missing tensor). */
  worstUlps: number;
  /** The first problems seen: missing tensors, different shapes or dtypes, the worst tensors. */
  notes: string[];
}

const CHUNK_BYTES = 64 << 20;

/** A float's bits as an integer whose order is the numbers' order (−0 and +0 both 0). */
function orderedKey(bits: number, signBit: number): number {
  return bits >= signBit ? -(bits - signBit) : bits;
}

function ulpDistance(a: Uint8Array, b: Uint8Array, dtype: TensorEntry['dtype']): { apart: number; worst: number } {
  const wide = dtype === 'F32';
  const view = (bytes: Uint8Array) =>
    wide ? new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4) : new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
  const [x, y] = [view(a), view(b)];
  const signBit = wide ? 0x80000000 : 0x8000;
  const exponent = wide ? 0x7f800000 : dtype === 'F16' ? 0x7c00 : 0x7f80;
  let apart = 0;
  let worst = 0;
  for (let i = 0; i < x.length; i++) {
    if (x[i] === y[i]) continue;
    const nan = (v: number) => (v & (signBit - 1)) > exponent;
    const distance = nan(x[i]!) || nan(y[i]!) ? (nan(x[i]!) && nan(y[i]!) ? 0 : Infinity) : Math.abs(orderedKey(x[i]!, signBit) - orderedKey(y[i]!, signBit));
    if (distance === 0) continue;
    apart++;
    worst = Math.max(worst, distance);
  }
  return { apart, worst };
}

async function openShards(dir: string): Promise<Map<string, SafetensorsReader>> {
  const byTensor = new Map<string, SafetensorsReader>();
  for (const file of (await readdir(dir)).filter((f) => f.endsWith('.safetensors')).sort()) {
    const reader = await SafetensorsReader.open(join(dir, file));
    for (const name of reader.tensors.keys()) byTensor.set(name, reader);
  }
  return byTensor;
}

/** Every tensor of `expectedDir` against the same-named tensor of `actualDir`, read in 64 MiB pieces. */
export async function compareOutputs(expectedDir: string, actualDir: string): Promise<OutputComparison> {
  const [expected, actual] = await Promise.all([openShards(expectedDir), openShards(actualDir)]);
  const result: OutputComparison = { tensors: expected.size, differing: 0, elementsApart: 0, elements: 0, worstUlps: 0, notes: [] };
  const note = (text: string) => void (result.notes.length < 8 && result.notes.push(text));
  for (const name of actual.keys()) if (!expected.has(name)) note(`${name}: only in ${actualDir}`);
  try {
    for (const [name, reader] of expected) {
      const entry = reader.tensors.get(name)!;
      const other = actual.get(name)?.tensors.get(name);
      if (!other || other.dtype !== entry.dtype || other.shape.join() !== entry.shape.join()) {
        result.differing++;
        result.worstUlps = Infinity;
        note(other ? `${name}: ${entry.dtype} [${entry.shape}] against ${other.dtype} [${other.shape}]` : `${name}: missing`);
        continue;
      }
      let apart = 0;
      let worst = 0;
      for (let start = 0; start < entry.byteLength; start += CHUNK_BYTES) {
        const length = Math.min(CHUNK_BYTES, entry.byteLength - start);
        const [a, b] = await Promise.all([reader.read(name, undefined, start, length), actual.get(name)!.read(name, undefined, start, length)]);
        const piece = ulpDistance(a, b, entry.dtype);
        apart += piece.apart;
        worst = Math.max(worst, piece.worst);
      }
      result.elements += entry.numel;
      if (apart === 0) continue;
      result.differing++;
      result.elementsApart += apart;
      result.worstUlps = Math.max(result.worstUlps, worst);
      note(`${name}: ${apart} of ${entry.numel} elements apart, at most ${worst} ulp`);
    }
  } finally {
    await Promise.all([...new Set([...expected.values(), ...actual.values()])].map((r) => r.close()));
  }
  return result;
}

/** "same bits", "≤ 1 ulp (0.01 % of elements)", or "4 ulp …": one table cell. */
export function describeComparison(c: OutputComparison): string {
  if (c.differing === 0) return 'same bits';
  const share = c.elements ? ` (${((100 * c.elementsApart) / c.elements).toPrecision(2)} % of elements)` : '';
  return `${c.worstUlps === Infinity ? 'MISMATCH' : `≤ ${c.worstUlps} ulp`}${share}`;
}
