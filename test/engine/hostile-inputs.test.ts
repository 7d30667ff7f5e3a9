import { cp, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { EngineError } from '../../src/main/engine/errors';
import { planRecipe, runMerge } from '../../src/main/engine/run-merge';
import { DEMO_MODELS, HOSTILE_PROPERTIES } from '../fuzz/properties';
import { tempDir } from '../helpers';

let root: string;
let models: string;
let caseNumber = 0;

/** A copy of the chat demo model, changed by `change`, merged 50:50 with the code demo model. */
async function mergeWithBrokenModel(change: (dir: string) => Promise<void>, recipeExtra = ''): Promise<{ error: EngineError; dir: string; out: string }> {
  const name = `broken-${caseNumber++}`;
  const dir = join(models, name);
  await cp(join(DEMO_MODELS, 'alloy-demo-chat'), dir, { recursive: true });
  await cp(join(DEMO_MODELS, 'alloy-demo-code'), join(models, 'alloy-demo-code'), { recursive: true, force: true });
  await change(dir);
  const out = join(root, `out-${name}`);
  const recipeText = `merge_method: linear\nmodels:\n  - model: ${name}\n    parameters: {weight: 0.5}\n  - model: alloy-demo-code\n    parameters: {weight: 0.5}\n${recipeExtra}`;
  const error = await runMerge({ recipeText, recipeFile: join(root, 'r.yml'), outDir: out, options: { modelRoots: [models], device: 'cpu' } }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(EngineError);
  return { error: error as EngineError, dir, out };
}

/** Plans (and would run) a recipe over the demo models; returns the refusal. */
async function refusal(recipeText: string): Promise<EngineError> {
  const error = await runMerge({ recipeText, recipeFile: join(root, 'r.yml'), outDir: join(root, 'never'), options: { modelRoots: [DEMO_MODELS], device: 'cpu' } }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(EngineError);
  return error as EngineError;
}

const index = (map: Record<string, unknown>) => (dir: string) => writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: map }));
const linear = (weight: string) => `merge_method: linear\nmodels:\n  - model: alloy-demo-chat\n    parameters:\n      weight: ${weight}\n  - model: alloy-demo-code\n    parameters:\n      weight: 0.5\n`;
const ties = (params: string) => `merge_method: ties\nbase_model: alloy-demo-base\nmodels:\n  - model: alloy-demo-chat\n    parameters: {${params}}\n`;

