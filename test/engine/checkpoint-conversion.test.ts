import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelFolder } from '../../src/main/engine/model/model-folder';
import { runMerge } from '../../src/main/engine/run-merge';
import { readModelF32, tempDir } from '../helpers';

const GOLDEN = resolve('test/fixtures/golden');

/** Pairs of golden models: the same weights stored fused and per expert (tools/oracle/make_goldens.py). */
const PAIRS = [
  ['mixtral-ft1', 'mixtral-experts-ft1'],
  ['qwen3moe-ft1', 'qwen3moe-experts-ft1'],
];

describe('per-expert checkpoints read as fused experts', () => {
  for (const [fusedName, perExpertName] of PAIRS) {
    it(`${perExpertName} holds every tensor of ${fusedName}, byte for byte, over ranges that cross experts`, async () => {
      const fused = await ModelFolder.open(join(GOLDEN, 'models', fusedName!));
      const perExpert = await ModelFolder.open(join(GOLDEN, 'models', perExpertName!));
      try {
        let converted = 0;
        for (const [name, want] of fused.tensors) {
          expect(perExpert.tensors.has(name) || name.includes('.mlp.')).toBe(true);
          const got = perExpert.tensor(name);
          expect(got, name).toBeDefined();
          expect(got!.entry.shape).toEqual(want.entry.shape);
          expect(got!.entry.dtype).toEqual(want.entry.dtype);
          expect(Buffer.from(await got!.reader.read(got!.entry.name))).toEqual(Buffer.from(await want.reader.read(want.entry.name)));
          if (!got!.parts) continue;
          converted++;
          const part = got!.parts[0]!.entry.byteLength;
          const total = want.entry.byteLength;
          for (const [start, length] of [[0, 1], [part - 3, 7], [part + 1, total - part - 2], [total - 5, 5]] as const) {
            const into = new Uint8Array(length + 16);
            await got!.reader.read(got!.entry.name, into, start, length);
            expect(Buffer.from(into.subarray(0, length))).toEqual(Buffer.from(await want.reader.read(want.entry.name, undefined, start, length)));
          }
        }
        // gate_up_proj and down_proj in each of the two layers.
        expect(converted).toBe(4);
      } finally {
        await Promise.all([fused.close(), perExpert.close()]);
      }
    });
  }

  it('merges a per-expert Mixtral with a fused one in 2 KB chunks as mergekit does', async () => {
    const recipeFile = join(GOLDEN, 'recipes', 'mixtral-experts-linear-f32.yml');
    const out = join(await tempDir(), 'merged');
    await runMerge({ recipeText: await readFile(recipeFile, 'utf8'), recipeFile, outDir: out, options: { memoryBudget: 2048, outShardSize: 20_000, seed: 42 } });
    const expected = await readModelF32(join(GOLDEN, 'outputs', 'mixtral-experts-linear-f32'));
    const actual = await readModelF32(out);
    expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [name, want] of expected) {
      expect(actual.get(name)!.shape, name).toEqual(want.shape);
      expect(Buffer.from(actual.get(name)!.values.buffer)).toEqual(Buffer.from(want.values.buffer));
    }
  });
});

interface Stored {
  name: string;
  dtype: 'F32' | 'BF16';
  shape: number[];
}

/** A safetensors file of the given tensors, zero-filled. */
async function writeTensors(file: string, tensors: Stored[]): Promise<void> {
  const header: Record<string, unknown> = {};
  let cursor = 0;
  for (const t of tensors) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * (t.dtype === 'F32' ? 4 : 2);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [cursor, cursor + bytes] };
    cursor += bytes;
  }
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.byteLength));
  await writeFile(file, Buffer.concat([length, json, Buffer.alloc(cursor)]));
}

/** A one-layer Mixtral checkpoint (hidden 4, 2 experts of 3) stored per expert; `change` edits the list first. */
async function mixtral(config: Record<string, unknown>, change: (tensors: Stored[]) => Stored[] = (t) => t): Promise<string> {
  const dir = join(await tempDir(), 'model');
  await mkdir(dir);
  const f32 = (name: string, ...shape: number[]): Stored => ({ name, dtype: 'F32', shape });
  const tensors = [f32('model.embed_tokens.weight', 8, 4), f32('model.norm.weight', 4), f32('lm_head.weight', 8, 4)];
  for (const n of ['input_layernorm', 'post_attention_layernorm']) tensors.push(f32(`model.layers.0.${n}.weight`, 4));
  for (const [p, rows] of [['q', 4], ['k', 2], ['v', 2], ['o', 4]] as const) tensors.push(f32(`model.layers.0.self_attn.${p}_proj.weight`, rows, 4));
  tensors.push(f32('model.layers.0.block_sparse_moe.gate.weight', 2, 4));
  for (let e = 0; e < 2; e++) {
    for (const w of ['w1', 'w3']) tensors.push({ name: `model.layers.0.block_sparse_moe.experts.${e}.${w}.weight`, dtype: 'F32', shape: [3, 4] });
    tensors.push({ name: `model.layers.0.block_sparse_moe.experts.${e}.w2.weight`, dtype: 'F32', shape: [4, 3] });
  }
  await writeTensors(join(dir, 'model.safetensors'), change(tensors));
  await writeFile(join(dir, 'config.json'), JSON.stringify({ architectures: ['MixtralForCausalLM'], model_type: 'mixtral', ...config }));
  return dir;
}

