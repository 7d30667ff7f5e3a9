import { readFileSync } from 'node:fs';
import { cp } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { tempDir } from '../helpers';
import { describe, expect, it } from 'vitest';
import { evaluateSetting, ParameterResolver } from '../../src/main/engine/recipe/evaluate-setting';
import { parseModelReference, parseRecipes, RecipeError } from '../../src/main/engine/recipe/parse-recipe';
import { planMerge } from '../../src/main/engine/plan/plan-merge';
import { writeSparseLlamaModel } from './sparse-model';

const fixture = (name: string) => readFileSync(`test/fixtures/recipes/${name}`, 'utf8');

function problemsOf(text: string): string[] {
  try {
    parseRecipes(text, 'r.yml');
  } catch (error) {
    expect(error).toBeInstanceOf(RecipeError);
    return (error as RecipeError).message.split('\n');
  }
  throw new Error('expected the recipe to be refused');
}

describe('parseRecipes on the seed recipes', () => {
  it('reads Excalibur-7b: slices, slerp, t filtered by self_attn and mlp with a fallback', () => {
    const [r] = parseRecipes(fixture('excalibur.yml'), 'excalibur.yml');
    expect(r!.mergeMethod).toBe('slerp');
    expect(r!.baseModel?.path).toBe('models/merliniteX-blockF2');
    expect(r!.slices![0]!.sources.map((s) => s.layerRange)).toEqual([[0, 32], [0, 32]]);
    expect(r!.parameters!.values['t']).toEqual([
      { filter: 'self_attn', value: [1, 0.7, 0.3, 0.5, 0] },
      { filter: 'mlp', value: [0, 0.3, 0.7, 0.5, 1] },
      { value: 0.5 },
    ]);
    expect(r!.dtype).toBe('float16');
  });

  it('reads Lamarck-14B-v0.3: five named stages, and warns about the t written on slices', () => {
    const recipes = parseRecipes(fixture('lamarck.yml'), 'lamarck.yml');
    expect(recipes.map((r) => r.name)).toEqual([
      'lamarck-14b-reason-della',
      'lamarck-14b-prose-della',
      'lamarck-14b-converge-della',
      'lamarck-14b-converge',
      'lamarck-14b-finalize',
    ]);
    expect(recipes.map((r) => r.mergeMethod)).toEqual(['della', 'della', 'della', 'slerp', 'ties']);
    const slerp = recipes[3]!;
    expect(slerp.slices).toHaveLength(7);
    expect(slerp.parameters!.values['t']).toEqual([0, 0.6, 0.8, 0.8, 0.8, 0.7, 0.4]);
    expect(slerp.warnings!.some((w) => /^lamarck\.yml:\d+:5: "t" is not a key of slices\[0\]/.test(w))).toBe(true);
    expect(recipes[0]!.models![0]!.parameters!.values).toEqual({ density: 0.7, weight: 0.9 });
    expect(recipes[0]!.tokenizerSource).toMatchObject({ path: 'arcee-ai/Virtuoso-Small' });
    expect(slerp.tokenizerSource).toBe('base');
  });

  it('reads Yi-34B-200K-DARE-merge-v5: eight models with weight and density, int8_mask', () => {
    const [r] = parseRecipes(fixture('yi-dare-ties.yml'), 'yi.yml');
    expect(r!.models).toHaveLength(8);
    expect(r!.models![7]!.model.path).toBe('/home/alpha/Models/Raw/SUSTech_SUS-Chat-34B/');
    expect(r!.models![7]!.parameters!.values).toEqual({ weight: 0.08, density: 0.08 });
    expect(r!.models![0]!.parameters).toBeUndefined();
    expect(r!.parameters!.values['int8_mask']).toBe(true);
  });
});