describe('hostile model folders', () => {
  beforeAll(async () => {
    root = await tempDir('alloy-hostile-');
    models = join(root, 'models');
  });

  it('an index pointing outside the model folder (relative or absolute) is refused, naming the index and the path', async () => {
    for (const target of ['../../../../etc/passwd', '/etc/passwd', '../alloy-demo-code/model-00001-of-00002.safetensors']) {
      const { error, dir } = await mergeWithBrokenModel(index({ 'model.embed_tokens.weight': target }));
      expect(error.message).toBe(`${dir}/model.safetensors.index.json: "${target}" points outside the model folder`);
    }
  });

  it('an index naming a missing shard is refused, naming the index, the tensor and the file', async () => {
    const { error, dir } = await mergeWithBrokenModel(index({ 'model.embed_tokens.weight': 'model-00009-of-00009.safetensors' }));
    expect(error.message).toBe(`${dir}/model.safetensors.index.json: tensor "model.embed_tokens.weight" is in model-00009-of-00009.safetensors, which is missing`);
    expect(error.location.tensor).toBe('model.embed_tokens.weight');
  });

  it('an index that leaves tensors out is refused, naming the model and the tensor', async () => {
    const { error } = await mergeWithBrokenModel(index({ 'model.embed_tokens.weight': 'model-00001-of-00002.safetensors' }));
    expect(error.message).toMatch(/^broken-\d+ has no tensor "model\.layers\.\d+\.[a-z_.]+weight"$/);
    expect(error.location.tensor).toMatch(/^model\.layers\./);
  });

  it('a config.json that is not JSON is refused at its line and column; one that is not an object or has a bad layer count, by name', async () => {
    const broken = await mergeWithBrokenModel((dir) => writeFile(join(dir, 'config.json'), '{\n  "architectures": ["LlamaForCausalLM"],\n  "hidden_size": 64,,\n}'));
    expect(broken.error.message).toMatch(new RegExp(`^${broken.dir}/config\\.json:3:21: not valid JSON`));
    expect(broken.error.location).toMatchObject({ line: 3, column: 21 });
    const array = await mergeWithBrokenModel((dir) => writeFile(join(dir, 'config.json'), '[1, 2]'));
    expect(array.error.message).toBe(`${array.dir}/config.json: expected a JSON object`);
    const layers = await mergeWithBrokenModel((dir) => writeFile(join(dir, 'config.json'), '{"architectures": ["LlamaForCausalLM"], "num_hidden_layers": -3}'));
    expect(layers.error.message).toMatch(new RegExp(`^${layers.dir}/config\\.json: "num_hidden_layers" is -3`));
  });

  it('broken tokenizer files are refused before the merge starts, at their line and column, and nothing is written', async () => {
    const copied = await mergeWithBrokenModel((dir) => writeFile(join(dir, 'tokenizer.json'), '{"model": {"vocab": '));
    expect(copied.error.message).toMatch(new RegExp(`^${copied.dir}/tokenizer\\.json:1:21: not valid JSON`));
    const config = await mergeWithBrokenModel((dir) => writeFile(join(dir, 'tokenizer_config.json'), '{\n  "eos_token": "</s>"\n  "bos_token": "<s>"\n}'));
    expect(config.error.message).toMatch(new RegExp(`^${config.dir}/tokenizer_config\\.json:3:3: not valid JSON`));
    const noModel = await mergeWithBrokenModel((dir) => writeFile(join(dir, 'tokenizer.json'), '{"version": "1.0"}'), 'tokenizer_source: union\n');
    expect(noModel.error.message).toContain(`${noModel.dir}/tokenizer.json: not a tokenizer.json (no "model" object)`);
    expect((await readdir(root)).filter((f) => f.startsWith('out-') || f.startsWith('.out-'))).toEqual([]);
  });
});

