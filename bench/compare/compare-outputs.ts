import { ModelFolder } from '../../src/main/engine/model/model-folder';
import { decodeToF32, f32Bits } from '../../src/main/engine/safetensors/convert';
import { isFloatDtype } from '../../src/main/engine/safetensors/dtype';

export type Bar = 'exact' | 'bf16-1ulp' | 'stats';

export interface Equality {
  tensors: number;
  /** Largest difference in ulps of the output dtype, over every element. */
  worstUlps: number;
  worstTensor: string;
  /** Elements more than 1 ulp apart, as a fraction of all. */
  offFraction: number;
  within: boolean;
  note: string;
}

function ordered(bits: number): number {
  return bits & 0x80000000 ? 0x80000000 - (bits & 0x7fffffff) : bits + 0x80000000;
}

/** Tensor by tensor, chunk by chunk: how far Alloy's output is from mergekit's, against the bar. */
export async function compareOutputs(expectedDir: string, actualDir: string, bar: Bar, baseDir?: string): Promise<Equality> {
  const [expected, actual] = await Promise.all([ModelFolder.open(expectedDir), ModelFolder.open(actualDir)]);
  const base = bar === 'stats' && baseDir ? await ModelFolder.open(baseDir) : undefined;
  let worstUlps = 0;
  let worstTensor = '';
  let statsOff = 0;
  let off = 0;
  let elements = 0;
  try {
    for (const [name, want] of expected.tensors) {
      const got = actual.tensors.get(name);
      if (!got) return { tensors: expected.tensors.size, worstUlps: Infinity, worstTensor: name, offFraction: 1, within: false, note: `Alloy has no ${name}` };
      if (!isFloatDtype(want.entry.dtype) || got.entry.dtype !== want.entry.dtype) continue;
      const a = new Float32Array(want.entry.numel);
      const b = new Float32Array(want.entry.numel);
      decodeToF32(await want.reader.read(name), want.entry.dtype, a);
      decodeToF32(await got.reader.read(name), got.entry.dtype, b);
      const scale = want.entry.dtype === 'BF16' ? 65536 : 1;
      let worst = 0;
      for (let i = 0; i < a.length; i++) {
        if (Object.is(a[i], b[i])) continue;
        const ulps = Math.abs(ordered(f32Bits(a[i]!)) - ordered(f32Bits(b[i]!))) / scale;
        if (ulps > 1) off++;
        worst = Math.max(worst, ulps);
      }
      elements += a.length;
      if (worst > worstUlps) [worstUlps, worstTensor] = [worst, name];
      if (base && a.length >= 256) {
        const c = new Float32Array(a.length);
        const entry = base.tensors.get(name)!;
        if (!isFloatDtype(entry.entry.dtype)) continue;
        decodeToF32(await entry.reader.read(name), entry.entry.dtype, c);
        const norm = (v: Float32Array) => Math.sqrt(v.reduce((s, x, i) => s + (x - c[i]!) ** 2, 0));
        const ratio = norm(b) / norm(a);
        if (!(ratio > 0.85 && ratio < 1.15)) statsOff++;
      }
    }
  } finally {
    await Promise.all([expected.close(), actual.close(), base?.close()]);
  }
  const within = bar === 'exact' ? worstUlps === 0 : bar === 'bf16-1ulp' ? worstUlps <= 1 : statsOff === 0;
  const note = bar === 'stats' ? `${statsOff} tensors outside ±15 % task-vector size` : '';
  return { tensors: expected.tensors.size, worstUlps, worstTensor, offFraction: off / Math.max(1, elements), within, note };
}