describe('recipe errors', () => {
  it('names file:line:col and suggests the nearest key', () => {
    expect(problemsOf('merge_methd: linear\nmodels:\n  - model: a\n')).toContain('r.yml:1:1: unknown key "merge_methd" in the recipe (did you mean "merge_method"?)');
  });

  it('reports every problem of a document at once', () => {
    const problems = problemsOf('merge_method: linear\nmodels:\n  - modle: a\n  - model: b\n    parameters:\n      weight: .nan\ndtype: float8\n');
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^r\.yml:3:5: unknown key "modle" in models\[0\] \(did you mean "model"\?\)/),
        expect.stringMatching(/^r\.yml:6:15: models\[1\]\.parameters\.weight must be a finite number/),
        expect.stringMatching(/^r\.yml:7:8: dtype "float8" is not one of/),
      ]),
    );
  });

  it('refuses recipes with both or neither of models and slices, and bad layer ranges', () => {
    expect(problemsOf('merge_method: linear\n').join()).toMatch(/^r\.yml:1:1: a recipe needs exactly one of "models", "slices" or "modules"/);
    expect(problemsOf('merge_method: passthrough\nslices:\n  - sources:\n      - model: a\n        layer_range: [4, 2]\n').join()).toMatch(/r\.yml:5:22: .*layer_range \[4, 2\] must have 0 <= start < end/);
    expect(problemsOf('merge_method: linear\ntokenizer_source: base\ntokenizer: {source: union}\nmodels:\n  - model: a\n').join()).toMatch(/either tokenizer_source or tokenizer/);
  });

  it('points at YAML syntax errors', () => {
    expect(problemsOf('merge_method: linear\nmodels: [\n').join()).toMatch(/^r\.yml:\d+:\d+: YAML: /);
  });
});

describe('YAML as mergekit (PyYAML) reads it', () => {
  const GOLDEN = 'test/fixtures/golden/recipes';
  const plan = (text: string) => planMerge({ recipe: parseRecipes(text, `${GOLDEN}/r.yml`)[0]!, search: { recipeDir: GOLDEN } });

  it('takes yes/no/on/off as booleans, merges "<<" keys, expands aliases, and keeps the last of a key written twice', () => {
    const [r] = parseRecipes(
      'merge_method: ties\nbase_model: b\nparameters: {normalize: no, int8_mask: on}\nmodels:\n' +
        '  - model: x\n    parameters: &common {weight: 0.5, density: 0.6}\n' +
        '  - model: y\n    parameters:\n      <<: *common\n      weight: 0.3\n' +
        '  - model: z\n    parameters: *common\n' +
        'dtype: bfloat16\ndtype: float32\n',
      'r.yml',
    );
    expect(r!.parameters!.values).toEqual({ normalize: false, int8_mask: true });
    expect(r!.models!.map((m) => m.parameters!.values)).toEqual([{ weight: 0.5, density: 0.6 }, { weight: 0.3, density: 0.6 }, { weight: 0.5, density: 0.6 }]);
    expect(r!.dtype).toBe('float32');
    expect(parseRecipes('merge_method: linear\nmodels:\n  - model: x\n    parameters:\n      <<: [{weight: 1}, {weight: 2, density: 3}]\n', 'r.yml')[0]!.models![0]!.parameters!.values).toEqual({ weight: 1, density: 3 });
  });

  it('refuses an alias bomb and an alias inside what it names, at their lines', () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]', ...Array.from({ length: 6 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(', ')}]`)].join('\n');
    expect(problemsOf(`merge_method: linear\nmodels: [{model: x}]\nparameters:\n  weight: 1\n${bomb.replace(/^/gm, '  ')}\n`).join()).toMatch(/^r\.yml:\d+:\d+: YAML: its aliases expand it to more than 100,000 values/);
    expect(problemsOf('merge_method: linear\nmodels: &m [{model: x, parameters: {weight: *m}}]\n').join()).toMatch(/^r\.yml:2:\d+: YAML: an alias refers to a node that contains it/);
  });

  it('takes a number for a boolean parameter as Python does (0 is false), and a gradient of booleans as 0 and 1', async () => {
    const recipe = (normalize: string) => `merge_method: task_arithmetic\nbase_model: ../models/llama-base\nparameters: {normalize: ${normalize}}\nmodels:\n  - {model: ../models/llama-ft1, parameters: {weight: 0.5}}\n`;
    const normalizeOf = async (normalize: string) => (await plan(recipe(normalize))).tensors.filter((t) => t.name.endsWith('.mlp.up_proj.weight')).map((t) => t.global['normalize']);
    expect(await normalizeOf('1')).toEqual([true, true, true, true]);
    expect(await normalizeOf('0')).toEqual([false, false, false, false]);
    expect(await normalizeOf('[true, false]')).toEqual([true, true, true, false]);
  });
});