async function tensorOf(dir: string, name: string) {
  const folder = await ModelFolder.open(dir);
  try {
    return folder.tensor(name);
  } finally {
    await folder.close();
  }
}

const GATE_UP = 'model.layers.0.mlp.experts.gate_up_proj';

describe('converting per-expert checkpoints: what does not fit', () => {
  it('builds [experts, 2·rows, cols] from a whole checkpoint, and renames block_sparse_moe', async () => {
    const dir = await mixtral({ num_local_experts: 2 });
    expect((await tensorOf(dir, GATE_UP))!.entry.shape).toEqual([2, 6, 4]);
    expect((await tensorOf(dir, 'model.layers.0.mlp.experts.down_proj'))!.entry.shape).toEqual([2, 4, 3]);
    expect((await tensorOf(dir, 'model.layers.0.mlp.gate.weight'))!.entry.name).toBe('model.layers.0.block_sparse_moe.gate.weight');
    expect(await tensorOf(dir, 'model.layers.1.mlp.experts.gate_up_proj')).toBeUndefined();
  });

  it('is only for the families that convert', async () => {
    const dir = await mixtral({ model_type: 'llama', architectures: ['LlamaForCausalLM'] });
    expect(await tensorOf(dir, GATE_UP)).toBeUndefined();
  });

  it('refuses an expert missing one of its tensors', async () => {
    const dir = await mixtral({ num_local_experts: 2 }, (t) => t.filter((x) => !x.name.endsWith('experts.1.w3.weight')));
    await expect(tensorOf(dir, GATE_UP)).rejects.toThrow(
      /cannot build "model\.layers\.0\.mlp\.experts\.gate_up_proj" from its per-expert tensors: 2 experts \(the config's num_local_experts\), but no "model\.layers\.0\.mlp\.experts\.1\.w3\.weight" \(missing experts 1\)/,
    );
  });

  it('refuses fewer experts than the config has, and more', async () => {
    await expect(tensorOf(await mixtral({ num_local_experts: 3 }), GATE_UP)).rejects.toThrow(/3 experts \(the config's num_local_experts\), but no ".*experts\.2\.w1\.weight" \(missing experts 2\)/);
    await expect(tensorOf(await mixtral({ num_local_experts: 1 }), GATE_UP)).rejects.toThrow(/1 experts .* also for experts 1/);
  });

  it('without an expert count in the config, refuses a gap in the numbering', async () => {
    const dir = await mixtral({}, (t) => t.filter((x) => !/experts\.0\.w[13]/.test(x.name)));
    await expect(tensorOf(dir, GATE_UP)).rejects.toThrow(/2 experts \(the highest expert number\), but no ".*experts\.0\.w1\.weight" \(missing experts 0\)/);
  });

  it('refuses experts of different shapes or dtypes', async () => {
    const shape = await mixtral({ num_local_experts: 2 }, (t) => t.map((x) => (x.name.endsWith('experts.1.w3.weight') ? { ...x, shape: [3, 5] } : x)));
    await expect(tensorOf(shape, GATE_UP)).rejects.toThrow(/"model\.layers\.0\.block_sparse_moe\.experts\.1\.w3\.weight" is F32 \[3,5\], "model\.layers\.0\.block_sparse_moe\.experts\.0\.w1\.weight" is F32 \[3,4\]/);
    const dtype = await mixtral({ num_local_experts: 2 }, (t) => t.map((x) => (x.name.endsWith('experts.0.w2.weight') ? { ...x, dtype: 'BF16' as const } : x)));
    await expect(tensorOf(dtype, 'model.layers.0.mlp.experts.down_proj')).rejects.toThrow(/"model\.layers\.0\.block_sparse_moe\.experts\.1\.w2\.weight" is F32 \[4,3\], "model\.layers\.0\.block_sparse_moe\.experts\.0\.w2\.weight" is BF16 \[4,3\]/);
  });

  it('stops a merge at planning with that error', async () => {
    const dir = await mixtral({ num_local_experts: 2, num_hidden_layers: 1 }, (t) => t.filter((x) => !x.name.endsWith('experts.1.w1.weight')));
    const recipe = `merge_method: linear\nmodels:\n  - model: ${dir}\n    parameters: {weight: 1}\ndtype: float32\n`;
    await expect(runMerge({ recipeText: recipe, recipeFile: join(dir, '..', 'r.yml'), outDir: join(dir, '..', 'out') })).rejects.toThrow(/per-expert tensors: .*missing experts 1/);
  });
});
