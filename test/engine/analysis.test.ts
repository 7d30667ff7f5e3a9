import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AnalysisEvent, AnalysisMetrics } from '../../src/shared/analysis';
import { analyzeModels } from '../../src/main/engine/analysis/analyze-models';
import { writeLlamaModel } from '../../src/main/engine/demo/make-demo-models';
import { EngineError } from '../../src/main/engine/errors';
import { CancelledError } from '../../src/main/engine/execute/execute-plan';
import { runMerge } from '../../src/main/engine/run-merge';
import { readModelF32, tempDir } from '../helpers';
import { writeSparseLlamaModel } from './sparse-model';

const DEMO = resolve('resources/demo/models');
const search = { modelRoots: [DEMO] };
const T = [0.0001, 0.001, 0.01];

type Tensors = Awaited<ReturnType<typeof readModelF32>>;

/** The group a tensor belongs to, from its name alone (not from the engine's architecture tables). */
function groupOf(name: string): string {
  if (name === 'model.embed_tokens.weight') return 'embed';
  const layer = /^model\.layers\.(\d+)\./.exec(name);
  return layer ? layer[1]! : 'head';
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/** f32 → bf16 → f32, round to nearest even (finite values). */
function bf16(x: number): number {
  f32[0] = x;
  u32[0] = ((u32[0]! + 0x7fff + ((u32[0]! >>> 16) & 1)) >>> 16) << 16;
  return f32[0]!;
}

interface Sums {
  diff: number;
  base: number;
  model: number;
  dot: number;
  n: number;
  swapped: number[];
}

/**
 * The straightforward computation: whole tensors, f64 sums per group, and NearSwap's weight written
 * out as mergekit's nearswap computes it, `clamp(t / max(|base − model|, 1e-6), 0, 1)`, each step rounded.
 */
function reference(base: Tensors, model: Tensors, t: number[], round: (x: number) => number): Map<string, Sums> {
  const groups = new Map<string, Sums>();
  const all: Sums = { diff: 0, base: 0, model: 0, dot: 0, n: 0, swapped: t.map(() => 0) };
  for (const [name, { values: b }] of base) {
    const m = model.get(name)!.values;
    const g = groups.get(groupOf(name)) ?? { diff: 0, base: 0, model: 0, dot: 0, n: 0, swapped: t.map(() => 0) };
    groups.set(groupOf(name), g);
    for (const s of [g, all]) {
      for (let i = 0; i < b.length; i++) {
        s.diff += (m[i]! - b[i]!) ** 2;
        s.base += b[i]! ** 2;
        s.model += m[i]! ** 2;
        s.dot += b[i]! * m[i]!;
      }
      s.n += b.length;
      t.forEach((x, k) => {
        for (let i = 0; i < b.length; i++) {
          const diff = Math.max(Math.abs(round(b[i]! - m[i]!)), round(1e-6));
          const w = Math.min(Math.max(round(round(1 / diff) * Math.fround(x)), 0), 1);
          if (w === 1) s.swapped[k]!++;
        }
      });
    }
  }
  groups.set('all', all);
  return groups;
}

function expectMatches(metrics: AnalysisMetrics, sums: Sums): void {
  expect(metrics.elements).toBe(sums.n);
  expect(metrics.relativeL2).toBeCloseTo(Math.sqrt(sums.diff) / Math.sqrt(sums.base), 12);
  expect(metrics.cosine).toBeCloseTo(sums.dot / Math.sqrt(sums.base * sums.model), 12);
  expect(metrics.swapFractions.map((s) => Math.round(s! * sums.n))).toEqual(sums.swapped);
}

describe('analyzeModels', () => {
  it('reports each layer\'s relative L2, cosine and NearSwap swaps as a whole-tensor f64 computation finds them, at any chunk size', async () => {
    const [base, chat, code] = await Promise.all(['alloy-demo-base', 'alloy-demo-chat', 'alloy-demo-code'].map((m) => readModelF32(join(DEMO, m))));
    const expected = [reference(base!, chat!, T, bf16), reference(base!, code!, T, bf16)];
    // The default budget reads every demo tensor in one chunk; 48 KiB cuts the embeddings into 12-row chunks.
    for (const memoryBudget of [undefined, 48 << 10]) {
      const events: AnalysisEvent[] = [];
      const result = await analyzeModels({
        base: 'alloy-demo-base',
        models: ['alloy-demo-chat', 'alloy-demo-code'],
        t: T,
        search,
        ...(memoryBudget ? { memoryBudget } : {}),
        onEvent: (e) => events.push(e),
      });
      expect(result.layers.map((l) => l.group.label)).toEqual(['embed', '0', '1', '2', '3', 'head']);
      expect(result.layers[1]!.group.tensors).toHaveLength(9);
      for (const layer of result.layers) {
        expect(layer.metrics.map((m) => m.model)).toEqual(['alloy-demo-chat', 'alloy-demo-code']);
        layer.metrics.forEach((m, i) => expectMatches(m, expected[i]!.get(layer.group.label)!));
      }
      result.totals.forEach((m, i) => expectMatches(m, expected[i]!.get('all')!));
      // Streamed: a start, every layer as it finishes (after its tensors, before the next one's), then done.
      expect(events[0]).toMatchObject({ type: 'start', computeDtype: 'BF16', tensors: 39, groups: result.groups });
      expect(events.filter((e) => e.type === 'layer').map((e) => e.type === 'layer' && e.result)).toEqual(result.layers);
      const order = events.map((e) => (e.type === 'layer' ? `L${e.result.group.label}` : e.type === 'tensor' ? e.name : e.type));
      expect(order.indexOf('Lembed')).toBe(order.indexOf('model.embed_tokens.weight') + 1);
      expect(order.indexOf('L0')).toBeLessThan(order.indexOf('model.layers.1.input_layernorm.weight'));
      expect(events.at(-1)).toMatchObject({ type: 'done', totals: result.totals, bytesRead: result.bytesRead });
      expect(events.filter((e) => e.type === 'tensor').at(-1)).toMatchObject({ index: 39, total: 39, bytesRead: result.bytesRead });
    }
  });

  it('counts exactly the elements a nearswap merge takes whole from the other model', async () => {
    const dir = await tempDir();
    const out = join(dir, 'nearswap');
    const recipe = 'merge_method: nearswap\nbase_model: alloy-demo-base\nmodels:\n  - model: alloy-demo-base\n  - model: alloy-demo-chat\nparameters:\n  t: 0.001\ndtype: float32\n';
    await runMerge({ recipeText: recipe, recipeFile: join(dir, 'r.yml'), outDir: out, options: { modelRoots: [DEMO], device: 'cpu' } });
    const [merged, other] = await Promise.all([readModelF32(out), readModelF32(join(DEMO, 'alloy-demo-chat'))]);
    let taken = 0;
    for (const [name, { values }] of merged) values.forEach((x, i) => (taken += x === other.get(name)!.values[i] ? 1 : 0));
    const result = await analyzeModels({ base: 'alloy-demo-base', models: ['alloy-demo-chat'], t: [0.001], dtype: 'F32', search });
    const total = result.totals[0]!;
    expect(taken).toBeGreaterThan(1000);
    expect(Math.round(total.swapFractions[0]! * total.elements)).toBe(taken);
  });

  it('refuses a model of another depth, naming both', async () => {
    const dir = await tempDir();
    await writeLlamaModel(join(dir, 'shallow'), { name: 'shallow', seed: 5 }, { hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, vocab: 256 });
    const run = analyzeModels({ base: 'alloy-demo-base', models: [join(dir, 'shallow')], search });
    await expect(run).rejects.toThrow(EngineError);
    await expect(run).rejects.toThrow(/shallow is a llama model with 2 layers, the base alloy-demo-base a llama model with 4/);
    await expect(analyzeModels({ base: 'alloy-demo-base', models: ['nowhere-at-all'], search })).rejects.toThrow(/model "nowhere-at-all" not found/);
  });

  it('stops at the next chunk when cancelled, reporting nothing more', async () => {
    const dir = await tempDir();
    const shape = { hidden: 1024, intermediate: 4096, layers: 8, vocab: 32000, layersPerFile: 4 };
    await writeSparseLlamaModel(join(dir, 'a'), shape);
    await writeSparseLlamaModel(join(dir, 'b'), shape);
    const controller = new AbortController();
    const events: AnalysisEvent[] = [];
    let abortedAt = 0;
    let scheduled = false;
    const run = analyzeModels({
      base: join(dir, 'a'),
      models: [join(dir, 'b')],
      t: [0.001],
      memoryBudget: 64 << 20,
      signal: controller.signal,
      onEvent: (e) => {
        events.push(e);
        // A moment after the embeddings are done, while the first layer's tensors are being read.
        if (e.type === 'layer' && !scheduled) {
          scheduled = true;
          setTimeout(() => {
            abortedAt = performance.now();
            controller.abort();
          }, 30);
        }
      },
    });
    await expect(run).rejects.toBeInstanceOf(CancelledError);
    const latency = performance.now() - abortedAt;
    console.log(`analysis cancel latency: ${latency.toFixed(0)} ms`);
    expect(latency).toBeLessThan(1500);
    expect(abortedAt).toBeGreaterThan(0);
    expect(events.filter((e) => e.type === 'layer')).toHaveLength(1);
    expect(events.some((e) => e.type === 'done')).toBe(false);
    // Nothing is reported once cancelled: the last event is a tensor read before the cancel.
    expect(events.filter((e) => e.type === 'tensor').length).toBeLessThan(9 * 8 + 3);
    // Zeros compared with zeros: no relative distance or angle, and every element within any t.
    const first = events.find((e) => e.type === 'layer');
    expect(first?.type === 'layer' && first.result.metrics[0]).toMatchObject({ relativeL2: null, cosine: null, swapFractions: [1] });
  });

  it('holds memory to its budget: a model many times larger does not raise the peak', async () => {
    const dir = await tempDir();
    const peak = async (name: string, vocab: number) => {
      const shape = { hidden: 512, intermediate: 1024, layers: 2, vocab, layersPerFile: 2 };
      await writeSparseLlamaModel(join(dir, `${name}-a`), shape);
      await writeSparseLlamaModel(join(dir, `${name}-b`), shape);
      const args = ['analyze', '--base', join(dir, `${name}-a`), join(dir, `${name}-b`), '--t', '0.001', '--memory-budget', '4M', '--progress', 'jsonl'];
      const run = spawnSync(process.execPath, [resolve('out/cli/alloy.mjs'), ...args], { encoding: 'utf8', timeout: 120_000 });
      expect(run.status, run.stderr).toBe(0);
      const done = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as AnalysisEvent).find((e) => e.type === 'done');
      return { peak: done?.type === 'done' ? done.peakRssBytes : 0, embedding: 2 * vocab * 512 * 4 };
    };
    const small = await peak('small', 4096);
    const large = await peak('large', 131072);
    console.log(`analysis peak RSS: small ${(small.peak / 2 ** 20).toFixed(0)} MiB, large ${(large.peak / 2 ** 20).toFixed(0)} MiB`);
    // Holding the large models' embeddings whole as f32 would add 512 MiB; allocator noise is tens of MiB.
    expect(large.embedding).toBe(512 * 2 ** 20);
    expect(large.peak - small.peak).toBeLessThan(96 * 2 ** 20);
  });
});