describe('modules: (multimodal recipes)', () => {
  const GOLDEN = 'test/fixtures/golden/recipes';
  const modules = `merge_method: linear
modules:
  text_decoder:
    slices:
      - sources:
          - model: ../models/gemma3vl-ft1
            layer_range: [0, 2]
          - model: ../models/gemma3vl-ft2
            layer_range: [0, 2]
    parameters:
      weight: 0.5
  vision_tower:
    models:
      - model: ../models/gemma3vl-ft1
        parameters: {weight: 0.3}
dtype: float32
`;
  const plan = (text: string) => planMerge({ recipe: parseRecipes(text, `${GOLDEN}/r.yml`)[0]!, search: { recipeDir: GOLDEN } });
  const planError = async (text: string) => {
    try {
      await plan(text);
    } catch (error) {
      return (error as Error).message;
    }
    throw new Error('expected the plan to be refused');
  };

  it('reads modules in the order written, with their models, slices, parameters and positions', () => {
    const [r] = parseRecipes(modules, 'r.yml');
    expect(r!.modules!.map((m) => m.name)).toEqual(['text_decoder', 'vision_tower']);
    expect(r!.modules![0]!.position).toEqual({ file: 'r.yml', line: 3, column: 3 });
    expect(r!.modules![0]!.slices![0]!.sources.map((s) => s.layerRange)).toEqual([[0, 2], [0, 2]]);
    expect(r!.modules![0]!.parameters!.values).toEqual({ weight: 0.5 });
    expect(r!.modules![1]!.models![0]!.parameters!.values).toEqual({ weight: 0.3 });
  });

  it('refuses a recipe with modules and models or slices, and a module with both or neither', () => {
    expect(problemsOf(`${modules}models:\n  - model: a\n`).join('\n')).toMatch(/^r\.yml:17:1: a recipe needs exactly one of "models", "slices" or "modules", but this one has "modules" and "models"/m);
    expect(problemsOf('merge_method: linear\nmodules:\n  text_decoder:\n    parameters: {weight: 1}\n').join()).toMatch(/^r\.yml:3:3: modules\.text_decoder needs exactly one of "models" or "slices"/);
    expect(problemsOf('merge_method: linear\nmodules:\n  text_decoder:\n    models: [{model: a}]\n    slices: [{sources: [{model: a, layer_range: [0, 1]}]}]\n').join())
      .toMatch(/^r\.yml:5:5: modules\.text_decoder needs exactly one of "models" or "slices"/);
    expect(problemsOf('merge_method: linear\nmodules: {}\n').join()).toMatch(/^r\.yml:2:10: modules must be a non-empty mapping/);
    expect(problemsOf('merge_method: linear\nmodules:\n  vision_tower:\n    models: [{model: a}]\n    layers: 3\n').join()).toMatch(/^r\.yml:5:5: unknown key "layers" in modules\.vision_tower/);
  });

  it('refuses, when planning, a module the architecture lacks, naming the modules it has', async () => {
    const message = await planError(modules.replace('vision_tower:', 'vision:'));
    expect(message).toMatch(/r\.yml:12:3: unknown module "vision" under modules: a gemma3 model \(Gemma3ForConditionalGeneration\) has the modules "text_decoder", "multi_modal_projector", "vision_tower"/);
    expect(await planError('merge_method: linear\nmodules:\n  text_decoder:\n    models: [{model: ../models/llama-ft1}]\n'))
      .toMatch(/r\.yml:3:3: unknown module "text_decoder" under modules: a llama model \(LlamaForCausalLM, LLaMaForCausalLM\) has one module, "default"/);
  });

  it('refuses slices: on a model of several modules, saying to write modules:', async () => {
    const message = await planError('merge_method: passthrough\nslices:\n  - sources:\n      - model: ../models/gemma3vl-ft1\n        layer_range: [0, 1]\n');
    expect(message).toMatch(/r\.yml:2:1: "slices:" cannot say which part of the model its layer ranges are in: a gemma3 model .* has the modules "text_decoder", "multi_modal_projector", "vision_tower"\. Write "modules:" instead/);
  });

  it('plans only the modules written, each with its own parameters and layer count', async () => {
    const p = await plan(modules);
    const names = p.tensors.map((t) => t.name);
    expect(names[0]).toBe('language_model.model.embed_tokens.weight');
    expect(names.some((n) => n.startsWith('multi_modal_projector.'))).toBe(false);
    expect(names[names.length - 1]).toBe('vision_tower.vision_model.post_layernorm.weight');
    const vision = p.tensors.find((t) => t.name === 'vision_tower.vision_model.encoder.layers.1.mlp.fc1.weight')!;
    expect(vision.perModel).toEqual([{ weight: 0.3 }]);
    expect(p.tensors.find((t) => t.name === 'language_model.model.layers.1.mlp.up_proj.weight')!.perModel).toEqual([{ weight: 0.5 }, { weight: 0.5 }]);
    // Only a module given as slices gets its count written, as in mergekit.
    expect((p.outputConfig['text_config'] as Record<string, unknown>)['num_hidden_layers']).toBe(2);
  });

  it('refuses to build a tokenizer for a multimodal model, which it cannot yet size', async () => {
    expect(await planError(`${modules}tokenizer_source: base\n`)).toMatch(/r\.yml:17:1: building a tokenizer \(tokenizer_source\) for a multimodal model \(Gemma3ForConditionalGeneration\) is not supported yet/);
  });

  it('takes modules: default on a one-module model, as mergekit does', async () => {
    const p = await plan('merge_method: passthrough\nmodules:\n  default:\n    slices:\n      - sources: [{model: ../models/llama-ft1, layer_range: [1, 3]}]\n');
    expect(p.tensors.filter((t) => t.name.endsWith('.input_layernorm.weight')).map((t) => t.inputs[0]!.tensor)).toEqual([
      'model.layers.1.input_layernorm.weight',
      'model.layers.2.input_layernorm.weight',
    ]);
    expect(p.outputConfig['num_hidden_layers']).toBe(2);
  });
});