describe('hostile recipes', () => {
  it('NaN and infinite parameters are refused at their line and column', async () => {
    expect((await refusal(linear('.nan'))).message).toBe(`${root}/r.yml:5:15: models[0].parameters.weight must be a finite number, not NaN`);
    expect((await refusal(linear('-.inf'))).message).toBe(`${root}/r.yml:5:15: models[0].parameters.weight must be a finite number, not -Infinity`);
    expect((await refusal(linear('[1, .nan, 0]'))).message).toMatch(/r\.yml:5:\d+: models\[0\]\.parameters\.weight \(a gradient\) must be a finite number, not NaN/);
  });

  it('parameters of the wrong type are refused at their line, naming the model and the tensor', async () => {
    const text = await refusal(linear('"heavy"'));
    expect(text.message).toBe(`${root}/r.yml:5:7: parameter "weight" of alloy-demo-chat for tensor "model.embed_tokens.weight" is "heavy": it must be a number`);
    const filtered = await refusal(ties('weight: 1, density: [{filter: mlp, value: "most"}, {value: 0.5}]'));
    expect(filtered.message).toMatch(/r\.yml:5:\d+: parameter "density" of alloy-demo-chat for tensor "model\.layers\.0\.mlp\.[a-z_]+\.weight" is "most": it must be a number$/);
  });

  it('parameters outside the declared range run as in mergekit, with one warning at their line', async () => {
    const plan = async (text: string) => planRecipe({ recipeText: text, recipeFile: join(root, 'r.yml'), options: { modelRoots: [DEMO_MODELS] } });
    const dense = await plan(ties('weight: 1, density: 7'));
    expect(dense.warnings.filter((w) => w.includes('"density"'))).toEqual([`${root}/r.yml:5:29: parameter "density" of alloy-demo-chat is 7, above the 1 the method is meant for; mergekit uses it as it is, and so does Alloy`]);
    const slerp = await plan('merge_method: slerp\nbase_model: alloy-demo-base\nmodels:\n  - model: alloy-demo-base\n  - model: alloy-demo-chat\nparameters:\n  t: -0.25\n');
    expect(slerp.warnings).toContain(`${root}/r.yml:7:3: parameter "t" is -0.25, below the 0 the method is meant for; mergekit uses it as it is, and so does Alloy`);
    expect(slerp.tensors.every((t) => t.global['t'] === -0.25)).toBe(true);
  });

  it('values mergekit fails on are refused at their line, naming the parameter: a DARE density below 0, a fractional karcher max_iter', async () => {
    const dare = (method: string) => `merge_method: ${method}\nbase_model: alloy-demo-base\nmodels:\n  - model: alloy-demo-chat\n    parameters: {weight: 1, density: -0.1}\n`;
    for (const method of ['dare_linear', 'dare_ties']) {
      expect((await refusal(dare(method))).message).toMatch(
        new RegExp(`^${root}/r\\.yml:5:29: parameter "density" of alloy-demo-chat for tensor "[a-z_.0-9]+" is -0\\.1: it must be at least 0 \\(mergekit fails on it: torch raises\\)$`),
      );
    }
    // Other sparsifications keep nothing below 0, as mergekit does: a warning only.
    const plan = await planRecipe({ recipeText: ties('weight: 1, density: -0.1').replace('ties', 'della'), recipeFile: join(root, 'r.yml'), options: { modelRoots: [DEMO_MODELS] } });
    expect(plan.warnings.some((w) => w.includes('"density" of alloy-demo-chat is -0.1, below the 0'))).toBe(true);
    const karcher = (maxIter: string) => `merge_method: karcher\nmodels:\n  - model: alloy-demo-chat\n  - model: alloy-demo-code\nparameters:\n  max_iter: ${maxIter}\n`;
    expect((await refusal(karcher('2.5'))).message).toMatch(
      new RegExp(`^${root}/r\\.yml:6:3: parameter "max_iter" for tensor "[a-z_.0-9]+" is 2\\.5: it must be a whole number \\(mergekit takes an int here and refuses a fraction\\)$`),
    );
    const whole = await planRecipe({ recipeText: karcher('3.0'), recipeFile: join(root, 'r.yml'), options: { modelRoots: [DEMO_MODELS] } });
    expect(whole.tensors.every((t) => t.global['max_iter'] === 3)).toBe(true);
  });

  it('wrong types, unknown keys and bad YAML in the recipe itself are refused at their line and column', async () => {
    expect((await refusal('merge_method: linear\nmodels: "x"\n')).message).toBe(`${root}/r.yml:2:9: models must be a non-empty list`);
    expect((await refusal('merge_method: linear\nmodelz: []\n')).message).toMatch(/r\.yml:2:1: unknown key "modelz" in the recipe \(did you mean "models"\?\)/);
    expect((await refusal('merge_method: linear\ndtype: float7\nmodels:\n  - model: alloy-demo-chat\n')).message).toBe(`${root}/r.yml:2:8: dtype "float7" is not one of float32, float16, bfloat16`);
    expect((await refusal('merge_method: linear\nmodels: [\n')).message).toMatch(/r\.yml:3:1: YAML: /);
  });

  it('a cycle between stages is refused at the reference that closes it', async () => {
    const doc = (name: string, reads: string) => `name: ${name}\nmerge_method: linear\nmodels:\n  - model: ${reads}\n  - model: alloy-demo-chat\n`;
    const error = await refusal(`${doc('a', 'b')}---\n${doc('b', 'a')}`);
    expect(error.message).toBe(`${root}/r.yml:10:12: the stages depend on each other in a cycle: a → b → a`);
  });

  it('a model that is nowhere is refused by name, listing where it was looked for', async () => {
    expect((await refusal('merge_method: linear\nmodels:\n  - model: nope/nothing\n')).message).toMatch(/^model "nope\/nothing" not found; looked for config\.json in:\n/);
  });
});

describe('hostile inputs (property-based)', () => {
  for (const property of HOSTILE_PROPERTIES.filter((p) => !p.name.startsWith('safetensors:'))) {
    it(`${property.name}, ${property.ciRuns} cases`, async () => {
      await fc.assert(await property.make(await tempDir('alloy-prop-')), { numRuns: property.ciRuns });
    });
  }
});