describe('slices, as mergekit plans them', () => {
  const GOLDEN = 'test/fixtures/golden/recipes';
  const plan = (text: string) => planMerge({ recipe: parseRecipes(text, `${GOLDEN}/r.yml`)[0]!, search: { recipeDir: GOLDEN } });

  it('takes the post weights from the last slice, as many of its models as the first slice has', async () => {
    const p = await plan(
      'merge_method: linear\nparameters: {weight: 1}\nslices:\n' +
        '  - sources: [{model: ../models/llama-base, layer_range: [0, 2]}]\n' +
        '  - sources: [{model: ../models/llama-ft1, layer_range: [2, 4]}, {model: ../models/llama-ft2, layer_range: [2, 4]}]\n',
    );
    const models = (name: string) => p.tensors.find((t) => t.name === name)!.inputs.map((i) => p.models[i.model]!.reference.split('/').pop());
    expect(models('model.embed_tokens.weight')).toEqual(['llama-base']);
    expect(models('model.layers.3.mlp.up_proj.weight')).toEqual(['llama-ft1', 'llama-ft2']);
    expect(models('model.norm.weight')).toEqual(['llama-ft1']);
  });

  it('refuses, at their lines, an unknown method, a model count the method cannot take, and layer ranges that do not fit', async () => {
    await expect(plan('merge_method: linearr\nmodels:\n  - {model: ../models/llama-ft1, parameters: {weight: 1}}\n')).rejects.toThrow(/^.*r\.yml:1:1: unknown merge_method "linearr" \(did you mean "linear"\?\)/);
    const three = 'merge_method: slerp\nbase_model: ../models/llama-ft1\nparameters: {t: 0.5}\nmodels:\n  - model: ../models/llama-ft1\n  - model: ../models/llama-ft2\n  - model: ../models/llama-ft3\n';
    await expect(plan(three)).rejects.toThrow(/r\.yml:5:12: slerp merges exactly 2 models \(the base among them\); here it has 3/);
    await expect(plan('merge_method: passthrough\nslices:\n  - sources:\n      - {model: ../models/llama-ft1, layer_range: [2, 6]}\n')).rejects.toThrow(/r\.yml:4:17: layer_range \[2, 6\] of \.\.\/models\/llama-ft1 goes past its 4 layers/);
    const uneven = 'merge_method: linear\nparameters: {weight: 1}\nslices:\n  - sources:\n      - {model: ../models/llama-ft1, layer_range: [0, 2]}\n      - {model: ../models/llama-ft2, layer_range: [0, 3]}\n';
    await expect(plan(uneven)).rejects.toThrow(/r\.yml:6:17: all sources of a slice must have the same number of layers: \.\.\/models\/llama-ft1 \[0, 2\], \.\.\/models\/llama-ft2 \[0, 3\]/);
  });

  it('takes the slice\'s own base_model for the rows of tokens some inputs lack', async () => {
    const dir = await tempDir();
    await cp(resolve(GOLDEN, '../models/llama-tok-base'), join(dir, 'tok-base2'), { recursive: true });
    const recipe =
      `merge_method: linear\nbase_model: ../models/llama-tok-chat\ntokenizer_source: union\nslices:\n  - base_model: ../models/llama-tok-base\n    sources:\n` +
      ['../models/llama-tok-base', '../models/llama-tok-chat', join(dir, 'tok-base2')].map((m) => `      - {model: ${m}, layer_range: [0, 4], parameters: {weight: 1}}\n`).join('');
    const embed = (await plan(recipe)).tensors.find((t) => t.name === 'model.embed_tokens.weight')!;
    // Tokens the chat model lacks and both bases have: the slice's base gives the chat input's row.
    const shared = embed.vocabulary!.defaults.filter((d) => d.sources.length > 0 && d.sources.every((s) => s.input !== 1));
    expect(shared.length).toBeGreaterThan(0);
    for (const row of shared) expect(row.sources.map((s) => s.input)).toEqual([0]);
  });

  it('refuses a model twice in one slice, naming where', async () => {
    const twice = 'merge_method: linear\nslices:\n  - sources:\n      - {model: ../models/llama-ft1, layer_range: [0, 2], parameters: {weight: 0.3}}\n      - {model: ../models/llama-ft1, layer_range: [2, 4], parameters: {weight: 0.7}}\n';
    await expect(plan(twice)).rejects.toThrow(/r\.yml:5:17: \.\.\/models\/llama-ft1 is listed twice in one slice/);
    await expect(plan('merge_method: linear\nmodels:\n  - {model: ../models/llama-ft1, parameters: {weight: 1}}\n  - {model: ../models/llama-ft1, parameters: {weight: 2}}\n'))
      .rejects.toThrow(/r\.yml:4:13: \.\.\/models\/llama-ft1 is listed twice/);
  });
});

describe('model references', () => {
  it('parses revisions and LoRA adapters as mergekit does', () => {
    expect(parseModelReference('org/name@v2')).toMatchObject({ path: 'org/name', revision: 'v2' });
    expect(parseModelReference('org/base+org/lora@abc')).toMatchObject({ path: 'org/base', lora: { path: 'org/lora', revision: 'abc' } });
    expect(parseModelReference('a@b@c')).toMatch(/more than one "@"/);
    expect(parseModelReference('a+b+c')).toMatch(/more than one "\+"/);
  });
});

describe('evaluateSetting, as mergekit evaluates gradients', () => {
  const gradient = [0, 0.5, 0.3, 0.7, 1];
  it('interpolates gradient anchors over t in double precision', () => {
    expect(evaluateSetting('x', gradient, 0)).toBe(0);
    expect(evaluateSetting('x', gradient, 1 / 3)).toBe((1 - (4 / 3 - 1)) * 0.5 + (4 / 3 - 1) * 0.3);
    expect(evaluateSetting('x', gradient, 0.5)).toBe(0.3);
    expect(evaluateSetting('x', gradient, 1)).toBe(1);
  });

  it('takes the first filter that is a substring of the tensor name', () => {
    const setting = [{ filter: 'self_attn', value: 0.1 }, { filter: 'mlp', value: [0, 1] }, { value: 0.5 }];
    expect(evaluateSetting('model.layers.3.self_attn.q_proj.weight', setting, 0.5)).toBe(0.1);
    expect(evaluateSetting('model.layers.3.mlp.up_proj.weight', setting, 0.25)).toBe(0.25);
    expect(evaluateSetting('model.norm.weight', setting, 0.25)).toBe(0.5);
    expect(evaluateSetting('model.norm.weight', [{ filter: 'mlp', value: 1 }], 0)).toBeUndefined();
  });

  it('resolves source, then slice, then recipe parameters', () => {
    const [r] = parseRecipes(
      'merge_method: slerp\nparameters: {t: 0.9, w: 1}\nslices:\n  - sources:\n      - model: a\n        layer_range: [0, 2]\n        parameters: {t: 0.1}\n      - model: b\n        layer_range: [0, 2]\n    parameters: {t: 0.5}\n',
      'r.yml',
    );
    const slice = r!.slices![0]!;
    const resolver = new ParameterResolver(r!, slice, 0);
    expect(resolver.parameter('t', { tensorName: 'x', model: slice.sources[0]!.model })).toBe(0.1);
    expect(resolver.parameter('t', { tensorName: 'x', model: slice.sources[1]!.model })).toBe(0.5);
    expect(resolver.parameter('w', { tensorName: 'x' })).toBe(1);
    expect(() => resolver.parameter('density', { tensorName: 'x', model: slice.sources[0]!.model, required: true })).toThrow(/r\.yml:\d+:\d+: missing required parameter "density" for a \(tensor "x"\)/);
  });
});

describe("where a plan warns that mergekit's result may differ", () => {
  it('TIES, breadcrumbs and sce on a tensor past 2^30 elements (ties at the cut in index order), 16-bit karcher past 2^28 (in f32), and not below', async () => {
    const dir = await tempDir();
    // 131,073 × 8,192 embeddings: 2^30 + 8,192 elements, in sparse files that cost no disk.
    for (const name of ['base', 'tuned']) await writeSparseLlamaModel(join(dir, name), { hidden: 8192, intermediate: 64, layers: 1, vocab: 131_073, layersPerFile: 1 });
    const plan = (method: string, parameters: string) =>
      planMerge({ recipe: parseRecipes(`merge_method: ${method}\nbase_model: base\nmodels:\n  - model: base\n  - model: tuned\n    parameters: {weight: 1, ${parameters}}\n`, join(dir, 'r.yml'))[0]!, search: { recipeDir: dir } });
    const warned = async (method: string, parameters: string) => (await plan(method, parameters)).warnings.filter((w) => w.includes('index order'));
    expect(await warned('ties', 'density: 0.5')).toEqual([expect.stringMatching(/^ties: tensors of more than 1073741824 elements keep the \|delta\| tied at a trim threshold in index order/)]);
    expect(await warned('breadcrumbs_ties', 'density: 0.5')).toHaveLength(1);
    expect(await warned('ties', 'density: 1')).toEqual([]);
    expect(await warned('task_arithmetic', 'density: 0.5')).toEqual([]);
    const sce = (topk: number) => planMerge({ recipe: parseRecipes(`merge_method: sce\nbase_model: base\nparameters: {select_topk: ${topk}}\nmodels:\n  - model: base\n  - model: tuned\n`, join(dir, 'r.yml'))[0]!, search: { recipeDir: dir } });
    expect((await sce(0.3)).warnings.filter((w) => w.includes('index order'))).toEqual([expect.stringMatching(/^sce: tensors of more than/)]);
    expect((await sce(1)).warnings.filter((w) => w.includes('index order'))).toEqual([]);
    const karcher = (dtype: string) => planMerge({ recipe: parseRecipes(`merge_method: karcher\nmodels:\n  - model: base\n  - model: tuned\ndtype: ${dtype}\n`, join(dir, 'r.yml'))[0]!, search: { recipeDir: dir } });
    expect((await karcher('bfloat16')).warnings.filter((w) => w.startsWith('karcher:'))).toEqual([expect.stringMatching(/more than 268435456 elements are computed in f32, not in bf16 steps/)]);
    expect((await karcher('float32')).warnings.filter((w) => w.startsWith('karcher:'))).toEqual([]);
  });
});
